"""Stripe as the processor, against a real Stripe API server (localstripe) through the real ``stripe`` library:
cards, declines, 3-D Secure, paying once, refunds, reconcile after a crash, webhooks localstripe delivers,
and configuration."""
import datetime as dt
import logging
import urllib.parse
import urllib.request

import pytest

from app import create_app
from billing import accounts, payments
from billing.processors import ConfigError
from db import write_tx
from db.models import (
    Allocation,
    CreditEntry,
    Outbox,
    Payment,
    PaymentMethod,
    PaymentReversal,
    StripeCustomer,
    WebhookEvent,
    utcnow,
)
from tests.factories import make_invoice
from tests.stripe_support import (  # noqa: F401  (fixtures)
    BILLING,
    CARD_3DS,
    CARD_CHARGE_FAILS,
    CARD_OK,
    PUBLISHABLE_KEY,
    SECRET_KEY,
    WEBHOOK_SECRET,
    app,
    card_method,
    charges_of,
    event_body,
    hooks,
    localstripe,
    pay_card,
    post_event,
    start_payment,
    stripe_config,
    stripe_server,
    wait_for,
)

TODAY = dt.date.today()


@pytest.fixture
def owing(customer):
    """The customer owes $30 (older) and $40."""
    old = make_invoice(customer, 3000, due=TODAY - dt.timedelta(days=5), number="OLD-1")
    new = make_invoice(customer, 4000, due=TODAY + dt.timedelta(days=10), number="NEW-2")
    return old, new


def allocated(payment):
    return sorted((a.invoice_id, a.amount_cents) for a in Allocation.select().where(Allocation.payment == payment.id))


def net_by_invoice(payment):
    out = {}
    for a in Allocation.select().where(Allocation.payment == payment.id):
        out[a.invoice_id] = out.get(a.invoice_id, 0) + a.amount_cents
    return {k: v for k, v in out.items() if v}


def ledger_holds(payment):
    """What the ledger holds of a payment: its net allocations plus its unapplied credit."""
    credit = sum(c.amount_cents for c in CreditEntry.select().where(CreditEntry.payment == payment.id))
    return sum(net_by_invoice(payment).values()) + credit


def authenticate(server, payment, success=True):
    """What Stripe.js does when the customer completes (or fails) the 3-D Secure challenge."""
    state = Payment.get_by_id(payment.id)
    pi = server.client.v1.payment_intents.retrieve(state.processor_ref)
    body = urllib.parse.urlencode({"key": PUBLISHABLE_KEY, "client_secret": pi.client_secret}).encode()
    url = f"{server.url}/v1/payment_intents/{pi.id}/_authenticate?success={'true' if success else 'false'}"
    with urllib.request.urlopen(urllib.request.Request(url, data=body, method="POST"), timeout=10) as resp:
        resp.read()


# --- Cards. -------------------------------------------------------------------------------------------


def test_card_payment_succeeds_goes_oldest_first_and_carries_only_our_reference(logged_in, customer, owing,
                                                                                stripe_server):
    old, new = owing
    payment = start_payment(logged_in, "50.00")
    pi = stripe_server.client.v1.payment_intents.retrieve(payment.processor_ref).to_dict()
    assert pi["amount"] == 5000 and pi["currency"] == "usd"
    # A retried create must send the same body (Stripe refuses a key with other parameters): nothing that
    # changes over time, like the invoices the payment would go to, is in it.
    assert pi["metadata"] == {"payment_ref": payment.ref}
    link = StripeCustomer.get(StripeCustomer.customer == customer.id)
    assert pi["customer"] == link.stripe_id

    method = card_method(stripe_server, CARD_OK)
    answer = logged_in.post(f"/payments/{payment.ref}/stripe/card", {"payment_method": method}).get_json()
    assert answer["done"] and answer["payment_status"] == "succeeded"
    # The box was not ticked: the card paid this once and was not attached to the Stripe Customer.
    assert stripe_server.client.v1.payment_methods.retrieve(method).customer is None
    assert stripe_server.client.v1.payment_intents.retrieve(payment.processor_ref).to_dict().get(
        "setup_future_usage") is None
    assert PaymentMethod.select().count() == 0
    payment = Payment.get_by_id(payment.id)
    assert (payment.status, payment.method_brand, payment.method_last4) == ("succeeded", "Visa", "4242")
    assert allocated(payment) == [(old.id, 3000), (new.id, 2000)]
    assert len(charges_of(stripe_server, payment.processor_ref)) == 1
    page = logged_in.get(f"/payments/{payment.ref}").get_data(as_text=True)
    assert "Payment was successful" in page and "Visa ending 4242" in page


def test_one_stripe_customer_per_portal_customer(logged_in, customer, owing, stripe_server):
    first = start_payment(logged_in, "10.00")
    second = start_payment(logged_in, "10.00")
    assert StripeCustomer.select().where(StripeCustomer.customer == customer.id).count() == 1
    customers = {stripe_server.client.v1.payment_intents.retrieve(p.processor_ref).customer for p in (first, second)}
    assert len(customers) == 1


def test_a_failing_charge_shows_the_reason_records_nothing_and_another_card_works(logged_in, owing, stripe_server):
    payment = start_payment(logged_in, "30.00")
    status, answer = pay_card(logged_in, stripe_server, payment, CARD_CHARGE_FAILS)
    assert status == 200 and not answer["done"]
    assert answer["status"] == "requires_payment_method" and "declined" in answer["message"].lower()
    payment = Payment.get_by_id(payment.id)
    assert payment.status == "awaiting_details" and "declined" in payment.failure_message.lower()
    assert allocated(payment) == [] and charges_of(stripe_server, payment.processor_ref) == []

    # Real Stripe lets the same intent be confirmed again with another card; localstripe derives an
    # intent's status from its last charge and refuses. Either way the customer gets an answer, and a
    # fresh attempt with a good card goes through.
    status, answer = pay_card(logged_in, stripe_server, payment)
    assert status == 200 and not answer["done"] and answer["message"]
    retry = start_payment(logged_in, "30.00")
    assert pay_card(logged_in, stripe_server, retry)[1]["done"]
    assert Payment.get_by_id(retry.id).status == "succeeded"
    assert len(charges_of(stripe_server, retry.processor_ref)) == 1


def test_3d_secure_card_reaches_requires_action_then_completes_after_the_challenge(logged_in, owing, stripe_server):
    payment = start_payment(logged_in, "30.00")
    status, answer = pay_card(logged_in, stripe_server, payment, CARD_3DS)
    assert status == 200 and answer["status"] == "requires_action" and not answer["done"]
    pi = stripe_server.client.v1.payment_intents.retrieve(payment.processor_ref)
    # The server confirmed with use_stripe_sdk: the bank's check is for Stripe.js in the window, not a redirect.
    assert pi.status == "requires_action" and pi.next_action.type == "use_stripe_sdk"
    assert Payment.get_by_id(payment.id).status == "awaiting_details"
    assert charges_of(stripe_server, payment.processor_ref) == []

    authenticate(stripe_server, payment, success=True)
    answer = logged_in.post(f"/payments/{payment.ref}/stripe/sync").get_json()
    assert answer["done"] and Payment.get_by_id(payment.id).status == "succeeded"
    assert len(charges_of(stripe_server, payment.processor_ref)) == 1


def test_3d_secure_failed_challenge_lets_the_customer_try_again(logged_in, owing, stripe_server):
    payment = start_payment(logged_in, "30.00")
    pay_card(logged_in, stripe_server, payment, CARD_3DS)
    authenticate(stripe_server, payment, success=False)
    answer = logged_in.post(f"/payments/{payment.ref}/stripe/sync").get_json()
    assert not answer["done"] and answer["message"]
    assert Payment.get_by_id(payment.id).status == "awaiting_details"
    status, answer = pay_card(logged_in, stripe_server, payment)
    assert answer["done"] and len(charges_of(stripe_server, payment.processor_ref)) == 1


def test_paying_twice_or_reopening_the_window_charges_once(logged_in, owing, stripe_server):
    payment = start_payment(logged_in, "30.00")
    assert pay_card(logged_in, stripe_server, payment)[1]["done"]
    again = pay_card(logged_in, stripe_server, payment)[1]  # a second Pay with a new token
    assert again["done"] and again["payment_status"] == "succeeded"
    assert len(charges_of(stripe_server, payment.processor_ref)) == 1
    assert len(allocated(Payment.get_by_id(payment.id))) == 1

    reopened = logged_in.get(f"/payments/{payment.ref}/window?mode=page")
    assert reopened.status_code == 303 and reopened.location.endswith(f"/payments/{payment.ref}")
    popup = logged_in.get(f"/payments/{payment.ref}/window?mode=popup").get_data(as_text=True)
    assert "data-finished" in popup and "stripe-form" not in popup and "js.stripe.com" not in popup


def test_the_window_is_only_for_the_payment_owner(app, logged_in, owing, stripe_server):
    from tests.factories import Portal, make_customer

    payment = start_payment(logged_in, "30.00")
    other = make_customer()
    stranger = Portal(app.test_client())
    stranger.login(other.email)
    assert stranger.get(f"/payments/{payment.ref}/window?mode=popup").status_code == 404
    for call, data in (("card", {"payment_method": "pm_x"}), ("bank", {"accepted": "1"}), ("sync", {})):
        assert stranger.post(f"/payments/{payment.ref}/stripe/{call}", data).status_code == 404
    assert Payment.get_by_id(payment.id).status == "awaiting_details"


# --- Refunds (command line) and the ledger. -----------------------------------------------------------


def test_refund_in_part_then_in_full_reverses_with_new_rows_and_reopens_invoices(app, logged_in, owing,
                                                                                 stripe_server):
    old, new = owing
    payment = start_payment(logged_in, "50.00")
    pay_card(logged_in, stripe_server, payment)
    before = list(Allocation.select().order_by(Allocation.id).dicts())
    runner = app.test_cli_runner()

    result = runner.invoke(args=["refund", payment.ref, "15.00"])
    assert result.exit_code == 0, result.output
    assert "still refundable" in result.output and "$35.00" in result.output
    payment = Payment.get_by_id(payment.id)
    assert payment.status == "succeeded"
    # The newest allocation ($20 on NEW-2) was reversed by a new row and $5 re-added; old rows untouched.
    assert list(Allocation.select().where(Allocation.id.in_([r["id"] for r in before])).order_by(Allocation.id)
                .dicts()) == before
    reversal = Allocation.get((Allocation.payment == payment.id) & (Allocation.amount_cents < 0))
    assert reversal.amount_cents == -2000 and reversal.reverses.invoice_id == new.id
    assert net_by_invoice(payment) == {old.id: 3000, new.id: 500}
    assert accounts.invoice_view(payment.customer_id, new.id).balance_cents == 3500
    assert ledger_holds(payment) == 3500

    result = runner.invoke(args=["refund", payment.ref])
    assert result.exit_code == 0, result.output
    payment = Payment.get_by_id(payment.id)
    assert payment.status == "refunded" and net_by_invoice(payment) == {} and ledger_holds(payment) == 0
    refunds = stripe_server.client.v1.refunds.list(params={"payment_intent": payment.processor_ref}).data
    assert sorted(r.amount for r in refunds) == [1500, 3500]
    assert PaymentReversal.select().where(PaymentReversal.kind == "refund").count() == 2
    assert Outbox.select().where(Outbox.kind == "payment.reversal").count() == 2
    assert "Payment refunded" in logged_in.get(f"/payments/{payment.ref}").get_data(as_text=True)

    again = runner.invoke(args=["refund", payment.ref])
    assert again.exit_code != 0 and "nothing left to refund" in again.output


def test_refund_refuses_more_than_is_left_and_bad_amounts(app, logged_in, owing, stripe_server):
    payment = start_payment(logged_in, "30.00")
    pay_card(logged_in, stripe_server, payment)
    runner = app.test_cli_runner()
    for amount, message in (("30.01", "at most $30.00"), ("12.345", ""), ("abc", "")):
        result = runner.invoke(args=["refund", payment.ref, amount])
        assert result.exit_code != 0 and message in result.output
    assert runner.invoke(args=["refund", "PAY-NOPE"]).exit_code != 0
    assert stripe_server.client.v1.refunds.list(params={"payment_intent": payment.processor_ref}).data == []


def test_a_refund_made_in_stripe_reaches_the_ledger_by_its_webhook_once(app, client, logged_in, owing,
                                                                        stripe_server):
    payment = start_payment(logged_in, "50.00")
    pay_card(logged_in, stripe_server, payment)
    refund = stripe_server.client.v1.refunds.create(params={"payment_intent": payment.processor_ref, "amount": 1000})
    charge = stripe_server.client.v1.charges.retrieve(refund.charge).to_dict()
    body = event_body("charge.refunded", charge, event_id="evt_refund_1")
    assert post_event(client, body).status_code == 200
    assert post_event(client, event_body("charge.refunded", charge, event_id="evt_refund_2")).status_code == 200
    assert PaymentReversal.get(PaymentReversal.payment == payment.id).processor_ref == refund.id
    assert ledger_holds(Payment.get_by_id(payment.id)) == 4000

    # A refund made by the command line is already recorded: its webhook changes nothing.
    app.test_cli_runner().invoke(args=["refund", payment.ref, "5.00"])
    post_event(client, event_body("charge.refunded", charge, event_id="evt_refund_3"))
    assert PaymentReversal.select().count() == 2 and ledger_holds(Payment.get_by_id(payment.id)) == 3500


def test_a_refund_event_without_its_payment_intent_is_looked_up_through_the_charge(app, client, logged_in, owing,
                                                                                   stripe_server):
    payment = start_payment(logged_in, "50.00")
    pay_card(logged_in, stripe_server, payment)
    refund = stripe_server.client.v1.refunds.create(params={"payment_intent": payment.processor_ref, "amount": 700})
    charge = stripe_server.client.v1.charges.retrieve(refund.charge).to_dict()
    charge.pop("payment_intent", None)  # a thin event: Stripe is asked about the charge
    assert post_event(client, event_body("charge.refunded", charge, event_id="evt_thin_1")).status_code == 200
    assert ledger_holds(Payment.get_by_id(payment.id)) == 4300


# --- Reconcile: the server dies after Stripe charged and before the portal recorded it. ---------------


def test_crash_after_the_charge_is_fixed_by_reconcile_with_no_second_charge(app, logged_in, owing, stripe_server,
                                                                            monkeypatch):
    payment = start_payment(logged_in, "50.00")

    def crash(*args, **kwargs):
        raise RuntimeError("power cut")

    monkeypatch.setattr(payments, "apply_intent_state", crash)
    app.config["PROPAGATE_EXCEPTIONS"] = True
    with pytest.raises(RuntimeError):
        pay_card(logged_in, stripe_server, payment)
    monkeypatch.undo()
    assert len(charges_of(stripe_server, payment.processor_ref)) == 1  # Stripe charged...
    assert Payment.get_by_id(payment.id).status == "awaiting_details"  # ...and we never recorded it

    runner = app.test_cli_runner()
    fresh = runner.invoke(args=["reconcile"])
    assert "settled 0" in fresh.output  # too young: the customer may still be in the window
    Payment.update(updated_at=utcnow() - dt.timedelta(minutes=10)).where(Payment.id == payment.id).execute()
    result = runner.invoke(args=["reconcile"])
    assert result.exit_code == 0, result.output
    assert f"{payment.ref}: awaiting_details -> succeeded" in result.output
    assert runner.invoke(args=["reconcile"]).output.endswith("settled 0\n")
    payment = Payment.get_by_id(payment.id)
    assert payment.status == "succeeded" and ledger_holds(payment) == 5000 and len(allocated(payment)) == 2
    assert len(charges_of(stripe_server, payment.processor_ref)) == 1


def test_reconcile_finds_an_intent_whose_id_was_never_saved(app, logged_in, owing, stripe_server):
    payment = start_payment(logged_in, "30.00")
    pay_card(logged_in, stripe_server, payment)
    intent_id = payment.processor_ref
    # As if the server died between creating the intent and saving its id (and the payment then went through).
    Payment.update(processor_ref=None, status="awaiting_details",
                   updated_at=utcnow() - dt.timedelta(minutes=10)).where(Payment.id == payment.id).execute()
    Allocation.delete().where(Allocation.payment == payment.id).execute()
    result = app.test_cli_runner().invoke(args=["reconcile"])
    assert "awaiting_details -> succeeded" in result.output, result.output
    payment = Payment.get_by_id(payment.id)
    assert payment.processor_ref == intent_id and payment.status == "succeeded" and ledger_holds(payment) == 3000


# --- Webhooks that localstripe itself delivers, verified with the real secret. ------------------------


def test_a_card_payment_the_portal_missed_is_held_at_stripe_and_captured_when_the_customer_comes_back(
        hooks, live_server, logged_in, owing):
    payment = start_payment(logged_in, "30.00")
    # The customer paid, but the portal never heard back (the window closed, the connection dropped). A card
    # intent is created for manual capture, so Stripe only holds the money until the portal takes it.
    hooks.client.v1.payment_intents.update(payment.processor_ref, params={"payment_method": "pm_card_visa"})
    hooks.client.v1.payment_intents.confirm(payment.processor_ref)
    assert hooks.client.v1.payment_intents.retrieve(payment.processor_ref).status == "requires_capture"
    page = logged_in.get(f"/payments/{payment.ref}").get_data(as_text=True)  # the payment page asks Stripe
    assert "Payment was successful" in page
    assert hooks.client.v1.payment_intents.retrieve(payment.processor_ref).status == "succeeded"
    assert ledger_holds(Payment.get_by_id(payment.id)) == 3000


def test_a_card_payment_confirmed_behind_the_portals_back_after_the_balance_was_paid_is_released_not_taken(
        app, hooks, logged_in, customer, owing):
    """The window's page holds the intent's client secret, so a browser can confirm with Stripe directly.
    The money is only held: the portal checks it still fits before it captures, and releases it otherwise."""
    from billing import offline

    payment = start_payment(logged_in, "70.00")  # the whole balance, reserved at Make Payment
    paid, created = offline.record(customer.id, {"kind": "cash", "amount": "70.00", "received_on": TODAY.isoformat(),
                                                 "idempotency_key": payments.new_idempotency_key()}, actor="staff:1")
    assert created and accounts.summary(customer.id).balance_cents == 0  # paid at the counter meanwhile
    hooks.client.v1.payment_intents.update(payment.processor_ref, params={"payment_method": "pm_card_visa"})
    hooks.client.v1.payment_intents.confirm(payment.processor_ref)  # as Stripe.js could, with the client secret
    result = app.test_cli_runner().invoke(args=["reconcile", "--minutes", "0"])
    assert result.exit_code == 0, result.output
    assert f"{payment.ref}: awaiting_details -> canceled" in result.output
    pi = hooks.client.v1.payment_intents.retrieve(payment.processor_ref, params={"expand": ["latest_charge"]})
    # Nothing was taken. Stripe cancels the intent, which releases the hold; localstripe refuses the cancel's
    # cancellation_reason, so there the authorization is left to lapse, still uncaptured.
    assert pi.status in ("canceled", "requires_capture") and not pi.latest_charge.captured
    after = Payment.get_by_id(payment.id)
    assert after.status == "canceled" and after.failure_code == payments.NO_LONGER_FITS
    assert Allocation.select().where(Allocation.payment == payment.id).count() == 0
    assert accounts.summary(customer.id).credit_cents == 0


def test_a_signed_amount_capturable_event_captures_once_after_the_charge_time_check(
        app, client, stripe_server, logged_in, owing):
    payment = start_payment(logged_in, "30.00")
    stripe_server.client.v1.payment_intents.update(payment.processor_ref, params={"payment_method": "pm_card_visa"})
    stripe_server.client.v1.payment_intents.confirm(payment.processor_ref)
    body = event_body("payment_intent.amount_capturable_updated", {"id": payment.processor_ref,
                                                                  "object": "payment_intent"})
    assert post_event(client, body).status_code == 200
    assert post_event(client, body).status_code == 200  # the same event again: nothing more
    after = Payment.get_by_id(payment.id)
    assert after.status == "succeeded" and ledger_holds(after) == 3000
    assert stripe_server.client.v1.payment_intents.retrieve(payment.processor_ref).status == "succeeded"
    assert len(charges_of(stripe_server, payment.processor_ref)) == 1


def test_localstripe_webhook_for_a_failed_charge_records_the_reason(hooks, live_server, logged_in, owing):
    payment = start_payment(logged_in, "30.00")
    hooks.client.v1.payment_intents.update(payment.processor_ref,
                                           params={"payment_method": "pm_card_chargeCustomerFail"})
    with pytest.raises(Exception):
        hooks.client.v1.payment_intents.confirm(payment.processor_ref)
    assert wait_for(lambda: Payment.get_by_id(payment.id).failure_message)
    assert WebhookEvent.select().where(WebhookEvent.event_type == "payment_intent.payment_failed").exists()
    assert Payment.get_by_id(payment.id).status == "awaiting_details"


# --- Configuration and keys. ----------------------------------------------------------------------------


@pytest.mark.parametrize("missing", ["STRIPE_SECRET_KEY", "STRIPE_PUBLISHABLE_KEY", "STRIPE_WEBHOOK_SECRET"])
def test_partial_configuration_refuses_to_start_and_names_the_setting(stripe_server, database_url, missing):
    config = stripe_config(stripe_server, database_url)
    config[missing] = ""
    with pytest.raises(ConfigError) as e:
        create_app(config)
    assert missing in str(e.value)
    for secret in (SECRET_KEY, WEBHOOK_SECRET):
        assert secret not in str(e.value)


def test_test_and_live_keys_cannot_be_mixed(stripe_server, database_url):
    config = {**stripe_config(stripe_server, database_url), "STRIPE_PUBLISHABLE_KEY": "pk_live_abc"}
    with pytest.raises(ConfigError, match="both be test keys or both live keys"):
        create_app(config)


def test_secret_keys_never_reach_pages_or_logs(app, client, logged_in, owing, stripe_server, caplog):
    caplog.set_level(logging.DEBUG)
    payment = start_payment(logged_in, "30.00")
    page = logged_in.get(f"/payments/{payment.ref}/window?mode=popup").get_data(as_text=True)
    assert PUBLISHABLE_KEY in page
    bad = post_event(client, event_body("payment_intent.succeeded", {"id": payment.processor_ref}), "t=1,v1=00")
    assert bad.status_code == 400
    pay_card(logged_in, stripe_server, payment, CARD_CHARGE_FAILS)
    texts = [page, bad.get_data(as_text=True), caplog.text, repr(app.extensions["processor"])]
    for text in texts:
        assert SECRET_KEY not in text and WEBHOOK_SECRET not in text


def test_stripe_js_loads_only_on_the_payment_window(app, logged_in, owing, stripe_server):
    payment = start_payment(logged_in, "30.00")
    js = "js.stripe.com/v3"
    assert js not in logged_in.get("/payments").get_data(as_text=True)
    assert js not in logged_in.get(f"/payments/{payment.ref}").get_data(as_text=True)
    window = logged_in.get(f"/payments/{payment.ref}/window?mode=popup")
    assert js in window.get_data(as_text=True)
    assert stripe_server.url in window.headers["Content-Security-Policy"]


def test_the_inline_fallback_is_the_windows_form_alone_for_the_page_to_mount_not_a_frame(
        app, logged_in, owing, stripe_server):
    import html
    import json
    import re

    payment = start_payment(logged_in, "30.00")
    page = logged_in.get(f"/payments/{payment.ref}").get_data(as_text=True)
    assert 'id="pay-inline"' in page and "data-in-page" in page and "<iframe" not in page
    inline = logged_in.get(f"/payments/{payment.ref}/window?mode=inline").get_data(as_text=True)
    assert "<html" not in inline and "<script" not in inline and inline.lstrip().startswith('<div id="stripe-window"')
    load = json.loads(html.unescape(re.search(r"data-load='([^']+)'", inline).group(1)))
    assert load[0] == stripe_server.url + "/js.stripe.com/v3/" and "stripe-window" in load[1]
    # The billing details the Card Element need not ask again, from the Billing Information step.
    billing = json.loads(html.unescape(re.search(r"data-billing='([^']+)'", inline).group(1)))
    assert billing == {"name": BILLING["name"], "email": BILLING["email"], "phone": BILLING["phone"],
                       "address": {"line1": BILLING["street"], "city": BILLING["city"], "state": BILLING["state"],
                                   "postal_code": BILLING["zip"], "country": "US"}}
    popup = logged_in.get(f"/payments/{payment.ref}/window?mode=popup").get_data(as_text=True)
    assert "<html" in popup and "data-load" not in popup


def test_stripe_js_defaults_to_the_release_named_by_the_sdks_api_version():
    import stripe as sdk

    from billing.processors import stripe as processor

    release = sdk.api_version.rsplit(".", 1)[1]
    assert processor.DEFAULT_JS_URL == f"https://js.stripe.com/{release}/stripe.js"
    assert processor.StripeProcessor("sk_test_x", "pk_test_x", "whsec_x").js_url == processor.DEFAULT_JS_URL


def test_the_window_scripts_words_follow_the_pages_language(app, logged_in, owing, stripe_server):
    import html
    import json
    import re

    payment = start_payment(logged_in, "30.00")

    def words(lang):
        logged_in.post("/language", {"lang": lang, "next": "/"})
        page = logged_in.get(f"/payments/{payment.ref}/window?mode=popup").get_data(as_text=True)
        m = re.search(r"data-words='([^']*)'", page)
        assert m and f'data-locale="{lang}"' in page
        return json.loads(html.unescape(m.group(1)))

    english, spanish = words("en"), words("es")
    assert english["unreached"] == "We could not reach the payment service. Nothing was charged; please try again."
    assert spanish["unreached"].startswith("No pudimos comunicarnos con el servicio de pago")
    assert spanish["linkedEnding"] == "Cuenta bancaria vinculada: {bank} terminada en {last4}"
    assert set(english) == set(spanish) and len(english) == 11
    script = (app.static_folder + "/stripe-window.js")
    with open(script) as f:
        code = f.read()
    for key in english:  # every word the script shows comes from the page, with an English fallback
        assert f"words.{key}" in code


def test_statement_shows_the_refund_and_agrees_with_the_balance(app, logged_in, customer, owing, stripe_server):
    payment = start_payment(logged_in, "50.00")
    pay_card(logged_in, stripe_server, payment)
    app.test_cli_runner().invoke(args=["refund", payment.ref, "15.00"])
    statement = accounts.statement(customer.id, TODAY - dt.timedelta(days=60), TODAY)
    kinds = [(r.kind, r.charge_cents, r.payment_cents) for r in statement.rows if r.kind != "invoice"]
    assert kinds == [("payment", 0, 5000), ("reversal", 1500, 0)]
    assert statement.closing_cents == accounts.summary(customer.id).balance_cents == 3500
    page = logged_in.get("/statement").get_data(as_text=True)
    assert f"Refund: payment {payment.ref}" in page


def attached(server, customer):
    """The ids of the card PaymentMethods attached to the customer's Stripe Customer."""
    cus = StripeCustomer.get(StripeCustomer.customer == customer.id).stripe_id
    return [pm["id"] for pm in server.client.v1.payment_methods.list(
        params={"customer": cus, "type": "card"}).to_dict()["data"]]


def test_a_card_saved_with_consent_is_attached_and_pays_the_next_payment_without_the_window(
        logged_in, customer, owing, stripe_server):
    from billing import payments as pay

    resp = logged_in.post("/pay", {"amount": "30.00", "method_type": "card", "key": pay.new_idempotency_key()})
    ref = resp.location.rsplit("/", 1)[1]
    logged_in.post(f"/payments/{ref}/billing", {**BILLING, "save_for_autopay": "1"})
    first = Payment.get(Payment.ref == ref)
    assert pay_card(logged_in, stripe_server, first)[1]["done"]
    method = PaymentMethod.get(PaymentMethod.customer == customer.id)
    assert (method.processor, method.brand, method.last4) == ("stripe", "Visa", "4242")
    assert attached(stripe_server, customer) == [method.processor_ref]
    pi = stripe_server.client.v1.payment_intents.retrieve(first.processor_ref).to_dict()
    assert pi["setup_future_usage"] == "off_session" and pi["metadata"] == {"payment_ref": first.ref}

    resp = logged_in.post("/pay", {"amount": "20.00", "method_type": "card", "saved_method": str(method.id),
                                   "key": pay.new_idempotency_key()})
    ref = resp.location.rsplit("/", 1)[1]
    resp = logged_in.post(f"/payments/{ref}/billing", BILLING)
    second = Payment.get(Payment.ref == ref)
    assert second.status == "succeeded" and second.processor_ref != first.processor_ref
    assert len(charges_of(stripe_server, second.processor_ref)) == 1
    assert ledger_holds(second) == 2000


def test_a_saved_card_whose_bank_asks_for_its_check_opens_the_window_that_runs_it_at_once(
        logged_in, customer, owing, stripe_server):
    from billing import payments as pay

    resp = logged_in.post("/pay", {"amount": "30.00", "method_type": "card", "key": pay.new_idempotency_key()})
    ref = resp.location.rsplit("/", 1)[1]
    logged_in.post(f"/payments/{ref}/billing", {**BILLING, "save_for_autopay": "1"})
    first = Payment.get(Payment.ref == ref)
    assert pay_card(logged_in, stripe_server, first, CARD_3DS)[1]["status"] == "requires_action"
    authenticate(stripe_server, first)
    assert logged_in.post(f"/payments/{first.ref}/stripe/sync").get_json()["done"]
    method = PaymentMethod.get(PaymentMethod.customer == customer.id)
    assert attached(stripe_server, customer) == [method.processor_ref]

    # The next payment charges the saved card at the billing step (customer present); its bank asks again.
    resp = logged_in.post("/pay", {"amount": "20.00", "method_type": "card", "saved_method": str(method.id),
                                   "key": pay.new_idempotency_key()})
    ref = resp.location.rsplit("/", 1)[1]
    resp = logged_in.post(f"/payments/{ref}/billing", BILLING)
    second = Payment.get(Payment.ref == ref)
    assert second.status == "awaiting_details" and "/window" in resp.location
    pi = stripe_server.client.v1.payment_intents.retrieve(second.processor_ref)
    assert pi.status == "requires_action" and pi.next_action.type == "use_stripe_sdk"
    assert pi.payment_method == method.processor_ref
    window = logged_in.get(resp.location).get_data(as_text=True)
    assert "data-next-action" in window and pi.client_secret in window
    assert "data-next-action" not in logged_in.get(f"/payments/{first.ref}/window?mode=popup").get_data(as_text=True)

    authenticate(stripe_server, second)
    assert logged_in.post(f"/payments/{second.ref}/stripe/sync").get_json()["done"]
    assert Payment.get_by_id(second.id).status == "succeeded"
    assert len(charges_of(stripe_server, second.processor_ref)) == 1


def test_stripe_unreachable_the_window_says_so_and_nothing_is_charged(app, logged_in, owing, stripe_server,
                                                                       monkeypatch):
    import stripe

    payment = start_payment(logged_in, "30.00")
    proc = app.extensions["processor"]

    def down(*args, **kwargs):
        raise stripe.APIConnectionError("connection refused")

    monkeypatch.setattr(proc._client.v1.payment_intents, "retrieve", down)
    resp = logged_in.get(f"/payments/{payment.ref}/window?mode=popup")
    assert resp.status_code == 503 and "could not reach the payment service" in resp.get_data(as_text=True)
    sync = logged_in.post(f"/payments/{payment.ref}/stripe/sync")
    assert sync.status_code == 502 and not sync.get_json()["done"]
    assert Payment.get_by_id(payment.id).status == "awaiting_details"
    monkeypatch.undo()
    assert logged_in.get(f"/payments/{payment.ref}/window?mode=popup").status_code == 200


def test_live_configuration_allows_exactly_stripes_origins(database_url):
    from views import _csp, sandbox, stripe_pay  # each processor's pages module names its window's origins

    csp = _csp(stripe_pay.csp_sources({"STRIPE_JS_URL": "https://js.stripe.com/v3/", "STRIPE_API_BASE": ""}))
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    for name in ("script-src", "frame-src", "connect-src"):
        for origin in ("https://js.stripe.com", "https://api.stripe.com", "https://hooks.stripe.com"):
            assert origin in directives[name].split()
    assert "'unsafe-inline'" not in directives["script-src"]
    assert "stripe" not in _csp(sandbox.csp_sources({"STRIPE_JS_URL": "https://js.stripe.com/v3/"}))


def test_with_a_card_fee_stripe_charges_the_payment_plus_the_fee_and_only_the_payment_is_applied(
        logged_in, customer, owing, stripe_server):
    from tests.test_fees import set_fees

    old, new = owing
    set_fees(card=(290, 30))  # 2.9 % + $0.30 of $50.00: 145 + 30 cents
    payment = start_payment(logged_in, "50.00")
    assert payment.fee_cents == 175
    assert stripe_server.client.v1.payment_intents.retrieve(payment.processor_ref).to_dict()["amount"] == 5175
    window = logged_in.get(f"/payments/{payment.ref}/window?mode=popup").get_data(as_text=True)
    assert '<span id="stripe-amount">$51.75</span>' in window
    status, answer = pay_card(logged_in, stripe_server, payment)
    assert status == 200 and answer["payment_status"] == "succeeded"
    payment = Payment.get_by_id(payment.id)
    [charge] = charges_of(stripe_server, payment.processor_ref)
    assert charge["amount"] == 5175
    assert allocated(payment) == [(old.id, 3000), (new.id, 2000)] and ledger_holds(payment) == 5000


# --- Polling: the page reads our own row; Stripe is asked with backoff. -------------------------------------


def test_a_polling_page_asks_stripe_with_backoff_and_a_reload_asks_at_once(app, logged_in, owing, monkeypatch):
    """About 50 open pages polling every 2 s would reach Stripe's per-endpoint read limit: a poll asks Stripe
    only once its backoff (an eighth of the attempt's age, from 2 s up to 2 minutes) has passed."""
    proc = app.extensions["processor"]
    payment = start_payment(logged_in)
    asked = []
    real = proc._client.v1.payment_intents.retrieve

    def counting(intent_id, *args, **kwargs):
        asked.append(intent_id)
        return real(intent_id, *args, **kwargs)
    monkeypatch.setattr(proc._client.v1.payment_intents, "retrieve", counting)

    poll = f"/payments/{payment.ref}/status?seen=awaiting_details"
    for _ in range(5):
        assert logged_in.get(poll, headers={"HX-Request": "true"}).status_code == 200
    assert len(asked) == 1  # the first poll asked; the next four read our row
    with write_tx():  # the attempt is 16 minutes old and was last asked a minute ago: the wait is now 2 minutes
        Payment.update(updated_at=utcnow() - dt.timedelta(minutes=16),
                       checked_at=utcnow() - dt.timedelta(minutes=1)).where(Payment.id == payment.id).execute()
    logged_in.get(poll, headers={"HX-Request": "true"})
    assert len(asked) == 1
    with write_tx():
        Payment.update(checked_at=utcnow() - dt.timedelta(minutes=2, seconds=1)).where(
            Payment.id == payment.id).execute()
    logged_in.get(poll, headers={"HX-Request": "true"})
    assert len(asked) == 2
    logged_in.get(f"/payments/{payment.ref}")  # the customer reloads: asked at once (and the window reopened)
    assert len(asked) > 2


def test_sync_due_grows_with_the_attempts_age():
    now = utcnow()
    fresh = Payment(updated_at=now - dt.timedelta(seconds=5), checked_at=now - dt.timedelta(seconds=2))
    assert payments.sync_due(fresh, now) and payments.sync_due(Payment(updated_at=now, checked_at=None), now)
    old = Payment(updated_at=now - dt.timedelta(minutes=8), checked_at=now - dt.timedelta(seconds=59))
    assert not payments.sync_due(old, now)  # 8 minutes old: asked at most once a minute
    assert payments.sync_due(Payment(updated_at=old.updated_at, checked_at=now - dt.timedelta(seconds=60)), now)
    ancient = Payment(updated_at=now - dt.timedelta(days=3), checked_at=now - dt.timedelta(minutes=2))
    assert payments.sync_due(ancient, now)  # never waits more than 2 minutes
