"""The legal texts in the customer's language: Spanish pages show the Spanish autopay authorization and bank
mandates, accepting them records the Spanish words with their version and language, and autopay charges a
convenience fee only when the accepted authorization, in either language, names it."""
import datetime as dt

from markupsafe import escape

from billing import autopay, legal
from db import write_tx
from db.models import AutopayAuthorization, Customer, Isp, Payment, PaymentMethod
from tests.factories import make_invoice
from tests.test_autopay import run, sandbox, save_card  # noqa: F401 - fixture
from tests.test_autopay_pages import BILLING, GOOD_CARD, add_card, submit
from tests.test_fees import set_fees
from tests.test_pay_flow import make_payment, start

TODAY = dt.date.today()


def speak_spanish(customer):
    with write_tx():
        Customer.update(language="es").where(Customer.id == customer.id).execute()


def spanish_terms():
    return legal.autopay("es", autopay.policy(), Isp.current())


def latest_authorization():
    return AutopayAuthorization.select().order_by(AutopayAuthorization.id.desc()).first()


def test_a_spanish_methods_page_shows_the_spanish_authorization_and_records_its_acceptance_in_spanish(
        logged_in, customer):
    speak_spanish(customer)
    set_fees(card=(295, 30))
    add_card(logged_in)
    page = logged_in.get("/methods").get_data(as_text=True)
    terms = spanish_terms()
    assert f'<p class="mandate" id="autopay-terms">{escape(terms.text)}</p>' in page
    assert "cargo por conveniencia de Test ISP de 2.95% + $0.30" in page
    assert "I authorize" not in page  # and the paragraph above carries no lang="en" of its own

    done = logged_in.post("/methods/autopay/on", {"method": str(PaymentMethod.get().id), "accepted": "1"})
    assert done.status_code == 200 and "El pago automático está activado." in done.get_data(as_text=True)
    auth = latest_authorization()
    assert (auth.text, auth.text_version, auth.language) == (terms.text, legal.AUTOPAY_VERSION, "es")


def test_an_english_acceptance_is_recorded_in_english_as_before(logged_in, customer):
    add_card(logged_in)
    page = logged_in.get("/methods").get_data(as_text=True)
    assert "I authorize Test ISP to charge my saved payment method" in page and "Autorizo" not in page
    logged_in.post("/methods/autopay/on", {"method": str(PaymentMethod.get().id), "accepted": "1"})
    auth = latest_authorization()
    assert auth.language == "en" and auth.text == autopay.authorization_text()
    assert auth.text.startswith("I authorize Test ISP to charge my saved payment method automatically")


def test_the_spanish_billing_step_shows_the_spanish_authorization_and_the_box_records_it_in_spanish(
        logged_in, customer):
    speak_spanish(customer)
    make_invoice(customer, 3000, due=TODAY + dt.timedelta(days=10))
    ref = start(logged_in, "30.00").location.rsplit("/", 1)[1]
    billing = logged_in.get(f"/payments/{ref}").get_data(as_text=True)
    assert f"Si marca esta casilla: {escape(spanish_terms().text)}" in billing and "I authorize" not in billing
    entry = logged_in.post(f"/payments/{ref}/billing", {**BILLING, "save_for_autopay": "1"}).location
    submit(logged_in, entry, GOOD_CARD)
    auth = AutopayAuthorization.get()
    assert (auth.text, auth.text_version, auth.language) == (spanish_terms().text, legal.AUTOPAY_VERSION, "es")
    assert auth.payment.ref == ref and auth.source == "billing"


def test_the_spanish_sandbox_window_shows_the_spanish_bank_debit_authorizations(logged_in, customer):
    speak_spanish(customer)
    make_invoice(customer, 5000)
    _ref, entry = make_payment(logged_in, "50.00", method_type="ach")
    page = logged_in.get(entry).get_data(as_text=True)
    assert f'<p class="mandate" id="mandate">{escape(legal.sandbox_ach_once("es", isp="Test ISP").text)}</p>' in page
    assert "you authorize" not in page
    setup = logged_in.post("/methods/add", {"method_type": "ach"}).location
    page = logged_in.get(setup).get_data(as_text=True)
    assert escape(legal.sandbox_ach_saved("es", isp="Test ISP").text) in page and "you authorize" not in page


def test_the_english_sandbox_window_shows_the_english_bank_debit_authorization(logged_in, customer):
    make_invoice(customer, 5000)
    _ref, entry = make_payment(logged_in, "50.00", method_type="ach")
    page = logged_in.get(entry).get_data(as_text=True)
    assert "By clicking Pay, you authorize Test ISP to debit the bank account above for the amount shown" in page


# --- Autopay's fee, under an acceptance in Spanish. ------------------------------------------------------


def enrolled_in_spanish(processor):
    from tests.factories import make_customer

    customer = make_customer(language="es")
    method = save_card(customer, processor)
    autopay.turn_on(customer.id, method.id, accepted=True, ip="203.0.113.9", user_agent="pytest", lang="es")
    return customer, method


def charged(customer):
    return list(Payment.select().where(Payment.customer == customer.id).order_by(Payment.id))


def test_autopay_charges_the_fee_a_spanish_acceptance_names(sandbox):
    set_fees(card=(300, 25))
    customer, _method = enrolled_in_spanish(sandbox)
    auth = latest_authorization()
    assert auth.language == "es" and "cargo por conveniencia de Test ISP de 3% + $0.25" in auth.text
    assert autopay.status(customer.id).unagreed_fee is None
    make_invoice(customer, 5000, due=TODAY)
    run(sandbox)
    assert [(p.amount_cents, p.fee_cents) for p in charged(customer)] == [(5000, 175)]


def test_autopay_does_not_charge_a_fee_a_spanish_acceptance_does_not_name(sandbox):
    customer, _method = enrolled_in_spanish(sandbox)  # fees off: the accepted text names none
    set_fees(card=(300, 25))
    assert autopay.status(customer.id).unagreed_fee.describe() == "3% + $0.25"
    make_invoice(customer, 5000, due=TODAY)
    run(sandbox)
    assert [(p.amount_cents, p.fee_cents) for p in charged(customer)] == [(5000, 0)]


def test_a_spanish_acceptance_keeps_its_fee_when_the_isp_is_renamed_but_not_when_the_fee_is_raised(sandbox):
    set_fees(card=(250, 0))
    _customer, _method = enrolled_in_spanish(sandbox)
    auth = latest_authorization()
    with write_tx():
        Isp.update(name="Fibra Renombrada S.A.").execute()
    assert autopay.fee_authorized(auth, "card") and autopay.autopay_fee(auth, "card", 5000) == 125
    set_fees(card=(300, 0))
    assert not autopay.fee_authorized(auth, "card")
