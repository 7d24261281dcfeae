"""The Stripe window's bank mandates in the customer's language: shown in Spanish on a Spanish page, and the
Spanish words recorded with their version and language. What goes to Stripe in ``mandate_data`` is only the
acceptance's facts (type, time, IP address, browser), the same in every language."""
import json

from markupsafe import escape

from billing import legal, methods
from db import write_tx
from db.models import AuditLog, Customer, PaymentMandate
from tests.stripe_support import app, localstripe, stripe_server  # noqa: F401  (fixtures)
from tests.test_stripe_methods import Recorder
from tests.test_stripe_webhooks import ach_payment, confirm_bank, owing, side  # noqa: F401  (fixtures)


def speak_spanish(customer):
    with write_tx():
        Customer.update(language="es").where(Customer.id == customer.id).execute()


def test_a_spanish_window_shows_the_spanish_ach_mandate_and_records_it_with_its_version(
        logged_in, customer, owing, side):
    speak_spanish(customer)
    payment = ach_payment(logged_in, side)
    mandate = legal.ach_once("es", isp="Test ISP", amount_cents=5000)
    window = logged_in.get(f"/payments/{payment.ref}/window?mode=popup").get_data(as_text=True)
    assert f'<p class="mandate" id="mandate">{escape(mandate.text)}</p>' in window
    assert "a debitar $50.00, una sola vez" in window and "you authorize" not in window

    answer = confirm_bank(logged_in, payment, accepted="1").get_json()
    assert answer["done"] and answer["payment_status"] == "processing"
    recorded = PaymentMandate.get(PaymentMandate.payment == payment.id)
    assert (recorded.text, recorded.text_version, recorded.language) == (mandate.text, legal.ACH_ONCE_VERSION, "es")
    (_intent_id, params), = side.confirmed
    assert params["mandate_data"]["customer_acceptance"]["online"] == {
        "ip_address": "127.0.0.1", "user_agent": recorded.user_agent}


def test_an_english_window_records_the_english_ach_mandate_with_its_version(logged_in, customer, owing, side):
    payment = ach_payment(logged_in, side)
    confirm_bank(logged_in, payment, accepted="1")
    recorded = PaymentMandate.get(PaymentMandate.payment == payment.id)
    assert recorded.text == legal.ach_once("en", isp="Test ISP", amount_cents=5000).text
    assert recorded.text.startswith("By clicking Pay, you authorize Test ISP to debit the bank account you linked "
                                    "above for $50.00, once")
    assert (recorded.text_version, recorded.language) == (legal.ACH_ONCE_VERSION, "en")


def test_a_spanish_bank_setup_shows_and_audits_the_spanish_mandate(app, logged_in, customer):
    """Written for real Stripe (localstripe has no ACH): the client records what would be sent."""
    speak_spanish(customer)
    proc = app.extensions["processor"]
    bank = {"id": "pm_bank", "type": "us_bank_account", "customer": "cus_rec",
            "us_bank_account": {"bank_name": "STRIPE TEST BANK", "last4": "6789"}}
    proc._client = Recorder({"id": "seti_bank", "status": "requires_confirmation", "customer": "cus_rec",
                             "client_secret": "seti_bank_secret_x", "payment_method": bank})
    setup = methods.start_setup(customer.id, "ach", proc)
    mandate = legal.ach_saved("es", isp="Test ISP")
    window = logged_in.get(f"/methods/setup/{setup.ref}/window?mode=popup").get_data(as_text=True)
    assert f'<p class="mandate" id="mandate">{escape(mandate.text)}</p>' in window and "you authorize" not in window

    answer = logged_in.post(f"/methods/setup/{setup.ref}/stripe/bank", {"accepted": "1"}).get_json()
    assert answer["done"], answer
    audited = json.loads(AuditLog.get(AuditLog.action == "method.mandate_accepted").detail)
    assert (audited["text"], audited["text_version"], audited["language"]) == (
        mandate.text, legal.ACH_SAVED_VERSION, "es")
    confirm = next(c for c in proc._client.calls if c[0] == "confirm")
    acceptance = confirm[2]["mandate_data"]["customer_acceptance"]
    assert set(acceptance) == {"type", "accepted_at", "online"} and acceptance["type"] == "online"
