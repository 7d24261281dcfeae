"""Stripe webhooks at /webhooks/stripe: signatures, exactly-once, events out of order, ACH (processing,
settled, failed, returned), disputes and saved methods.

localstripe has no ACH, disputes or setup_intent events, so these tests send events in Stripe's documented
shape, signed with the webhook secret, and ``StripeSide`` plays Stripe's part for the objects localstripe
cannot hold (the portal re-reads every object from "Stripe" rather than trusting the event).
"""
import datetime as dt
import json
import threading
import time
import urllib.request

import pytest
import stripe

from billing import accounts
from db.models import (
    Allocation,
    CreditEntry,
    Outbox,
    Payment,
    PaymentInvoice,
    PaymentMandate,
    PaymentMethod,
    PaymentReversal,
    StripeCustomer,
    WebhookEvent,
    utcnow,
)
from tests.conftest import make_invoice
from tests.stripe_support import (  # noqa: F401  (fixtures)
    WEBHOOK_SECRET,
    app,
    event_body,
    localstripe,
    pay_card,
    post_event,
    sign,
    start_payment,
    stripe_server,
)

TODAY = dt.date.today()


class StripeSide:
    """Stripe's current view of the objects localstripe cannot hold (ACH PaymentIntents, Disputes), in the
    shapes of Stripe's API reference ("The PaymentIntent object", "The Dispute object"), served over HTTP by
    the wire in front of localstripe: the portal reads them through the real ``stripe`` library."""

    def __init__(self, server):
        self.wire = server.wire

    @property
    def intents(self):
        return {path.rsplit("/", 1)[1]: obj for path, obj in self.wire.objects.items()
                if path.startswith("/v1/payment_intents/")}

    @property
    def disputes(self):
        return {path.rsplit("/", 1)[1]: obj for path, obj in self.wire.objects.items()
                if path.startswith("/v1/disputes/")}

    @property
    def confirmed(self):
        """(intent id, decoded form body) of each confirm the portal sent for these intents."""
        return [(path.split("/")[3], body) for m, path, body in self.wire.requests
                if m == "POST" and path.endswith("/confirm") and path[:-8] in self.wire.objects]

    def set_ach(self, intent_id, status, error=None, amount=None, next_action=None):
        """An ACH (us_bank_account) PaymentIntent, in Stripe's shape."""
        path = f"/v1/payment_intents/{intent_id}"
        pi = self.wire.objects.get(path) or {
            "id": intent_id, "object": "payment_intent", "amount": amount, "currency": "usd",
            "client_secret": f"{intent_id}_secret_test", "payment_method_types": ["us_bank_account"],
            "payment_method": {"id": "pm_ach_test", "object": "payment_method", "type": "us_bank_account",
                               "us_bank_account": {"bank_name": "STRIPE TEST BANK", "last4": "6789",
                                                   "account_type": "checking", "routing_number": "110000000"}},
            "latest_charge": None, "last_payment_error": None, "next_action": None, "metadata": {}}
        pi.update(status=status, last_payment_error=error, next_action=next_action)
        self.wire.objects[path] = pi
        self.wire.on_confirm.setdefault(path, {"status": "processing"})
        return pi

    def set_dispute(self, dispute_id, intent_id, status, amount, reason="fraudulent"):
        """A Dispute, in Stripe's shape."""
        self.wire.objects[f"/v1/disputes/{dispute_id}"] = {
            "id": dispute_id, "object": "dispute", "amount": amount, "currency": "usd", "charge": "ch_test",
            "payment_intent": intent_id, "reason": reason, "status": status}
        return self.wire.objects[f"/v1/disputes/{dispute_id}"]


RETURNED = {"code": "insufficient_funds", "type": "card_error",
            "message": "The customer's bank account has insufficient funds to cover this payment (R01)."}


@pytest.fixture
def side(app, stripe_server):
    return StripeSide(stripe_server)


@pytest.fixture
def owing(customer):
    old = make_invoice(customer, 3000, due=TODAY - dt.timedelta(days=5), number="OLD-1")
    new = make_invoice(customer, 4000, due=TODAY + dt.timedelta(days=10), number="NEW-2")
    return old, new


def deliver(client, event_type, obj, event_id=None):
    resp = post_event(client, event_body(event_type, obj, event_id=event_id))
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return resp.get_json()


def net(payment):
    out = {}
    for a in Allocation.select().where(Allocation.payment == payment.id):
        out[a.invoice_id] = out.get(a.invoice_id, 0) + a.amount_cents
    return {k: v for k, v in out.items() if v}


def fresh(payment):
    return Payment.get_by_id(payment.id)


def ach_payment(logged_in, side, amount="50.00", cents=5000):
    payment = start_payment(logged_in, amount, method_type="ach")
    side.set_ach(payment.processor_ref, "requires_confirmation", amount=cents)
    return payment


def confirm_bank(logged_in, payment, **data):
    """The window's Pay for a bank account: the Payment Element's ConfirmationToken, and the mandate box."""
    return logged_in.post(f"/payments/{payment.ref}/stripe/confirm", {"confirmation_token": "ctoken_bank", **data})


# --- Signatures. -------------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["tampered body", "wrong secret", "stale", "missing", "garbage"])
def test_bad_or_stale_signature_is_rejected_and_changes_nothing(client, logged_in, owing, stripe_server, how):
    payment = start_payment(logged_in, "30.00")
    stripe_server.client.v1.payment_intents.update(payment.processor_ref, params={"payment_method": "pm_card_visa"})
    stripe_server.client.v1.payment_intents.confirm(payment.processor_ref)
    body = event_body("payment_intent.succeeded", {"id": payment.processor_ref, "object": "payment_intent"})
    signature = {
        "tampered body": sign(body.replace(b'"livemode": false', b'"livemode": true ')),
        "wrong secret": sign(body, secret="whsec_someone_else"),
        "stale": sign(body, timestamp=time.time() - 6 * 60),
        "missing": "",
        "garbage": "t=abc,v1=zz",
    }[how]
    resp = post_event(client, body, signature)
    assert resp.status_code == 400
    assert WebhookEvent.select().count() == 0
    assert fresh(payment).status == "awaiting_details" and Allocation.select().count() == 0
    assert post_event(client, body).status_code == 200  # the same body, properly signed, is applied
    assert fresh(payment).status == "succeeded"


def test_a_signature_within_five_minutes_is_accepted(client, stripe_server):
    pi = stripe_server.client.v1.payment_intents.create(params={"amount": 100, "currency": "usd"})
    body = event_body("payment_intent.succeeded", {"id": pi.id, "object": "payment_intent"})
    assert post_event(client, body, sign(body, timestamp=time.time() - 4 * 60)).status_code == 200
    assert WebhookEvent.select().count() == 1


def test_an_event_about_an_object_stripe_does_not_have_is_acknowledged(client, stripe_server):
    body = event_body("payment_intent.succeeded", {"id": "pi_not_in_this_account", "object": "payment_intent"})
    assert post_event(client, body).status_code == 200


def test_stripe_unreachable_while_re_reading_asks_for_a_retry_and_records_nothing(app, client, stripe_server,
                                                                                monkeypatch):
    proc = app.extensions["processor"]

    def down(*args, **kwargs):
        raise stripe.APIConnectionError("connection refused")

    monkeypatch.setattr(proc._client.v1.payment_intents, "retrieve", down)
    body = event_body("payment_intent.succeeded", {"id": "pi_anything", "object": "payment_intent"})
    assert post_event(client, body).status_code == 503
    assert WebhookEvent.select().count() == 0


def test_ignored_event_types_get_2xx_at_once_and_record_nothing(client, stripe_server):
    body = event_body("customer.created", {"id": "cus_123", "object": "customer"})
    started = time.perf_counter()
    resp = post_event(client, body)
    assert resp.status_code == 200 and resp.get_json()["handled"] is False
    assert time.perf_counter() - started < 0.5
    assert WebhookEvent.select().count() == 0


def test_the_webhook_needs_no_csrf_token_but_every_form_does(app, client, stripe_server):
    app.config["WTF_CSRF_ENABLED"] = True
    body = event_body("customer.created", {"id": "cus_1"})
    assert post_event(client, body).status_code == 200
    assert client.post("/pay", data={"amount": "1.00"}).status_code in (302, 400)


# --- Exactly once, in any order. --------------------------------------------------------------------------


def test_the_same_event_delivered_three_times_at_once_allocates_once(live_server, logged_in, owing, stripe_server):
    payment = start_payment(logged_in, "50.00")
    stripe_server.client.v1.payment_intents.update(payment.processor_ref, params={"payment_method": "pm_card_visa"})
    stripe_server.client.v1.payment_intents.confirm(payment.processor_ref)
    body = event_body("payment_intent.succeeded", {"id": payment.processor_ref, "object": "payment_intent"},
                      event_id="evt_triple")
    headers = {"Stripe-Signature": sign(body), "Content-Type": "application/json"}
    statuses, barrier = [], threading.Barrier(3)

    def send():
        barrier.wait()
        req = urllib.request.Request(live_server.url + "/webhooks/stripe", data=body, headers=headers, method="POST")
        with urllib.request.urlopen(req, timeout=20) as resp:
            statuses.append((resp.status, json.loads(resp.read())["duplicate"]))

    threads = [threading.Thread(target=send) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(statuses) == [(200, False), (200, True), (200, True)]
    assert WebhookEvent.select().count() == 1
    assert Allocation.select().count() == 2 and sum(net(payment).values()) == 5000
    assert fresh(payment).status == "succeeded"


def test_an_old_failure_event_arriving_after_success_changes_nothing(client, logged_in, owing, stripe_server):
    payment = start_payment(logged_in, "30.00")
    pay_card(logged_in, stripe_server, payment)
    deliver(client, "payment_intent.payment_failed", {"id": payment.processor_ref, "object": "payment_intent"})
    deliver(client, "payment_intent.succeeded", {"id": payment.processor_ref, "object": "payment_intent"})
    assert fresh(payment).status == "succeeded" and net(payment) and Allocation.select().count() == 1


def test_ach_events_out_of_order_end_in_the_right_state(client, logged_in, owing, side):
    payment = ach_payment(logged_in, side)
    side.set_ach(payment.processor_ref, "succeeded")
    deliver(client, "payment_intent.succeeded", side.intents[payment.processor_ref])
    obj = side.set_ach(payment.processor_ref, "processing").copy()  # the older event's object said processing
    side.set_ach(payment.processor_ref, "succeeded")
    deliver(client, "payment_intent.processing", obj)  # late: Stripe now says succeeded, so nothing moves back
    payment = fresh(payment)
    assert payment.status == "succeeded" and sum(net(payment).values()) == 5000
    assert accounts.summary(payment.customer_id).pending_cents == 0


# --- ACH: processing for days, then settled, failed, or returned after settling. ------------------------


def test_ach_mandate_is_shown_accepted_and_recorded_then_processing_then_succeeded(client, logged_in, owing, side):
    old, new = owing
    payment = ach_payment(logged_in, side)
    window = logged_in.get(f"/payments/{payment.ref}/window?mode=popup").get_data(as_text=True)
    assert 'id="mandate"' in window and "authorize Test ISP to debit" in window and "$50.00" in window

    refused = confirm_bank(logged_in, payment)
    assert refused.status_code == 422 and refused.get_json()["field"] == "accepted"
    assert side.confirmed == [] and PaymentMandate.select().count() == 0

    answer = confirm_bank(logged_in, payment, accepted="1").get_json()
    assert answer["done"] and answer["payment_status"] == "processing"
    mandate = PaymentMandate.get(PaymentMandate.payment == payment.id)
    assert mandate.ip == "127.0.0.1" and mandate.user_agent.startswith("Werkzeug/")
    assert "authorize Test ISP" in mandate.text and mandate.accepted_at is not None
    (intent_id, params), = side.confirmed
    assert intent_id == payment.processor_ref and params["confirmation_token"] == ["ctoken_bank"]
    assert params["mandate_data[customer_acceptance][type]"] == ["online"]
    assert params["mandate_data[customer_acceptance][online][ip_address]"] == ["127.0.0.1"]
    assert params["mandate_data[customer_acceptance][online][user_agent]"] == [mandate.user_agent]
    assert "setup_future_usage" not in params and "once" in mandate.text  # not saved: a one-time debit

    payment = fresh(payment)
    assert payment.status == "processing" and (payment.method_brand, payment.method_last4) == ("STRIPE TEST BANK",
                                                                                                "6789")
    assert accounts.invoice_view(payment.customer_id, old.id).pending
    assert "Pending" in logged_in.get("/invoices").get_data(as_text=True)
    assert Allocation.select().count() == 0

    obj = side.intents[payment.processor_ref]  # Stripe's object, as the event carries it
    deliver(client, "payment_intent.processing", obj)
    side.set_ach(payment.processor_ref, "succeeded")
    deliver(client, "payment_intent.succeeded", obj)
    payment = fresh(payment)
    assert payment.status == "succeeded" and net(payment) == {old.id: 3000, new.id: 2000}
    assert not accounts.invoice_view(payment.customer_id, old.id).pending


def test_ach_pending_then_failed_leaves_the_invoices_open(client, logged_in, owing, side):
    old, _ = owing
    payment = ach_payment(logged_in, side)
    confirm_bank(logged_in, payment, accepted="1")
    side.set_ach(payment.processor_ref, "requires_payment_method", error=RETURNED)
    deliver(client, "payment_intent.payment_failed", side.intents[payment.processor_ref])
    payment = fresh(payment)
    assert payment.status == "failed" and "insufficient funds" in payment.failure_message
    assert Allocation.select().count() == 0
    assert accounts.invoice_view(payment.customer_id, old.id).balance_cents == 3000
    assert not accounts.invoice_view(payment.customer_id, old.id).pending
    assert "Payment failed" in logged_in.get(f"/payments/{payment.ref}").get_data(as_text=True)


def settled_ach(client, logged_in, side):
    payment = ach_payment(logged_in, side)
    confirm_bank(logged_in, payment, accepted="1")
    side.set_ach(payment.processor_ref, "succeeded")
    deliver(client, "payment_intent.succeeded", side.intents[payment.processor_ref])
    assert fresh(payment).status == "succeeded"
    return fresh(payment)


def test_a_late_ach_return_arrives_as_a_dispute_and_is_taken_back_with_new_rows(client, logged_in, owing, side):
    # Stripe never turns a succeeded PaymentIntent failed: a bank that returns a settled debit (R10, "customer
    # advises not authorized") opens a dispute on the charge (Stripe's ACH Direct Debit guide, "Disputes";
    # the Dispute object with payment_method_details.type = "us_bank_account").
    old, new = owing
    payment = settled_ach(client, logged_in, side)
    originals = list(Allocation.select().order_by(Allocation.id).dicts())
    assert sum(r["amount_cents"] for r in originals) == 5000

    side.set_ach(payment.processor_ref, "requires_payment_method", error=RETURNED)  # an old-style report
    deliver(client, "payment_intent.payment_failed", side.intents[payment.processor_ref])
    assert fresh(payment).status == "succeeded" and sum(net(payment).values()) == 5000  # not a transition

    dispute = side.set_dispute("du_ach_1", payment.processor_ref, "lost", 5000, reason="debit_not_authorized")
    dispute["payment_method_details"] = {"type": "us_bank_account", "us_bank_account": {"bank_name": "STRIPE TEST BANK"}}
    deliver(client, "charge.dispute.created", dispute)
    deliver(client, "charge.dispute.created", dispute)  # a different delivery of the same news
    payment = fresh(payment)
    assert payment.status == "reversed" and payment.dispute_status == "lost"
    assert list(Allocation.select().where(Allocation.id.in_([r["id"] for r in originals]))
                .order_by(Allocation.id).dicts()) == originals  # never edited
    assert net(payment) == {}
    assert accounts.invoice_view(payment.customer_id, old.id).balance_cents == 3000
    assert accounts.invoice_view(payment.customer_id, new.id).balance_cents == 4000
    assert PaymentReversal.get(PaymentReversal.payment == payment.id).kind == "dispute"
    email = Outbox.get(Outbox.kind == "payment.reversal")
    assert email.to_addr == payment.billing_email and payment.ref in email.subject


def saved_bank_with_autopay(customer, payment=None):
    from db.models import AutopayEnrolment

    method = PaymentMethod.create(customer=customer.id, processor="stripe", processor_ref="pm_ach_test",
                                  method_type="ach", brand="STRIPE TEST BANK", last4="6789")
    AutopayEnrolment.create(customer=customer.id, payment_method=method.id, enabled=True)
    if payment is not None:
        Payment.update(payment_method=method.id).where(Payment.id == payment.id).execute()
    return method


def autopay_on(customer):
    from db.models import AutopayEnrolment

    return AutopayEnrolment.get(AutopayEnrolment.customer == customer.id).enabled


def test_an_ach_dispute_takes_the_bank_account_out_of_use_turns_autopay_off_and_says_so(
        client, logged_in, customer, owing, side):
    payment = settled_ach(client, logged_in, side)
    method = saved_bank_with_autopay(customer, payment)
    deliver(client, "charge.dispute.created",
            side.set_dispute("du_ach_2", payment.processor_ref, "needs_response", 5000, "debit_not_authorized"))
    method = PaymentMethod.get_by_id(method.id)
    assert method.removed_at is not None and "disputed" in method.unusable_reason
    assert not autopay_on(customer)
    email = Outbox.get(Outbox.kind == "method_unusable")
    assert "STRIPE TEST BANK ending 6789" in email.text_body and "autopay" in email.text_body
    assert "6789" not in logged_in.get("/methods").get_data(as_text=True)


def test_an_inactive_mandate_takes_the_bank_account_out_of_use_and_turns_autopay_off(
        client, logged_in, customer, stripe_server):
    # Stripe's "The Mandate object" (type multi_use, status inactive), delivered as mandate.updated.
    method = saved_bank_with_autopay(customer)
    mandate = {"id": "mandate_1Abc", "object": "mandate", "payment_method": "pm_ach_test", "status": "active",
               "type": "multi_use", "customer_acceptance": {"type": "online"},
               "payment_method_details": {"type": "us_bank_account", "us_bank_account": {}}}
    stripe_server.wire.objects["/v1/mandates/mandate_1Abc"] = mandate
    deliver(client, "mandate.updated", mandate)
    assert PaymentMethod.get_by_id(method.id).removed_at is None and autopay_on(customer)  # still active
    mandate["status"] = "inactive"
    deliver(client, "mandate.updated", mandate)
    method = PaymentMethod.get_by_id(method.id)
    assert method.removed_at is not None and "no longer active" in method.unusable_reason
    assert not autopay_on(customer)
    assert Outbox.select().where(Outbox.kind == "method_unusable").count() == 1
    deliver(client, "mandate.updated", mandate)  # again: nothing more
    assert Outbox.select().where(Outbox.kind == "method_unusable").count() == 1


# --- Disputes. ------------------------------------------------------------------------------------------


def paid_card(logged_in, stripe_server, amount="50.00"):
    payment = start_payment(logged_in, amount)
    assert pay_card(logged_in, stripe_server, payment)[1]["done"]
    return fresh(payment)


def test_dispute_opened_reverses_then_won_applies_the_money_again(client, logged_in, owing, stripe_server, side):
    old, new = owing
    payment = paid_card(logged_in, stripe_server)
    side.set_dispute("du_1", payment.processor_ref, "needs_response", 5000)
    deliver(client, "charge.dispute.created", side.disputes["du_1"])
    payment = fresh(payment)
    assert payment.status == "disputed" and net(payment) == {}
    assert accounts.summary(payment.customer_id).balance_cents == 7000
    assert Outbox.select().where(Outbox.kind == "payment.reversal").count() == 1

    side.set_dispute("du_1", payment.processor_ref, "won", 5000)
    deliver(client, "charge.dispute.closed", side.disputes["du_1"])
    deliver(client, "charge.dispute.closed", side.disputes["du_1"])
    payment = fresh(payment)
    assert payment.status == "succeeded" and net(payment) == {old.id: 3000, new.id: 2000}
    assert [r.kind for r in PaymentReversal.select().order_by(PaymentReversal.id)] == ["dispute", "dispute_won"]


def test_dispute_lost_stays_reversed(client, logged_in, owing, stripe_server, side):
    payment = paid_card(logged_in, stripe_server, "30.00")
    side.set_dispute("du_2", payment.processor_ref, "needs_response", 3000)
    deliver(client, "charge.dispute.created", side.disputes["du_2"])
    side.set_dispute("du_2", payment.processor_ref, "lost", 3000)
    deliver(client, "charge.dispute.closed", side.disputes["du_2"])
    payment = fresh(payment)
    assert payment.status == "reversed" and net(payment) == {}
    assert sum(c.amount_cents for c in CreditEntry.select()) == 0


def test_dispute_events_out_of_order_end_in_the_right_state(client, logged_in, owing, stripe_server, side):
    won = paid_card(logged_in, stripe_server, "30.00")
    side.set_dispute("du_won", won.processor_ref, "won", 3000)
    deliver(client, "charge.dispute.closed", side.disputes["du_won"])
    deliver(client, "charge.dispute.created", side.disputes["du_won"])  # late; Stripe says won
    assert fresh(won).status == "succeeded" and sum(net(won).values()) == 3000
    assert PaymentReversal.select().count() == 0

    lost = paid_card(logged_in, stripe_server, "40.00")
    side.set_dispute("du_lost", lost.processor_ref, "lost", 4000)
    deliver(client, "charge.dispute.closed", side.disputes["du_lost"])
    deliver(client, "charge.dispute.created", side.disputes["du_lost"])
    assert fresh(lost).status == "reversed" and net(lost) == {}
    assert PaymentReversal.select().count() == 1


# Shapes: Stripe's "The Dispute object" (status among warning_needs_response, warning_under_review,
# warning_closed, needs_response, under_review, appeal_needs_response, appeal_under_review, won, lost,
# prevented), delivered as charge.dispute.created / .updated / .closed, as in Stripe's "Dispute webhooks".


def test_an_inquiry_only_flags_the_payment_and_closing_it_changes_no_money(client, logged_in, owing, stripe_server,
                                                                            side):
    old, new = owing
    payment = paid_card(logged_in, stripe_server)
    deliver(client, "charge.dispute.created", side.set_dispute("du_inq", payment.processor_ref,
                                                                "warning_needs_response", 5000, "general"))
    payment = fresh(payment)
    assert payment.status == "succeeded" and payment.dispute_status == "warning_needs_response"
    assert net(payment) == {old.id: 3000, new.id: 2000} and PaymentReversal.select().count() == 0
    assert Outbox.select().where(Outbox.kind == "payment.reversal").count() == 0
    deliver(client, "charge.dispute.updated", side.set_dispute("du_inq", payment.processor_ref,
                                                                "warning_under_review", 5000, "general"))
    deliver(client, "charge.dispute.closed", side.set_dispute("du_inq", payment.processor_ref,
                                                               "warning_closed", 5000, "general"))
    payment = fresh(payment)
    assert payment.status == "succeeded" and payment.dispute_status == "warning_closed"
    assert net(payment) == {old.id: 3000, new.id: 2000} and PaymentReversal.select().count() == 0


def test_an_inquiry_that_becomes_a_dispute_takes_the_money_when_it_does(client, logged_in, owing, stripe_server,
                                                                         side):
    payment = paid_card(logged_in, stripe_server)
    deliver(client, "charge.dispute.created", side.set_dispute("du_x", payment.processor_ref,
                                                                "warning_needs_response", 5000))
    assert fresh(payment).status == "succeeded"
    deliver(client, "charge.dispute.updated", side.set_dispute("du_x", payment.processor_ref, "needs_response", 5000))
    assert fresh(payment).status == "disputed" and net(payment) == {}


@pytest.mark.parametrize("outcome", ["won", "prevented"])
def test_a_dispute_won_or_prevented_gives_back_what_it_took(client, logged_in, owing, stripe_server, side, outcome):
    payment = paid_card(logged_in, stripe_server)
    deliver(client, "charge.dispute.created", side.set_dispute("du_p", payment.processor_ref, "needs_response", 5000))
    deliver(client, "charge.dispute.updated", side.set_dispute("du_p", payment.processor_ref, "under_review", 5000))
    assert fresh(payment).status == "disputed" and net(payment) == {}
    deliver(client, "charge.dispute.closed", side.set_dispute("du_p", payment.processor_ref, outcome, 5000))
    payment = fresh(payment)
    assert payment.status == "succeeded" and sum(net(payment).values()) == 5000


def test_an_appeal_after_a_loss_keeps_the_money_taken_until_it_is_won(client, logged_in, owing, stripe_server, side):
    payment = paid_card(logged_in, stripe_server)
    for status in ("needs_response", "under_review", "lost", "appeal_needs_response", "appeal_under_review"):
        deliver(client, "charge.dispute.updated", side.set_dispute("du_a", payment.processor_ref, status, 5000))
        assert net(payment) == {}, status
    payment = fresh(payment)
    assert payment.status == "reversed" and payment.dispute_status == "appeal_under_review"
    assert PaymentReversal.select().count() == 1  # taken once, through every state
    deliver(client, "charge.dispute.closed", side.set_dispute("du_a", payment.processor_ref, "won", 5000))
    payment = fresh(payment)
    assert payment.status == "succeeded" and sum(net(payment).values()) == 5000


def test_the_portal_subscribes_to_every_dispute_refund_mandate_and_card_update_event_it_handles():
    from billing.processors.stripe import HANDLED_EVENTS

    for event in ("charge.dispute.created", "charge.dispute.updated", "charge.dispute.closed", "charge.refund.updated",
                  "payment_intent.requires_action", "payment_intent.canceled", "mandate.updated",
                  "payment_method.updated", "payment_method.automatically_updated"):
        assert event in HANDLED_EVENTS


# --- Refunds that fail later, and cards the bank renewed. ---------------------------------------------------


def test_a_refund_that_fails_later_is_reinstated_once_and_the_customer_is_told(app, client, logged_in, owing,
                                                                               stripe_server):
    # Stripe's "The Refund object" moving to status failed (failure_reason), delivered as charge.refund.updated.
    payment = paid_card(logged_in, stripe_server)
    out = app.test_cli_runner().invoke(args=["refund", payment.ref])
    assert out.exit_code == 0, out.output
    payment = fresh(payment)
    assert payment.status == "refunded" and net(payment) == {}
    refund_id = PaymentReversal.get(PaymentReversal.kind == "refund").processor_ref
    refund = {"id": refund_id, "object": "refund", "amount": 5000, "currency": "usd", "charge": "ch_x",
              "payment_intent": payment.processor_ref, "status": "failed", "failure_reason": "expired_or_canceled_card"}
    stripe_server.wire.objects["/v1/refunds"] = {"object": "list", "data": [refund], "has_more": False,
                                                 "url": "/v1/refunds"}
    deliver(client, "charge.refund.updated", refund)
    deliver(client, "charge.refund.updated", refund, event_id="evt_again")
    payment = fresh(payment)
    assert payment.status == "succeeded" and sum(net(payment).values()) == 5000
    assert [r.kind for r in PaymentReversal.select().order_by(PaymentReversal.id)] == ["refund", "refund_failed"]
    assert Outbox.select().where(Outbox.subject.contains("did not go through")).count() == 1


@pytest.mark.parametrize("event_type", ["payment_method.automatically_updated", "payment_method.updated"])
def test_a_card_the_bank_renewed_keeps_its_true_expiry(client, customer, stripe_server, event_type):
    # Stripe's "The PaymentMethod object" (card.exp_month / exp_year / last4 after the card updater ran),
    # delivered as payment_method.automatically_updated (or .updated).
    from billing import methods

    method = PaymentMethod.create(customer=customer.id, processor="stripe", processor_ref="pm_renewed",
                                  method_type="card", brand="Visa", last4="4242", exp_month=1, exp_year=2026)
    assert methods.is_expired(method, on=dt.date(2026, 2, 1))
    pm = {"id": "pm_renewed", "object": "payment_method", "type": "card", "customer": "cus_x",
          "card": {"brand": "visa", "last4": "4242", "exp_month": 1, "exp_year": 2030}}
    stripe_server.wire.objects["/v1/payment_methods/pm_renewed"] = pm
    deliver(client, event_type, pm)
    method = PaymentMethod.get_by_id(method.id)
    assert (method.exp_month, method.exp_year, method.last4) == (1, 2030, "4242")
    assert not methods.is_expired(method, on=dt.date(2026, 2, 1))
    pm["card"].update(last4="1881", exp_month=8)  # a reissued number too
    deliver(client, event_type, pm)
    method = PaymentMethod.get_by_id(method.id)
    assert (method.exp_month, method.exp_year, method.last4) == (8, 2030, "1881")


# --- Saved methods. -------------------------------------------------------------------------------------


def test_setup_intent_succeeded_saves_the_method_once(client, logged_in, customer, owing, stripe_server):
    start_payment(logged_in, "10.00")  # maps the customer to a Stripe Customer
    cus = StripeCustomer.get(StripeCustomer.customer == customer.id).stripe_id
    seti = stripe_server.client.v1.setup_intents.create(params={"customer": cus})
    seti = stripe_server.client.v1.setup_intents.confirm(seti.id, params={"payment_method": "pm_card_visa"})
    assert seti.status == "succeeded"
    obj = {"id": seti.id, "object": "setup_intent", "customer": cus, "status": "succeeded"}
    deliver(client, "setup_intent.succeeded", obj)
    deliver(client, "setup_intent.succeeded", obj)
    method = PaymentMethod.get(PaymentMethod.customer == customer.id)
    assert (method.processor, method.method_type, method.brand, method.last4) == ("stripe", "card", "Visa", "4242")
    assert method.processor_ref == seti.payment_method
    assert PaymentMethod.select().count() == 1
    pm = stripe_server.client.v1.payment_methods.retrieve(seti.payment_method)
    assert pm.customer == cus


def test_events_for_intents_that_are_not_ours_are_acknowledged(client, stripe_server):
    pi = stripe_server.client.v1.payment_intents.create(params={"amount": 100, "currency": "usd"})
    resp = post_event(client, event_body("payment_intent.succeeded", {"id": pi.id, "object": "payment_intent"}))
    assert resp.status_code == 200 and PaymentInvoice.select().count() == 0


def test_webhook_secret_is_the_one_configured(app):
    assert app.extensions["processor"]._webhook_secret == WEBHOOK_SECRET


# --- ACH with microdeposits: the payment waits in its own state for the customer to verify the account. ----
# Shapes: Stripe's "The PaymentIntent object" with next_action.type = "verify_with_microdeposits" (its
# verify_with_microdeposits hash: arrival_date, hosted_verification_url, microdeposit_type), as the ACH Direct
# Debit guide's "Verify bank account with microdeposits" shows it after confirm; then payment_intent.processing /
# .succeeded / .canceled events carrying the intent.

VERIFY_URL = "https://payments.stripe.com/microdeposit/pacs_test_YWNjdF8xTk5m"
MICRODEPOSITS = {"type": "verify_with_microdeposits", "verify_with_microdeposits": {
    "arrival_date": 1767225600, "hosted_verification_url": VERIFY_URL, "microdeposit_type": "descriptor_code"}}


def awaiting_verification(logged_in, side):
    payment = ach_payment(logged_in, side)
    side.wire.on_confirm[f"/v1/payment_intents/{payment.processor_ref}"] = {
        "status": "requires_action", "next_action": MICRODEPOSITS}
    answer = confirm_bank(logged_in, payment, accepted="1").get_json()
    return fresh(payment), answer


def test_a_bank_account_typed_by_its_numbers_waits_for_verification_shows_and_emails_stripes_link(
        client, logged_in, owing, side):
    old, new = owing
    payment, answer = awaiting_verification(logged_in, side)
    assert answer["done"] and answer["payment_status"] == "awaiting_verification"
    assert answer["verify_url"] == VERIFY_URL  # the window shows it at once
    assert payment.status == "awaiting_verification" and payment.verify_url == VERIFY_URL
    # Its invoices show Pending and are not offered again.
    assert accounts.invoice_view(payment.customer_id, old.id).pending
    assert accounts.summary(payment.customer_id).pending_cents == 5000
    assert "Pending" in logged_in.get("/invoices").get_data(as_text=True)
    from billing import payments

    assert payments.suggested_amount(payment.customer_id) == 2000  # only what is not already on its way
    assert payments.suggested_amount(payment.customer_id, old.id) == 0
    page = logged_in.get(f"/payments/{payment.ref}").get_data(as_text=True)
    assert "Verify your bank account" in page and f'href="{VERIFY_URL}"' in page
    window = logged_in.get(f"/payments/{payment.ref}/window?mode=popup").get_data(as_text=True)
    assert VERIFY_URL in window and 'id="payment-element"' not in window  # never offered to pay again
    email = Outbox.get(Outbox.kind == "ach_verify")
    assert VERIFY_URL in email.text_body and payment.ref in email.text_body and email.to_addr == payment.billing_email
    assert Allocation.select().count() == 0

    # The customer entered the deposits: Stripe debits (processing), then it settles.
    side.set_ach(payment.processor_ref, "processing")
    deliver(client, "payment_intent.processing", side.intents[payment.processor_ref])
    assert fresh(payment).status == "processing" and fresh(payment).verify_url == ""
    assert PaymentInvoice.select().where(PaymentInvoice.payment == payment.id).count() == 2  # not planned twice
    side.set_ach(payment.processor_ref, "succeeded")
    deliver(client, "payment_intent.succeeded", side.intents[payment.processor_ref])
    assert fresh(payment).status == "succeeded" and net(payment) == {old.id: 3000, new.id: 2000}
    assert accounts.summary(payment.customer_id).pending_cents == 0


def test_verification_never_done_stripe_cancels_and_the_invoices_are_open_again(client, logged_in, owing, side):
    old, _ = owing
    payment, _ = awaiting_verification(logged_in, side)
    side.set_ach(payment.processor_ref, "canceled")
    deliver(client, "payment_intent.canceled", side.intents[payment.processor_ref])
    payment = fresh(payment)
    assert payment.status == "canceled" and Allocation.select().count() == 0
    assert not accounts.invoice_view(payment.customer_id, old.id).pending
    assert accounts.summary(payment.customer_id).pending_cents == 0


def test_too_many_wrong_deposit_amounts_fail_the_payment(client, logged_in, owing, side):
    payment, _ = awaiting_verification(logged_in, side)
    side.set_ach(payment.processor_ref, "requires_payment_method", error={
        "code": "payment_method_microdeposit_verification_attempts_exceeded", "type": "invalid_request_error",
        "message": "You have exceeded the number of allowed verification attempts."})
    deliver(client, "payment_intent.payment_failed", side.intents[payment.processor_ref])
    assert fresh(payment).status == "failed" and accounts.summary(payment.customer_id).pending_cents == 0


def test_reconcile_follows_a_payment_waiting_for_verification_longer_than_a_card(app, logged_in, owing, side):
    from billing import payments

    payment, _ = awaiting_verification(logged_in, side)
    nine_days_ago = utcnow() - dt.timedelta(days=9)
    Payment.update(created_at=nine_days_ago, updated_at=nine_days_ago).where(Payment.id == payment.id).execute()
    side.set_ach(payment.processor_ref, "processing")  # the customer verified; the webhook never came
    report = payments.reconcile(app.extensions["processor"])
    assert (payment.ref, "awaiting_verification", "processing") in report
    assert fresh(payment).status == "processing"
