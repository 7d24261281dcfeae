"""The legal texts a customer accepts, each with its version, in every portal language.

One module holds them all: the autopay authorization (with its convenience-fee sentences), the one-time ACH
debit mandate, the ACH mandate for a saved bank account, and the sandbox processor's two bank-debit texts.
Each has a version, and words in English and Spanish; one function per text renders it for a language with
its values, and returns an :class:`Agreement` (the text, its version and its language), which is what the
pages show and what is recorded when the customer accepts it.

The words are deliberately kept out of the translation catalogue: a catalogue edit must never silently
change a text customers agreed to. ``tests/test_legal.py`` pins each version's words (a hash per version and
language), so changing them without a new version fails. A version names a text's words in every language:
adding a language means adding its words here, reviewed, under a new version.

Money, percentages and numbers inside a text are written the way the rest of the portal writes them for the
language (``billing.language.Speaker``: English as ``billing.money`` always has, Spanish in es_US through
Babel), so the English texts are, word for word, the ones accepted before this module existed.
"""
import re
from dataclasses import dataclass

from babel.numbers import format_decimal

from billing import fees
from billing.language import LANGUAGES, Speaker

# The payment types that can carry a convenience fee the autopay authorization names.
FEE_TYPES = ("card", "ach")

# v2: the retries in words ("once", "2 more times"), not "time(s)". v3: in Spanish too (the English words are v2's).
AUTOPAY_VERSION = "autopay-2026-12-v3"
ACH_ONCE_VERSION = "ach-once-2026-12-v1"
ACH_SAVED_VERSION = "ach-saved-2026-12-v1"
SANDBOX_ACH_ONCE_VERSION = "sandbox-ach-once-2026-12-v1"
SANDBOX_ACH_SAVED_VERSION = "sandbox-ach-saved-2026-12-v1"

# Every piece of wording a text is made of, by language. Placeholders are str.format fields.
AUTOPAY_WORDS = {
    "en": {
        "text": (
            "I authorize {isp} to charge my saved payment method automatically for each of my invoices, "
            "{when}, for the invoice's unpaid balance, until I turn autopay off. If a charge fails, {retry}, "
            "and will email me each time. I can turn "
            "autopay off or remove the method in the portal at any time; that takes effect immediately."),
        "when_0": "on its due date",
        "when_1": "1 day before its due date",
        "when_n": "{days} days before its due date",
        "retry_0": "{isp} will not try again by itself",
        "retry_1": "{isp} may try once more, {gap} later",
        "retry_n": "{isp} may try again up to {retries} more times, {gap} apart",
        "gap_1": "1 day",
        "gap_n": "{days} days",
        "fee": " Each {kind} charge also carries {isp}'s convenience fee of {rule}, which does not pay the invoice.",
        "kind_card": "card",
        "kind_ach": "bank account",
    },
    "es": {
        "text": (
            "Autorizo a {isp} a cobrar automáticamente a mi método de pago guardado cada una de mis facturas, "
            "{when}, por el saldo pendiente de la factura, hasta que yo desactive el pago automático. Si un "
            "cobro no se realiza, {retry}, y me enviará un correo electrónico cada vez. Puedo desactivar el "
            "pago automático o eliminar el método en el portal en cualquier momento; eso tiene efecto de "
            "inmediato."),
        "when_0": "en su fecha de vencimiento",
        "when_1": "1 día antes de su fecha de vencimiento",
        "when_n": "{days} días antes de su fecha de vencimiento",
        "retry_0": "{isp} no volverá a intentarlo por su cuenta",
        "retry_1": "{isp} podrá intentarlo una vez más, {gap} después",
        "retry_n": "{isp} podrá volver a intentarlo hasta {retries} veces más, con {gap} de diferencia",
        "gap_1": "1 día",
        "gap_n": "{days} días",
        "fee": (" Cada cobro {kind} también lleva el cargo por conveniencia de {isp} de {rule}, que no paga "
                "la factura."),
        "kind_card": "con tarjeta",
        "kind_ach": "a cuenta bancaria",
    },
}

ACH_ONCE_WORDS = {
    "en": {"text": (
        "By clicking Pay, you authorize {isp} to debit the bank account you linked above for {amount}, once, "
        "to pay your account. You can revoke this authorization by contacting {isp} before the debit settles, "
        "and you may have rights with your bank if a debit was not authorized.")},
    "es": {"text": (
        "Al hacer clic en Pagar, usted autoriza a {isp} a debitar {amount}, una sola vez, de la cuenta bancaria "
        "que vinculó arriba, para pagar su cuenta. Puede revocar esta autorización comunicándose con {isp} "
        "antes de que se liquide el débito, y es posible que tenga derechos ante su banco si un débito no fue "
        "autorizado.")},
}

ACH_SAVED_WORDS = {
    "en": {"text": (
        "By clicking Save, you authorize {isp} to debit the bank account above for payments you make in the "
        "portal and, if you turn it on, for autopay, according to the terms you agreed with {isp}. You can remove "
        "this account in the portal at any time.")},
    "es": {"text": (
        "Al hacer clic en Guardar, usted autoriza a {isp} a debitar la cuenta bancaria indicada arriba por los "
        "pagos que haga en el portal y, si lo activa, por el pago automático, según los términos que acordó "
        "con {isp}. Puede eliminar esta cuenta en el portal en cualquier momento.")},
}

SANDBOX_ACH_ONCE_WORDS = {
    "en": {"text": (
        "By clicking Pay, you authorize {isp} to debit the bank account above for the amount shown, "
        "as a one-time ACH debit. You can revoke this authorization by contacting {isp} before the "
        "debit settles.")},
    "es": {"text": (
        "Al hacer clic en Pagar, usted autoriza a {isp} a debitar de la cuenta bancaria indicada arriba el "
        "importe que se muestra, como un débito ACH de una sola vez. Puede revocar esta autorización "
        "comunicándose con {isp} antes de que se liquide el débito.")},
}

SANDBOX_ACH_SAVED_WORDS = {
    "en": {"text": (
        "By clicking Save, you authorize {isp} to debit the bank account above for payments you make in the "
        "portal and, if you turn it on, for autopay. You can remove this account in the portal at any time.")},
    "es": {"text": (
        "Al hacer clic en Guardar, usted autoriza a {isp} a debitar la cuenta bancaria indicada arriba por los "
        "pagos que haga en el portal y, si lo activa, por el pago automático. Puede eliminar esta cuenta en el "
        "portal en cualquier momento.")},
}

# Each text's current version and its words: what the pin test checks.
TEXTS = {
    AUTOPAY_VERSION: AUTOPAY_WORDS,
    ACH_ONCE_VERSION: ACH_ONCE_WORDS,
    ACH_SAVED_VERSION: ACH_SAVED_WORDS,
    SANDBOX_ACH_ONCE_VERSION: SANDBOX_ACH_ONCE_WORDS,
    SANDBOX_ACH_SAVED_VERSION: SANDBOX_ACH_SAVED_WORDS,
}


@dataclass(frozen=True)
class Agreement:
    """A legal text rendered for one customer: its words, its version and its language (``str()``: the words)."""

    text: str
    version: str
    language: str

    def __str__(self):
        return self.text


def language_of(lang):
    """``lang`` when the portal has legal texts in it, else English."""
    return lang if lang in LANGUAGES else "en"


def _number(n, sp):
    return format_decimal(n, locale=sp.locale)


def _when(words, days_before, sp):
    if days_before == 0:
        return words["when_0"]
    if days_before == 1:
        return words["when_1"]
    return words["when_n"].format(days=_number(days_before, sp))


def _retry(words, isp, max_attempts, retry_days, sp):
    retries = max_attempts - 1
    gap = words["gap_1"] if retry_days == 1 else words["gap_n"].format(days=_number(retry_days, sp))
    if retries <= 0:
        return words["retry_0"].format(isp=isp)
    if retries == 1:
        return words["retry_1"].format(isp=isp, gap=gap)
    return words["retry_n"].format(isp=isp, retries=_number(retries, sp), gap=gap)


def autopay(lang, pol, isp):
    """The autopay authorization in ``lang`` for the autopay policy ``pol`` (when it charges, its retries) and
    the ISP row ``isp`` (its name, and a sentence per convenience fee it charges, in its currency)."""
    lang = language_of(lang)
    words, sp = AUTOPAY_WORDS[lang], Speaker(lang)
    text = words["text"].format(isp=isp.name, when=_when(words, pol.days_before, sp),
                                retry=_retry(words, isp.name, pol.max_attempts, pol.retry_days, sp))
    for kind, rule in fees.rules(isp, FEE_TYPES).items():
        text += words["fee"].format(kind=words[f"kind_{kind}"], isp=isp.name,
                                    rule=rule.describe(isp.currency, lang))
    return Agreement(text, AUTOPAY_VERSION, lang)


def names_fee(text, method_type, rule, currency):
    """Whether an accepted autopay authorization ``text`` carries the fee sentence for ``rule`` on
    ``method_type``, in any language and with any ISP name (a rename is not a new fee)."""
    if method_type not in FEE_TYPES:
        return False
    for lang, words in AUTOPAY_WORDS.items():
        head, tail = words["fee"].split("{isp}")
        heads = {kind: re.escape(head.format(kind=words[f"kind_{kind}"]).strip()) for kind in FEE_TYPES}
        # The ISP's name never runs into the next fee sentence: a bank fee equal to a new card rule must not
        # pass for the card's.
        name = "(?:(?!" + "|".join(heads.values()) + ").){1,255}?"
        pattern = heads[method_type] + name + re.escape(tail.format(rule=rule.describe(currency, lang)))
        if re.search(pattern, text or ""):
            return True
    return False


def ach_once(lang, *, isp, amount_cents, currency="USD"):
    """The one-time ACH debit mandate for a payment of ``amount_cents`` (its fee included), in ``lang``."""
    lang = language_of(lang)
    amount = Speaker(lang).money(amount_cents, currency)
    return Agreement(ACH_ONCE_WORDS[lang]["text"].format(isp=isp, amount=amount), ACH_ONCE_VERSION, lang)


def ach_saved(lang, *, isp):
    """The ACH mandate for saving a bank account (for later payments and autopay), in ``lang``."""
    lang = language_of(lang)
    return Agreement(ACH_SAVED_WORDS[lang]["text"].format(isp=isp), ACH_SAVED_VERSION, lang)


def sandbox_ach_once(lang, *, isp):
    """The sandbox processor's one-time bank-debit authorization, in ``lang``."""
    lang = language_of(lang)
    return Agreement(SANDBOX_ACH_ONCE_WORDS[lang]["text"].format(isp=isp), SANDBOX_ACH_ONCE_VERSION, lang)


def sandbox_ach_saved(lang, *, isp):
    """The sandbox processor's authorization for saving a bank account, in ``lang``."""
    lang = language_of(lang)
    return Agreement(SANDBOX_ACH_SAVED_WORDS[lang]["text"].format(isp=isp), SANDBOX_ACH_SAVED_VERSION, lang)
