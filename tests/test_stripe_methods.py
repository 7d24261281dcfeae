"""Saving a card on the Payment methods tab with Stripe as the processor (a SetupIntent), against localstripe
through the real ``stripe`` library: the method is saved once by the page's sync and by duplicated
``setup_intent.succeeded`` events, autopay charges it off-session through the ``autopay`` command, and, in
real Chromium, the setup window loads Stripe.js (localstripe's) as a pop-up or inline.

localstripe has no us_bank_account: adding a bank account shows an honest notice, and the server side of a
real-Stripe bank setup is checked against a recording stand-in for the client only.
"""
import datetime as dt
import types

import pytest

from billing import payments
from db.models import AuditLog, AutopayCharge, MethodSetup, Payment, PaymentMethod, StripeCustomer, utcnow
from tests.factories import make_invoice
from tests.stripe_support import (  # noqa: F401  (fixtures)
    CARD_3DS,
    CARD_CHARGE_FAILS,
    CARD_OK,
    app,
    card_method,
    charges_of,
    event_body,
    localstripe,
    post_event,
    stripe_server,
)

TODAY = dt.date.today()


def start_add(portal, method_type="card"):
    """Payment methods → Add: the portal opens a SetupIntent and sends the browser to Stripe's window."""
    resp = portal.post("/methods/add", {"method_type": method_type})
    assert resp.status_code == 303, resp.get_data(as_text=True)
    assert "/window?mode=page" in resp.location
    return MethodSetup.get(MethodSetup.ref == resp.location.split("/methods/setup/")[1].split("/")[0])


def confirm_setup(server, setup, payment_method="pm_card_visa"):
    """What Stripe.js's confirmCardSetup does with the client secret (here server-side, with the same result)."""
    return server.client.v1.setup_intents.confirm(setup.processor_ref, params={"payment_method": payment_method})


def add_card(portal, server, payment_method="pm_card_visa"):
    setup = start_add(portal)
    confirm_setup(server, setup, payment_method)
    answer = portal.post(f"/methods/setup/{setup.ref}/stripe/sync").get_json()
    assert answer["done"], answer
    return MethodSetup.get_by_id(setup.id)


def seti_event(server, setup, event_id=None):
    seti = server.client.v1.setup_intents.retrieve(setup.processor_ref)
    return event_body("setup_intent.succeeded", {"id": seti.id, "object": "setup_intent", "customer": seti.customer,
                                                 "status": seti.status, "payment_method": seti.payment_method},
                      event_id=event_id)


def listed(portal):
    """How many saved methods the Payment methods page lists (rows of its table), and the page."""
    page = portal.get("/methods").get_data(as_text=True)
    return page.count('<tr id="method-'), page


# --- The SetupIntent and the window. -------------------------------------------------------------------


def test_add_opens_a_setup_intent_on_the_customers_stripe_customer_and_a_stripe_js_window(
        logged_in, customer, stripe_server):
    setup = start_add(logged_in)
    assert setup.processor == "stripe" and setup.processor_ref.startswith("seti_") and setup.status == "open"
    seti = stripe_server.client.v1.setup_intents.retrieve(setup.processor_ref).to_dict()
    assert seti["customer"] == StripeCustomer.get(StripeCustomer.customer == customer.id).stripe_id
    assert seti["usage"] == "off_session" and seti["payment_method_types"] == ["card"]
    assert seti["metadata"]["idempotency_key"] == f"setup-{setup.ref}"

    window = logged_in.get(f"/methods/setup/{setup.ref}/window?mode=popup")
    html = window.get_data(as_text=True)
    assert window.status_code == 200
    assert stripe_server.url + "/js.stripe.com/v3/" in html and seti["client_secret"] in html
    assert stripe_server.url in window.headers["Content-Security-Policy"]
    assert "<script>" not in html  # no inline script: the strict CSP stays
    assert "js.stripe.com/v3" not in logged_in.get("/methods").get_data(as_text=True)
    # The htmx Add gets the portal's window box with the three addresses of the same window.
    step = logged_in.post("/methods/add", {"method_type": "card"}, htmx=True).get_data(as_text=True)
    assert "/window?mode=popup" in step and "/window?mode=inline" in step


def test_the_setup_window_is_only_for_its_owner(app, logged_in, stripe_server):
    from tests.factories import Portal, make_customer

    setup = start_add(logged_in)
    other = Portal(app.test_client())
    other.login(make_customer().email)
    assert other.get(f"/methods/setup/{setup.ref}/window").status_code == 404
    assert other.post(f"/methods/setup/{setup.ref}/stripe/sync").status_code == 404
    assert other.post(f"/methods/setup/{setup.ref}/stripe/bank", {"accepted": "1"}).status_code == 404


def test_unconfirmed_setup_saves_nothing_and_the_browser_cannot_say_otherwise(logged_in, customer, stripe_server):
    setup = start_add(logged_in)
    answer = logged_in.post(f"/methods/setup/{setup.ref}/stripe/sync", {"status": "succeeded"}).get_json()
    assert answer["done"] is False and PaymentMethod.select().count() == 0
    assert "Waiting for the details" in logged_in.get(f"/methods/setup/{setup.ref}/status").get_data(as_text=True)


def test_confirmed_card_is_saved_once_attached_and_listed_after_sync_and_duplicate_events(
        client, logged_in, customer, stripe_server):
    setup = start_add(logged_in)
    seti = confirm_setup(stripe_server, setup)
    assert seti.status == "succeeded"
    # The window's sync and the page's poll both ask Stripe; the method is kept once.
    assert logged_in.post(f"/methods/setup/{setup.ref}/stripe/sync").get_json()["done"]
    status = logged_in.get(f"/methods/setup/{setup.ref}/status", htmx=True)
    assert "Saved: Visa ending 4242." in status.get_data(as_text=True)
    body = seti_event(stripe_server, setup)
    assert post_event(client, body).get_json() == {"received": True, "handled": True, "duplicate": False}
    assert post_event(client, body).get_json()["duplicate"] is True
    assert post_event(client, seti_event(stripe_server, setup)).status_code == 200  # a second event id

    method = PaymentMethod.get()
    assert PaymentMethod.select().count() == 1
    assert (method.customer_id, method.processor, method.method_type, method.brand, method.last4) == (
        customer.id, "stripe", "card", "Visa", "4242")
    assert method.processor_ref == seti.payment_method and method.exp_month and method.exp_year
    assert MethodSetup.get_by_id(setup.id).payment_method_id == method.id
    count, page = listed(logged_in)
    assert count == 1 and "Default" in page
    saved_audits = AuditLog.select().where(AuditLog.action.in_(["method.saved", "payment_method.saved"]))
    assert saved_audits.count() == 1
    # Stripe can charge it later: it is attached to the customer's Stripe Customer.
    pm = stripe_server.client.v1.payment_methods.retrieve(seti.payment_method)
    assert pm.customer == StripeCustomer.get(StripeCustomer.customer == customer.id).stripe_id


def test_the_event_arriving_first_saves_it_and_finishes_the_page_once(client, logged_in, customer, stripe_server):
    setup = start_add(logged_in)
    confirm_setup(stripe_server, setup)
    assert post_event(client, seti_event(stripe_server, setup)).status_code == 200
    setup = MethodSetup.get_by_id(setup.id)
    assert setup.status == "saved" and setup.payment_method_id == PaymentMethod.get().id
    assert logged_in.post(f"/methods/setup/{setup.ref}/stripe/sync").get_json()["done"]
    assert listed(logged_in)[0] == 1 and PaymentMethod.select().count() == 1
    # Reopening the window once saved never offers the form again.
    reopened = logged_in.get(f"/methods/setup/{setup.ref}/window?mode=popup").get_data(as_text=True)
    assert "data-finished" in reopened and "js.stripe.com" not in reopened


def test_a_card_refused_at_setup_saves_nothing(logged_in, stripe_server):
    import stripe

    setup = start_add(logged_in)
    with pytest.raises(stripe.CardError):
        confirm_setup(stripe_server, setup, card_method(stripe_server, "4000000000000002"))
    answer = logged_in.post(f"/methods/setup/{setup.ref}/stripe/sync").get_json()
    assert answer["done"] is False and answer["message"] and PaymentMethod.select().count() == 0


# --- Autopay charges it off-session. -----------------------------------------------------------------------


def enrol(portal, method):
    resp = portal.post("/methods/autopay/on", {"method": str(method.id), "accepted": "1"})
    assert resp.status_code == 200 and "Autopay is on" in resp.get_data(as_text=True)


def test_autopay_command_charges_the_saved_card_off_session_once(logged_in, customer, runner, stripe_server):
    invoice = make_invoice(customer, 4500, due=TODAY, number="AP-1")
    setup = add_card(logged_in, stripe_server)
    enrol(logged_in, setup.payment_method)

    out = runner.invoke(args=["autopay"])
    assert out.exit_code == 0, out.output
    assert "charged 1, failed 0" in out.output
    payment = Payment.get(Payment.customer == customer.id)
    assert payment.status == "succeeded" and payment.payment_method_id == setup.payment_method_id
    pi = stripe_server.client.v1.payment_intents.retrieve(payment.processor_ref).to_dict()
    assert pi["payment_method"] == setup.payment_method.processor_ref and pi["amount"] == 4500
    assert pi["metadata"] == {"payment_ref": payment.ref}  # the same body on a retried key
    assert len(charges_of(stripe_server, payment.processor_ref)) == 1
    assert AutopayCharge.get().status == "charged"

    again = runner.invoke(args=["autopay"])
    assert again.exit_code == 0 and "charged 0" in again.output
    assert Payment.select().count() == 1 and len(charges_of(stripe_server, payment.processor_ref)) == 1


def test_autopay_charges_a_card_saved_at_the_billing_step_off_session(logged_in, customer, runner, stripe_server):
    """A card saved with the box at the billing step (attached by Stripe through setup_future_usage) pays too."""
    from tests.stripe_support import BILLING, pay_card

    make_invoice(customer, 3000, due=TODAY + dt.timedelta(days=20), number="AP-6")
    resp = logged_in.post("/pay", {"amount": "10.00", "method_type": "card", "key": payments.new_idempotency_key()})
    ref = resp.location.rsplit("/", 1)[1]
    logged_in.post(f"/payments/{ref}/billing", {**BILLING, "save_for_autopay": "1"})
    assert pay_card(logged_in, stripe_server, Payment.get(Payment.ref == ref))[1]["done"]
    method = PaymentMethod.get()
    enrol(logged_in, method)
    due = make_invoice(customer, 4500, due=TODAY, number="AP-7")
    out = runner.invoke(args=["autopay"])
    assert out.exit_code == 0 and "charged 1" in out.output, out.output
    charge = AutopayCharge.get()
    assert charge.invoice_id == due.id and charge.status == "charged"
    payment = Payment.get_by_id(charge.payment_id)
    assert payment.status == "succeeded" and len(charges_of(stripe_server, payment.processor_ref)) == 1
    assert stripe_server.client.v1.payment_intents.retrieve(payment.processor_ref).payment_method == method.processor_ref


def test_autopay_decline_off_session_is_recorded_with_its_reason(logged_in, customer, runner, stripe_server):
    make_invoice(customer, 4500, due=TODAY, number="AP-2")
    setup = add_card(logged_in, stripe_server, card_method(stripe_server, CARD_CHARGE_FAILS))
    enrol(logged_in, setup.payment_method)
    out = runner.invoke(args=["autopay"])
    assert out.exit_code == 0 and "failed 1" in out.output, out.output
    charge = AutopayCharge.get()
    assert charge.status == "failed" and charge.reason_code == "card_declined" and charge.retry_on
    payment = Payment.get_by_id(charge.payment_id)
    assert payment.status == "failed" and charges_of(stripe_server, payment.processor_ref) == []


def test_autopay_card_needing_the_bank_check_waits_for_the_customer(logged_in, customer, runner, stripe_server):
    make_invoice(customer, 4500, due=TODAY, number="AP-3")
    setup = start_add(logged_in)
    # The setup itself passes the bank's check (Stripe.js shows it in the window); later charges may ask again.
    confirm_setup(stripe_server, setup, card_method(stripe_server, CARD_3DS))
    stripe_server.client.v1.setup_intents.confirm(setup.processor_ref)
    assert logged_in.post(f"/methods/setup/{setup.ref}/stripe/sync").get_json()["done"]
    enrol(logged_in, MethodSetup.get_by_id(setup.id).payment_method)
    out = runner.invoke(args=["autopay"])
    assert out.exit_code == 0, out.output
    charge = AutopayCharge.get()
    assert charge.status == "action_required" and charge.reason_code == "authentication_required"
    assert Payment.get_by_id(charge.payment_id).status == "awaiting_details"


def test_the_emailed_link_pays_with_the_saved_card_on_session_with_no_card_typed(logged_in, customer, runner,
                                                                                 stripe_server):
    """Stripe's recovery for authentication_required: confirm the same PaymentIntent on-session with the saved
    PaymentMethod (use_stripe_sdk), then Stripe.js runs the bank's check in the window."""
    from tests.test_stripe_payments import authenticate

    invoice = make_invoice(customer, 4500, due=TODAY, number="AP-3S")
    setup = start_add(logged_in)
    method = card_method(stripe_server, CARD_3DS)
    confirm_setup(stripe_server, setup, method)
    stripe_server.client.v1.setup_intents.confirm(setup.processor_ref)
    assert logged_in.post(f"/methods/setup/{setup.ref}/stripe/sync").get_json()["done"]
    enrol(logged_in, MethodSetup.get_by_id(setup.id).payment_method)
    assert runner.invoke(args=["autopay"]).exit_code == 0
    payment = Payment.get_by_id(AutopayCharge.get().payment_id)
    # Stripe leaves an off-session intent that failed with authentication_required in requires_payment_method
    # (localstripe keeps it in requires_action until a challenge fails, so one is failed here first).
    authenticate(stripe_server, payment, success=False)
    window = logged_in.get(f"/payments/{payment.ref}/window?mode=page").get_data(as_text=True)
    assert 'id="stripe-pay-saved"' in window and "Pay $45.00 with Visa ending 3155" in window
    assert f'data-saved-url="/payments/{payment.ref}/stripe/saved"' in window
    answer = logged_in.post(f"/payments/{payment.ref}/stripe/saved").get_json()
    assert answer == {"status": "requires_action", "done": False, "payment_status": "awaiting_details",
                      "message": ""}
    intent = stripe_server.client.v1.payment_intents.retrieve(payment.processor_ref)
    assert intent.payment_method == method  # the saved card, on the same intent: nothing typed again
    authenticate(stripe_server, payment)
    done = logged_in.post(f"/payments/{payment.ref}/stripe/sync").get_json()
    assert done["done"] and Payment.get_by_id(payment.id).status == "succeeded"
    assert logged_in.get(f"/invoices/{invoice.id}").status_code == 200
    assert len(charges_of(stripe_server, payment.processor_ref)) == 1
    again = logged_in.post(f"/payments/{payment.ref}/stripe/saved").get_json()
    assert again["done"] and len(charges_of(stripe_server, payment.processor_ref)) == 1  # never twice


def test_a_run_that_crashed_after_stripe_charged_is_finished_with_no_second_charge(
        app, logged_in, customer, runner, stripe_server, monkeypatch):
    make_invoice(customer, 4500, due=TODAY, number="AP-4")
    enrol(logged_in, add_card(logged_in, stripe_server).payment_method)
    proc = app.extensions["processor"]
    real = proc.charge_off_session

    def charge_then_crash(**kw):
        real(**kw)
        raise KeyboardInterrupt("the server stopped before recording the charge")

    monkeypatch.setattr(proc, "charge_off_session", charge_then_crash)
    crashed = runner.invoke(args=["autopay"])
    assert crashed.exit_code != 0
    payment = Payment.get()
    assert payment.processor_ref is None and payment.status == "awaiting_details"
    monkeypatch.setattr(proc, "charge_off_session", real)
    earlier = utcnow() - dt.timedelta(minutes=30)
    Payment.update(created_at=earlier, updated_at=earlier).execute()
    AutopayCharge.update(updated_at=earlier).execute()

    out = runner.invoke(args=["autopay"])
    assert out.exit_code == 0 and "resuming" in out.output, out.output
    payment = Payment.get_by_id(payment.id)
    assert payment.status == "succeeded" and AutopayCharge.get().status == "charged"
    intents = stripe_server.client.v1.payment_intents.list(params={"limit": 100}).to_dict()["data"]
    assert len(intents) == 1 and intents[0]["id"] == payment.processor_ref
    assert len(charges_of(stripe_server, payment.processor_ref)) == 1


# --- Bank accounts: not in localstripe. -------------------------------------------------------------------


def test_adding_a_bank_account_with_localstripe_says_so_and_saves_nothing(logged_in, stripe_server):
    resp = logged_in.post("/methods/add", {"method_type": "ach"})
    assert resp.status_code == 503
    assert "could not start saving a bank account" in resp.get_data(as_text=True)
    assert MethodSetup.get().status == "canceled" and PaymentMethod.select().count() == 0


class Recorder:
    """Stands in for stripe's client: records what the processor would send to real Stripe."""

    def __init__(self, seti):
        self.calls, self.seti = [], seti
        self.v1 = types.SimpleNamespace(setup_intents=self, payment_methods=self, customers=self)

    def create(self, params=None, options=None):
        self.calls.append(("create", params, options))
        return types.SimpleNamespace(id="cus_rec", to_dict=lambda: dict(self.seti))

    def retrieve(self, seti_id, params=None):
        self.calls.append(("retrieve", seti_id, params))
        return types.SimpleNamespace(to_dict=lambda: dict(self.seti))

    def confirm(self, seti_id, params=None):
        self.calls.append(("confirm", seti_id, params))
        self.seti.update(status="succeeded")

    def attach(self, pm_id, params=None):
        self.calls.append(("attach", pm_id, params))


def test_bank_setup_for_real_stripe_asks_for_us_bank_account_and_sends_the_mandate(app, customer):
    """Untested against localstripe (no ACH there): only the requests the processor makes are checked."""
    proc = app.extensions["processor"]
    bank = {"id": "pm_bank", "type": "us_bank_account", "customer": "cus_rec",
            "us_bank_account": {"bank_name": "STRIPE TEST BANK", "last4": "6789"}}
    rec = Recorder({"id": "seti_bank", "status": "requires_confirmation", "customer": "cus_rec",
                    "client_secret": "seti_bank_secret_x", "payment_method": bank})
    proc._client = rec
    state = proc.create_setup_intent(method_type="ach", idempotency_key="setup-SET-1", customer_id=customer.id)
    kind, params, options = rec.calls[-1]
    assert kind == "create" and params["allowed_payment_method_types"] == ["us_bank_account"]
    assert params["usage"] == "off_session" and params["customer"] == "cus_rec"
    assert params["payment_method_options"]["us_bank_account"]["verification_method"] == "automatic"
    assert options == {"idempotency_key": "seti-setup-SET-1"}
    assert state.status == "requires_payment_method" and state.method_token == ""

    accepted = dt.datetime(2026, 3, 1, 12, 0, 0)
    state = proc.confirm_setup_bank("seti_bank", ip_address="203.0.113.9", user_agent="UA/1", accepted_at=accepted)
    confirm = next(c for c in rec.calls if c[0] == "confirm")
    assert confirm[2]["mandate_data"]["customer_acceptance"] == {
        "type": "online", "accepted_at": int(accepted.replace(tzinfo=dt.timezone.utc).timestamp()),
        "online": {"ip_address": "203.0.113.9", "user_agent": "UA/1"}}
    assert (state.status, state.method_token, state.brand, state.last4) == (
        "succeeded", "pm_bank", "STRIPE TEST BANK", "6789")
    assert not [c for c in rec.calls if c[0] == "attach"]  # already on the customer: not attached again


def test_off_session_helper_reads_again_an_attempt_already_recorded(app, logged_in, customer, stripe_server):
    """A resumed attempt whose intent is recorded is only read again (never created or confirmed again)."""
    make_invoice(customer, 4500, due=TODAY, number="AP-5")
    method = add_card(logged_in, stripe_server).payment_method
    proc = app.extensions["processor"]
    payment = payments.create_off_session(customer.id, method=method, amount_cents=4500, invoice_id=None,
                                          idempotency_key="autopay-test-1", processor_name="stripe")
    first = payments.charge_off_session(payment, proc)
    again = payments.charge_off_session(Payment.get_by_id(payment.id), proc)
    assert first.id == again.id and again.status == "succeeded"
    assert len(charges_of(stripe_server, first.id)) == 1


# --- Real Chromium: Payment methods → Add a card → Stripe.js window → saved and listed. ----------------------


def _browser_setup():
    expect = pytest.importorskip("playwright.sync_api").expect
    from tests.test_stripe_browser import fill_card, watch

    return expect, fill_card, watch


@pytest.mark.browser
def test_add_a_card_in_the_stripe_popup_and_see_it_listed(open_page, app, stripe_server):
    from tests.factories import make_customer

    expect, fill_card, watch = _browser_setup()
    customer = make_customer()
    tab = open_page()
    page = tab.login(customer.email)
    page.get_by_role("link", name="Payment methods", exact=True).click()
    with page.expect_popup() as info:
        page.get_by_role("button", name="Add").click()
    popup = watch(tab, info.value)
    expect(popup.locator("h1")).to_have_text("Save a card with Test ISP")
    expect(popup.locator("#card-element input")).to_have_count(5)  # Stripe.js mounted its card fields
    fill_card(popup, CARD_OK)
    with popup.expect_event("close"):
        popup.get_by_role("button", name="Save").click()
    expect(page.locator("#methods-message")).to_have_text("Saved: Visa ending 4242.", timeout=15000)
    expect(page.locator("#saved-methods")).to_contain_text("Visa ending 4242")
    method = PaymentMethod.get(PaymentMethod.customer == customer.id)
    assert method.processor == "stripe" and PaymentMethod.select().count() == 1
    pm = stripe_server.client.v1.payment_methods.retrieve(method.processor_ref)
    assert pm.customer == StripeCustomer.get(StripeCustomer.customer == customer.id).stripe_id
    assert tab.errors == []


@pytest.mark.browser
def test_add_a_card_with_stripe_inline_when_the_popup_is_blocked(open_page, app, stripe_server):
    from tests.factories import make_customer

    expect, fill_card, _ = _browser_setup()
    customer = make_customer()
    tab = open_page(init_script="window.open = () => null")
    page = tab.login(customer.email)
    page.get_by_role("link", name="Payment methods", exact=True).click()
    page.get_by_role("button", name="Add").click()
    expect(page.locator("#pay-blocked")).to_be_visible()
    # Stripe's fields are mounted in the portal page itself, never in a frame of ours.
    frame = page.locator("#pay-inline")
    expect(frame.locator("#stripe-setup #card-element input")).to_have_count(5)
    expect(page.locator("iframe#pay-inline")).to_have_count(0)
    fill_card(frame, CARD_OK)
    frame.get_by_role("button", name="Save").click()
    expect(page.locator("#methods-message")).to_have_text("Saved: Visa ending 4242.", timeout=15000)
    assert PaymentMethod.select().where(PaymentMethod.customer == customer.id).count() == 1
    assert tab.errors == []


@pytest.mark.browser
def test_a_card_that_asks_for_the_bank_check_completes_it_in_the_setup_window(open_page, app, stripe_server):
    from tests.factories import make_customer

    expect, fill_card, watch = _browser_setup()
    customer = make_customer()
    tab = open_page()
    page = tab.login(customer.email)
    page.get_by_role("link", name="Payment methods", exact=True).click()
    with page.expect_popup() as info:
        page.get_by_role("button", name="Add").click()
    popup = watch(tab, info.value)
    expect(popup.locator("#card-element input")).to_have_count(5)
    fill_card(popup, CARD_3DS)
    popup.get_by_role("button", name="Save").click()
    challenge = popup.get_by_role("button", name="Complete authentication")
    expect(challenge).to_be_visible(timeout=10000)  # the issuer's check, inside the pop-up
    assert PaymentMethod.select().count() == 0
    with popup.expect_event("close"):
        challenge.click()
    expect(page.locator("#methods-message")).to_have_text("Saved: Visa ending 3155.", timeout=15000)
    assert PaymentMethod.select().where(PaymentMethod.customer == customer.id).count() == 1
    assert tab.errors == []
