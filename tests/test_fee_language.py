"""A convenience fee rule is written in the customer's language wherever a customer reads it: the pay step's
note, the Home and Payment methods notices of a fee autopay's authorization does not name, and the email asking
to accept it; by the one formatter the legal texts use (``FeeRule.describe``), so the words agree.

The ISP here bills in euros: Babel writes euros differently in es_US ("EUR0.30") and in English ("€0.30"),
where for dollars the two write the same "$0.30"."""
from decimal import Decimal

from babel.numbers import format_currency

from billing import autopay, fees, legal
from db import write_tx
from db.models import Isp, Outbox, PaymentMethod
from tests.factories import make_invoice
from tests.test_autopay import enrolled, run, sandbox  # noqa: F401 - fixture
from tests.test_autopay_pages import add_card
from tests.test_fees import set_fees
from tests.test_legal_pages import speak_spanish

SPANISH_FIXED = format_currency(Decimal("0.30"), "EUR", locale="es_US")  # as Babel's Spanish (es_US) writes it
SPANISH_RULE = f"2.95% + {SPANISH_FIXED}"
ENGLISH_RULE = "2.95% + €0.30"


def bill_in_euros():
    with write_tx():
        Isp.update(currency="EUR").execute()


def test_the_rule_is_written_as_the_language_writes_it():
    rule = fees.FeeRule(295, 30)
    assert SPANISH_FIXED != "€0.30"  # the point of the tests below
    assert rule.describe("EUR", "es") == SPANISH_RULE
    assert rule.describe("EUR") == rule.describe("EUR", "en") == ENGLISH_RULE
    assert rule.describe("USD", "xx") == "2.95% + $0.30"  # a language the portal does not speak: English
    assert fees.FeeRule(300, 0).describe("EUR", "es") == "3%"
    assert fees.FeeRule(0, 125).describe("EUR", "es") == format_currency(Decimal("1.25"), "EUR", locale="es_US")


def test_the_legal_texts_and_the_pages_write_a_rule_the_same_way(app):
    bill_in_euros()
    set_fees(card=(295, 30))
    for lang, rule in (("en", ENGLISH_RULE), ("es", SPANISH_RULE)):
        text = legal.autopay(lang, autopay.policy(), Isp.current()).text
        assert rule in text and fees.FeeRule(295, 30).describe("EUR", lang) in text


def test_the_pay_steps_fee_note_is_in_the_pages_language(logged_in, customer):
    bill_in_euros()
    set_fees(card=(295, 30))
    make_invoice(customer, 4000)
    english = logged_in.get("/payments").get_data(as_text=True)
    assert f'id="fee-note-card">(adds a {ENGLISH_RULE} fee)' in english
    speak_spanish(customer)
    spanish = logged_in.get("/payments").get_data(as_text=True)
    assert 'id="fee-note-card">' in spanish and SPANISH_RULE in spanish and ENGLISH_RULE not in spanish


def test_the_notices_of_a_fee_autopay_does_not_have_agreement_for_are_in_the_pages_language(logged_in, customer):
    bill_in_euros()
    add_card(logged_in)
    method = PaymentMethod.get()
    logged_in.post("/methods/autopay/on", {"method": str(method.id), "accepted": "1"})
    set_fees(card=(295, 30))  # turned on after the customer accepted autopay's terms
    assert f"without the new {ENGLISH_RULE} fee" in logged_in.get("/").get_data(as_text=True)
    speak_spanish(customer)
    home = logged_in.get("/").get_data(as_text=True)
    methods_page = logged_in.get("/methods").get_data(as_text=True)
    assert 'id="autopay-reauthorize-home"' in home and 'id="autopay-reauthorize"' in methods_page
    for page in (home, methods_page):
        notice = page[page.index('id="autopay-reauthorize'):]
        notice = notice[:notice.index("</p>")]
        assert SPANISH_RULE in notice and ENGLISH_RULE not in notice


def test_the_email_asking_to_accept_a_new_fee_is_in_the_customers_language(sandbox):
    bill_in_euros()
    customer, _method = enrolled(sandbox)
    speak_spanish(customer)
    set_fees(card=(295, 30))
    make_invoice(customer, 5000)
    run(sandbox)
    mail = Outbox.get(Outbox.kind == "autopay_reauthorize")
    assert SPANISH_RULE in mail.text_body and ENGLISH_RULE not in mail.text_body
