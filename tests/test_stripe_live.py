"""Opt-in: the Stripe flows against Stripe's real test mode, for an ISP to run before going live.

Skipped (and saying so) unless STRIPE_TEST_SECRET_KEY (sk_test_...) and STRIPE_TEST_PUBLISHABLE_KEY
(pk_test_...) are set; the machine needs to reach api.stripe.com and js.stripe.com. No money moves in test
mode. Run it with:

    STRIPE_TEST_SECRET_KEY=sk_test_... STRIPE_TEST_PUBLISHABLE_KEY=pk_test_... \\
        .venv/bin/python -m pytest -q tests/test_stripe_live.py

What it covers, each through the portal's own server code and the real ``stripe`` library:
- a card typed into Stripe's Payment Element in real Chromium, in the payment pop-up (4242 4242 4242 4242);
- a card that asks for 3-D Secure (4000 0025 0000 3155): the window runs the bank's check at once;
- the server's confirm with a ConfirmationToken (Stripe's test helper makes one, as the Element would), saving
  the card only when the box is ticked, then that card charged off-session by the autopay run;
- ACH: instant verification (Financial Connections' test institution, in Chromium) and microdeposits
  (routing 110000000, account 000123456789; Stripe's test descriptor code SM11AA), the payment waiting in
  awaiting_verification with Stripe's hosted verification link until the deposits are confirmed;
- a refund through the refund command.

Webhooks cannot reach this machine from Stripe, so the portal learns outcomes the way it does when a webhook
is late: the window's sync and reconcile, which ask Stripe.
"""
import datetime as dt
import os

import pytest

from db.models import Payment, PaymentMethod
from tests.conftest import make_customer, make_invoice

SECRET = os.environ.get("STRIPE_TEST_SECRET_KEY", "")
PUBLISHABLE = os.environ.get("STRIPE_TEST_PUBLISHABLE_KEY", "")
pytestmark = pytest.mark.skipif(
    not (SECRET.startswith("sk_test_") and PUBLISHABLE.startswith("pk_test_")),
    reason="Stripe test mode: set STRIPE_TEST_SECRET_KEY=sk_test_... and STRIPE_TEST_PUBLISHABLE_KEY=pk_test_... "
           "to run these against Stripe (see README, 'Going live with Stripe')")
TODAY = dt.date.today()
BILLING = {"name": "Dana Demo", "street": "12 Ridge Road", "city": "Austin", "state": "TX", "zip": "78701",
           "email": "dana@example.test", "phone": "512-555-0100"}


@pytest.fixture
def app(database_url):
    """The portal on Stripe's test mode (the real API and Stripe.js; no test server in between)."""
    from app import create_app
    from db import database, migrate
    from db.models import Isp
    from tests.conftest import TEST_CONFIG

    app = create_app({**TEST_CONFIG, "DATABASE_URL": database_url, "PAYMENT_PROCESSOR": "stripe",
                      "STRIPE_SECRET_KEY": SECRET, "STRIPE_PUBLISHABLE_KEY": PUBLISHABLE,
                      "STRIPE_WEBHOOK_SECRET": "whsec_opt_in_suite_unused"})
    migrate.upgrade()
    Isp.create(name="Test ISP", support_phone="555-0100", max_prepay_cents=20000)
    yield app
    database.close()


@pytest.fixture
def client_stripe():
    import stripe

    return stripe.StripeClient(SECRET)


def start(portal, amount, method_type="card", save=False, **extra):
    from billing import payments

    resp = portal.post("/pay", {"amount": amount, "method_type": method_type, "key": payments.new_idempotency_key(),
                                **extra})
    assert resp.status_code == 303, resp.get_data(as_text=True)
    ref = resp.location.rsplit("/", 1)[1]
    resp = portal.post(f"/payments/{ref}/billing", {**BILLING, **({"save_for_autopay": "1"} if save else {})})
    assert resp.status_code == 303, resp.get_data(as_text=True)
    return Payment.get(Payment.ref == ref)


def confirmation_token(stripe_client, **params):
    """A ConfirmationToken as the Payment Element makes one (Stripe's test helper, test mode only)."""
    return stripe_client.v1.test_helpers.confirmation_tokens.create(params=params).id


def pay(portal, payment, token, **data):
    resp = portal.post(f"/payments/{payment.ref}/stripe/confirm", {"confirmation_token": token, **data})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return resp.get_json()


@pytest.fixture
def owing(customer):
    make_invoice(customer, 3000, due=TODAY - dt.timedelta(days=5), number="LIVE-1")
    make_invoice(customer, 4000, due=TODAY + dt.timedelta(days=10), number="LIVE-2")


# --- The server's confirm, with tokens Stripe makes. ----------------------------------------------------------


def test_card_paid_through_the_servers_confirm_and_not_kept_without_the_box(logged_in, customer, owing, client_stripe):
    payment = start(logged_in, "30.00")
    answer = pay(logged_in, payment, confirmation_token(client_stripe, payment_method="pm_card_visa"))
    assert answer["done"] and answer["payment_status"] == "succeeded"
    pi = client_stripe.v1.payment_intents.retrieve(Payment.get_by_id(payment.id).processor_ref)
    assert pi.setup_future_usage is None and pi.metadata.to_dict() == {"payment_ref": payment.ref}
    assert PaymentMethod.select().count() == 0


def test_3d_secure_card_comes_back_as_the_banks_check_for_the_window(logged_in, owing, client_stripe):
    payment = start(logged_in, "30.00")
    answer = pay(logged_in, payment, confirmation_token(client_stripe, payment_method="pm_card_threeDSecure2Required"))
    assert not answer["done"] and answer["next_action"] == "authenticate"
    assert Payment.get_by_id(payment.id).status == "awaiting_details"


def test_card_kept_with_the_box_is_charged_off_session_by_autopay(app, logged_in, customer, client_stripe):
    payment = start(logged_in, "10.00", save=True)
    answer = pay(logged_in, payment, confirmation_token(client_stripe, payment_method="pm_card_visa",
                                                        setup_future_usage="off_session"))
    assert answer["done"], answer
    method = PaymentMethod.get(PaymentMethod.customer == customer.id)
    pm = client_stripe.v1.payment_methods.retrieve(method.processor_ref)
    assert pm.customer  # Stripe attached it because setup_future_usage was sent
    resp = logged_in.post("/methods/autopay/on", {"method": str(method.id), "accepted": "1"})
    assert resp.status_code == 200
    make_invoice(customer, 4500, due=TODAY, number="LIVE-AP")
    out = app.test_cli_runner().invoke(args=["autopay"])
    assert out.exit_code == 0 and "charged 1" in out.output, out.output


def test_ach_by_account_numbers_waits_for_microdeposits_then_debits(app, logged_in, owing, client_stripe):
    from billing import payments

    payment = start(logged_in, "50.00", method_type="ach")
    token = confirmation_token(client_stripe, payment_method_data={
        "type": "us_bank_account", "billing_details": {"name": BILLING["name"], "email": BILLING["email"]},
        "us_bank_account": {"routing_number": "110000000", "account_number": "000123456789",
                            "account_holder_type": "individual"}})
    answer = pay(logged_in, payment, token, accepted="1")
    payment = Payment.get_by_id(payment.id)
    assert payment.status == "awaiting_verification", answer
    assert payment.verify_url.startswith("https://") and answer["verify_url"] == payment.verify_url
    client_stripe.v1.payment_intents.verify_microdeposits(payment.processor_ref,
                                                         params={"descriptor_code": "SM11AA"})
    payments.sync(payment, app.extensions["processor"])
    assert Payment.get_by_id(payment.id).status in ("processing", "succeeded")


def test_refund_of_a_card_payment(app, logged_in, owing, client_stripe):
    payment = start(logged_in, "20.00")
    assert pay(logged_in, payment, confirmation_token(client_stripe, payment_method="pm_card_visa"))["done"]
    out = app.test_cli_runner().invoke(args=["refund", payment.ref, "--reason", "opt-in test"])
    assert out.exit_code == 0, out.output
    assert Payment.get_by_id(payment.id).status == "refunded"


# --- Real Chromium with Stripe.js: the Payment Element itself. -----------------------------------------------


def element_frame(window):
    return window.frame_locator("#payment-element iframe").first


@pytest.mark.browser
def test_card_typed_into_the_payment_element_in_the_popup(open_page, customer, owing):
    from playwright.sync_api import expect

    tab = open_page()
    page = tab.login(customer.email)
    page.goto(tab.base_url + "/payments")
    page.get_by_label("Credit / Debit Card").check()
    page.get_by_label("Amount").fill("30.00")
    page.get_by_role("button", name="Continue").click()
    with page.expect_popup() as info:
        page.get_by_role("button", name="Make Payment").click()
    window = info.value
    card = element_frame(window)
    card.get_by_placeholder("1234 1234 1234 1234").fill("4242424242424242")
    card.get_by_placeholder("MM / YY").fill(f"12 / {(TODAY.year + 3) % 100:02d}")
    card.get_by_placeholder("CVC").fill("123")
    window.get_by_role("button", name="Pay $30.00").click()
    expect(page.locator("#pay-step h2")).to_have_text("Payment was successful", timeout=60000)


@pytest.mark.browser
def test_3d_secure_runs_in_the_window_at_once(open_page, customer, owing):
    from playwright.sync_api import expect

    tab = open_page()
    page = tab.login(customer.email)
    page.goto(tab.base_url + "/payments")
    page.get_by_label("Credit / Debit Card").check()
    page.get_by_label("Amount").fill("30.00")
    page.get_by_role("button", name="Continue").click()
    with page.expect_popup() as info:
        page.get_by_role("button", name="Make Payment").click()
    window = info.value
    card = element_frame(window)
    card.get_by_placeholder("1234 1234 1234 1234").fill("4000002500003155")
    card.get_by_placeholder("MM / YY").fill(f"12 / {(TODAY.year + 3) % 100:02d}")
    card.get_by_placeholder("CVC").fill("123")
    window.get_by_role("button", name="Pay $30.00").click()
    challenge = window.frame_locator("iframe[name^='__privateStripeFrame']").last \
        .frame_locator("iframe").first
    challenge.get_by_role("button", name="Complete").click(timeout=60000)
    expect(page.locator("#pay-step h2")).to_have_text("Payment was successful", timeout=60000)


@pytest.mark.browser
def test_ach_instant_verification_with_stripes_test_institution(open_page, customer, owing):
    from playwright.sync_api import expect

    tab = open_page()
    page = tab.login(customer.email)
    page.goto(tab.base_url + "/payments")
    page.get_by_label("ACH (bank account)").check()
    page.get_by_label("Amount").fill("30.00")
    page.get_by_role("button", name="Continue").click()
    with page.expect_popup() as info:
        page.get_by_role("button", name="Make Payment").click()
    window = info.value
    element_frame(window).get_by_role("button", name="Test Institution").click(timeout=60000)
    auth = window.frame_locator("iframe[src*='financial-connections'], iframe[name^='__privateStripeFrame']").last
    auth.get_by_role("button", name="Agree and continue").click(timeout=60000)
    auth.get_by_role("button", name="Connect account").click(timeout=60000)
    auth.get_by_role("button", name="Done").click(timeout=60000)
    window.get_by_label("I accept this authorization").check()
    window.get_by_role("button", name="Pay $30.00").click()
    expect(page.locator("#pay-step h2")).to_have_text("Your bank payment is processing", timeout=60000)
