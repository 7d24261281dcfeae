"""The legal texts (billing/legal.py): each version's words are pinned, every language has them, the English
ones are word for word those accepted before, and the fee sentence is found in either language."""
import hashlib
import json
import re
from types import SimpleNamespace

import pytest

from billing import fees, legal
from billing.language import LANGUAGES

# sha256 of each version's words in each language (the first 16 hex digits). A failure here means a legal text
# changed: customers accepted the old words under that version, so give the new words a new version (bump the
# *_VERSION in billing/legal.py, keep the old version's words out of TEXTS) and pin the new version's hash here.
PINNED = {
    ("autopay-2026-12-v3", "en"): "a696c9f383935691",
    ("autopay-2026-12-v3", "es"): "45f8fe64c1a6926c",
    ("ach-once-2026-12-v1", "en"): "974474cfcecc6977",
    ("ach-once-2026-12-v1", "es"): "e4fae57641ed0fc1",
    ("ach-saved-2026-12-v1", "en"): "5bd149c953383081",
    ("ach-saved-2026-12-v1", "es"): "f3b9b925532d076e",
    ("sandbox-ach-once-2026-12-v1", "en"): "95f1737971f39c7f",
    ("sandbox-ach-once-2026-12-v1", "es"): "c4133a104c0d4a93",
    ("sandbox-ach-saved-2026-12-v1", "en"): "1136fd8c9a7a8cfc",
    ("sandbox-ach-saved-2026-12-v1", "es"): "f585e1abc5f5de69",
}


def words_hash(words):
    return hashlib.sha256(json.dumps(words, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:16]


def isp(name="Red Sur", card=(0, 0), ach=(0, 0)):
    return SimpleNamespace(name=name, currency="USD", card_fee_bp=card[0], card_fee_fixed_cents=card[1],
                           ach_fee_bp=ach[0], ach_fee_fixed_cents=ach[1])


def policy(days_before=0, max_attempts=3, retry_days=2):
    return SimpleNamespace(days_before=days_before, max_attempts=max_attempts, retry_days=retry_days)


@pytest.mark.parametrize("version,lang", sorted(PINNED))
def test_each_versions_words_are_pinned(version, lang):
    assert version in legal.TEXTS, f"{version} is pinned but billing/legal.py no longer has it"
    found = words_hash(legal.TEXTS[version][lang])
    assert found == PINNED[(version, lang)], (
        f"The words of {version} ({lang}) changed. Customers accepted the old words under this version: "
        f"bump the version in billing/legal.py for the new words, then pin {found} for it in tests/test_legal.py.")


def test_the_pin_sees_a_one_letter_change():
    words = dict(legal.ACH_ONCE_WORDS["en"])
    words["text"] = words["text"].replace("once", "Once")
    assert words_hash(words) != PINNED[(legal.ACH_ONCE_VERSION, "en")]


def test_every_text_has_every_language_with_the_same_placeholders():
    unpinned = {(v, lang) for v in legal.TEXTS for lang in legal.TEXTS[v]} - set(PINNED)
    assert not unpinned, (f"{sorted(unpinned)} are not pinned: words added to a version customers accepted "
                          "need a new version in billing/legal.py, whose hashes are then pinned here.")
    assert set(PINNED) == {(v, lang) for v in legal.TEXTS for lang in LANGUAGES}
    for version, by_lang in legal.TEXTS.items():
        english = by_lang["en"]
        for lang in LANGUAGES:
            assert set(by_lang[lang]) == set(english), (version, lang)
            for key, text in by_lang[lang].items():
                assert sorted(re.findall(r"{\w+}", text)) == sorted(re.findall(r"{\w+}", english[key])), (
                    version, lang, key)


def test_the_english_autopay_authorization_is_word_for_word_the_one_accepted_before():
    text = legal.autopay("en", policy(0, 3, 2), isp(card=(295, 30), ach=(0, 150))).text
    assert text == (
        "I authorize Red Sur to charge my saved payment method automatically for each of my invoices, on its due "
        "date, for the invoice's unpaid balance, until I turn autopay off. If a charge fails, Red Sur may try "
        "again up to 2 more times, 2 days apart, and will email me each time. I can turn autopay off or remove "
        "the method in the portal at any time; that takes effect immediately. Each card charge also carries Red "
        "Sur's convenience fee of 2.95% + $0.30, which does not pay the invoice. Each bank account charge also "
        "carries Red Sur's convenience fee of $1.50, which does not pay the invoice.")
    one = legal.autopay("en", policy(1, 2, 1), isp()).text
    assert "each of my invoices, 1 day before its due date," in one
    assert "If a charge fails, Red Sur may try once more, 1 day later, and" in one and "fee" not in one
    never = legal.autopay("en", policy(5, 1, 3), isp()).text
    assert "5 days before its due date" in never and "Red Sur will not try again by itself, and" in never


def test_the_spanish_autopay_authorization_says_the_same_terms_in_spanish():
    found = legal.autopay("es", policy(3, 3, 2), isp(card=(295, 30), ach=(0, 150)))
    assert (found.version, found.language) == (legal.AUTOPAY_VERSION, "es") and str(found) == found.text
    assert found.text == (
        "Autorizo a Red Sur a cobrar automáticamente a mi método de pago guardado cada una de mis facturas, 3 días "
        "antes de su fecha de vencimiento, por el saldo pendiente de la factura, hasta que yo desactive el pago "
        "automático. Si un cobro no se realiza, Red Sur podrá volver a intentarlo hasta 2 veces más, con 2 días de "
        "diferencia, y me enviará un correo electrónico cada vez. Puedo desactivar el pago automático o eliminar "
        "el método en el portal en cualquier momento; eso tiene efecto de inmediato. Cada cobro con tarjeta "
        "también lleva el cargo por conveniencia de Red Sur de 2.95% + $0.30, que no paga la factura. Cada cobro "
        "a cuenta bancaria también lleva el cargo por conveniencia de Red Sur de $1.50, que no paga la factura.")
    assert "en su fecha de vencimiento" in legal.autopay("es", policy(0, 2, 1), isp()).text
    assert "podrá intentarlo una vez más, 1 día después" in legal.autopay("es", policy(0, 2, 1), isp()).text
    assert "no volverá a intentarlo por su cuenta" in legal.autopay("es", policy(0, 1, 1), isp()).text


def test_a_language_without_legal_texts_gets_the_english_ones():
    found = legal.ach_saved("fr", isp="Red Sur")
    assert found.language == "en" and found.text.startswith("By clicking Save, you authorize Red Sur")


def test_the_ach_mandates_carry_the_amount_as_the_language_writes_money():
    en = legal.ach_once("en", isp="Red Sur", amount_cents=123456)
    es = legal.ach_once("es", isp="Red Sur", amount_cents=123456)
    assert en.text.startswith("By clicking Pay, you authorize Red Sur to debit the bank account you linked above "
                              "for $1,234.56, once,") and en.version == legal.ACH_ONCE_VERSION
    assert es.text.startswith("Al hacer clic en Pagar, usted autoriza a Red Sur a debitar $1,234.56, una sola vez,")
    assert (es.version, es.language) == (legal.ACH_ONCE_VERSION, "es")
    assert legal.ach_saved("es", isp="Red Sur").text.startswith("Al hacer clic en Guardar, usted autoriza a Red Sur")
    assert "Pagar" in legal.sandbox_ach_once("es", isp="Red Sur").text
    assert "Guardar" in legal.sandbox_ach_saved("es", isp="Red Sur").text


@pytest.mark.parametrize("lang", LANGUAGES)
def test_the_fee_sentence_is_found_in_either_language_whatever_the_isps_name(lang):
    text = legal.autopay(lang, policy(), isp("Fibra del Valle S.A.", card=(295, 30), ach=(0, 150))).text
    assert legal.names_fee(text, "card", fees.FeeRule(295, 30), "USD")
    assert legal.names_fee(text, "ach", fees.FeeRule(0, 150), "USD")
    assert not legal.names_fee(text, "card", fees.FeeRule(300, 30), "USD")  # a raised fee
    assert not legal.names_fee(text, "ach", fees.FeeRule(0, 151), "USD")
    assert not legal.names_fee(text, "cash", fees.FeeRule(0, 150), "USD")


@pytest.mark.parametrize("lang", LANGUAGES)
def test_a_bank_fee_is_not_taken_for_a_card_fee_of_the_same_amount(lang):
    text = legal.autopay(lang, policy(), isp(card=(300, 0), ach=(0, 150))).text
    assert not legal.names_fee(text, "card", fees.FeeRule(0, 150), "USD")
    assert legal.names_fee(text, "card", fees.FeeRule(300, 0), "USD")


def test_no_fee_sentence_without_fees():
    text = legal.autopay("es", policy(), isp()).text
    assert "cargo por conveniencia" not in text and not legal.names_fee(text, "card", fees.FeeRule(0, 1), "USD")
