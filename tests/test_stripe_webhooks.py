"""Stripe webhooks at /webhooks/stripe: signatures, exactly-once, events out of order, ACH (processing,
settled, failed, returned), disputes and saved methods.

localstripe has no ACH, disputes or setup_intent events, so these tests send events in Stripe's documented
shape, signed with the webhook secret, and ``StripeSide`` plays Stripe's part for the objects localstripe
cannot hold (the portal re-reads every object from "Stripe" rather than trusting the event).
"""
import copy
import datetime as dt
import json
import threading
import time
import urllib.request

import pytest
import stripe

from billing import accounts, autopay, payments
from db.models import (
    Allocation,
    AuditLog,
    CreditEntry,
    Outbox,
    Payment,
    PaymentInvoice,
    PaymentDispute,
    PaymentMandate,
    PaymentMethod,
    PaymentReversal,
    StripeCustomer,
    WebhookEvent,
)
from tests.factories import make_invoice
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
    """Stripe's current view of ACH intents and disputes, which localstripe cannot hold."""

    def __init__(self, proc, monkeypatch):
        self.intents, self.disputes, self.confirmed = {}, {}, []
        real_intent = proc._intent
        monkeypatch.setattr(proc, "_intent",
                            lambda i: copy.deepcopy(self.intents[i]) if i in self.intents else real_intent(i))
        monkeypatch.setattr(proc._client.v1.disputes, "retrieve",
                            lambda d, *a, **k: stripe.Dispute.construct_from(self.disputes[d], "sk_test"))
        self._real_confirm = proc._client.v1.payment_intents.confirm
        monkeypatch.setattr(proc._client.v1.payment_intents, "confirm", self._confirm)

    def _confirm(self, intent_id, params=None, options=None):
        if intent_id not in self.intents:
            return self._real_confirm(intent_id, params=params, options=options)
        self.confirmed.append((intent_id, params))
        self.set_ach(intent_id, "processing")

    def set_ach(self, intent_id, status, error=None, amount=None):
        """An ACH (us_bank_account) PaymentIntent, in Stripe's shape."""
        pi = self.intents.get(intent_id) or {
            "id": intent_id, "object": "payment_intent", "amount": amount, "currency": "usd",
            "client_secret": f"{intent_id}_secret_test", "payment_method_types": ["us_bank_account"],
            "payment_method": {"id": "pm_ach_test", "object": "payment_method", "type": "us_bank_account",
                               "us_bank_account": {"bank_name": "STRIPE TEST BANK", "last4": "6789",
                                                   "account_type": "checking", "routing_number": "110000000"}},
            "latest_charge": None, "last_payment_error": None, "metadata": {}}
        pi["status"] = status
        pi["last_payment_error"] = error
        self.intents[intent_id] = pi
        return pi

    def set_dispute(self, dispute_id, intent_id, status, amount, reason="fraudulent"):
        """A Dispute, in Stripe's shape."""
        self.disputes[dispute_id] = {"id": dispute_id, "object": "dispute", "amount": amount, "currency": "usd",
                                     "charge": "ch_test", "payment_intent": intent_id, "reason": reason,
                                     "status": status}
        return self.disputes[dispute_id]


RETURNED = {"code": "insufficient_funds", "type": "card_error",
            "message": "The customer's bank account has insufficient funds to cover this payment (R01)."}


@pytest.fixture
def side(app, monkeypatch):
    return StripeSide(app.extensions["processor"], monkeypatch)


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
    return logged_in.post(f"/payments/{payment.ref}/stripe/bank", data)


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
    online = params["mandate_data"]["customer_acceptance"]["online"]
    assert intent_id == payment.processor_ref
    assert online == {"ip_address": "127.0.0.1", "user_agent": mandate.user_agent}

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


def test_ach_settled_then_returned_late_is_a_lost_dispute_reversed_with_new_rows(client, logged_in, owing, side):
    """Stripe reports a bank debit returned after it settled as a dispute (``charge.dispute.created``, the
    dispute already ``lost``: an ACH dispute cannot be answered), never as a succeeded intent turning failed.
    The debit's saved bank account is not used again and autopay with it turns off."""
    old, new = owing
    payment = ach_payment(logged_in, side)
    confirm_bank(logged_in, payment, accepted="1")
    obj = side.intents[payment.processor_ref]  # Stripe's object, as the event carries it
    side.set_ach(payment.processor_ref, "succeeded")
    deliver(client, "payment_intent.succeeded", obj)
    originals = list(Allocation.select().order_by(Allocation.id).dicts())
    assert sum(r["amount_cents"] for r in originals) == 5000
    account = PaymentMethod.create(customer=payment.customer_id, processor="stripe", processor_ref="pm_bank_1",
                                   method_type="ach", brand="STRIPE TEST BANK", last4="6789")
    Payment.update(payment_method=account.id).where(Payment.id == payment.id).execute()
    autopay.turn_on(payment.customer_id, account.id, accepted=True, ip="203.0.113.9", user_agent="pytest")

    deliver(client, "payment_intent.payment_failed", obj)  # not a move Stripe makes: nothing changes
    assert fresh(payment).status == "succeeded"
    side.set_dispute("du_ach", payment.processor_ref, "lost", 5000, reason="debit_not_authorized")
    deliver(client, "charge.dispute.created", side.disputes["du_ach"])
    deliver(client, "charge.dispute.created", side.disputes["du_ach"], event_id="evt_again")  # redelivered
    payment = fresh(payment)
    assert payment.status == "reversed" and payment.failure_code == "dispute_lost"
    assert list(Allocation.select().where(Allocation.id.in_([r["id"] for r in originals]))
                .order_by(Allocation.id).dicts()) == originals  # never edited
    reversals = list(Allocation.select().where(Allocation.amount_cents < 0))
    assert sorted((r.reverses_id, r.amount_cents) for r in reversals) == sorted(
        (r["id"], -r["amount_cents"]) for r in originals)
    assert net(payment) == {}
    assert accounts.invoice_view(payment.customer_id, old.id).balance_cents == 3000
    assert accounts.invoice_view(payment.customer_id, new.id).balance_cents == 4000
    assert [r.kind for r in PaymentReversal.select().where(PaymentReversal.payment == payment.id)] == ["dispute"]
    assert PaymentMethod.get_by_id(account.id).removed_at is not None
    enrolment = autopay.enrolment(payment.customer_id)
    assert not enrolment.enabled and "bank disputed" in enrolment.disabled_reason
    email = Outbox.get(Outbox.kind == "payment.reversal")
    assert email.to_addr == payment.billing_email and payment.ref in email.subject
    assert "ending 6789" in email.text_body and "autopay with it is off" in email.text_body
    assert "Payment reversed" in logged_in.get(f"/payments/{payment.ref}").get_data(as_text=True)


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


def test_an_inquiry_moves_no_money_and_its_close_changes_nothing_but_its_flag(client, logged_in, owing,
                                                                             stripe_server, side):
    """Stripe's inquiry (``warning_needs_response``, then ``warning_closed``): the bank asks, nothing is taken."""
    payment = paid_card(logged_in, stripe_server)
    before = net(payment)
    side.set_dispute("du_inq", payment.processor_ref, "warning_needs_response", 5000, reason="general")
    deliver(client, "charge.dispute.created", side.disputes["du_inq"])
    assert fresh(payment).status == "succeeded" and net(payment) == before
    assert PaymentReversal.select().count() == 0 and not Outbox.select().where(Outbox.kind == "payment.reversal")
    assert PaymentDispute.get(PaymentDispute.processor_ref == "du_inq").status == "warning_needs_response"
    side.set_dispute("du_inq", payment.processor_ref, "warning_closed", 5000, reason="general")
    deliver(client, "charge.dispute.closed", side.disputes["du_inq"])
    assert fresh(payment).status == "succeeded" and net(payment) == before
    assert PaymentReversal.select().count() == 0
    assert PaymentDispute.get(PaymentDispute.processor_ref == "du_inq").status == "warning_closed"


def test_an_inquiry_that_becomes_a_chargeback_takes_the_money_then_prevented_gives_it_back(
        client, logged_in, owing, stripe_server, side):
    payment = paid_card(logged_in, stripe_server)
    before = net(payment)
    side.set_dispute("du_esc", payment.processor_ref, "warning_under_review", 5000)
    deliver(client, "charge.dispute.created", side.disputes["du_esc"])
    assert fresh(payment).status == "succeeded"
    side.set_dispute("du_esc", payment.processor_ref, "needs_response", 5000)
    deliver(client, "charge.dispute.updated", side.disputes["du_esc"])
    assert fresh(payment).status == "disputed" and net(payment) == {}
    side.set_dispute("du_esc", payment.processor_ref, "prevented", 5000)
    deliver(client, "charge.dispute.closed", side.disputes["du_esc"])
    assert fresh(payment).status == "succeeded" and net(payment) == before
    assert [r.kind for r in PaymentReversal.select().order_by(PaymentReversal.id)] == ["dispute", "dispute_won"]


def test_a_lost_dispute_under_review_again_then_won_comes_back_once(client, logged_in, owing, stripe_server, side):
    """An appeal: lost, then under review again (disputed, money still taken), then won (given back once)."""
    payment = paid_card(logged_in, stripe_server)
    before = net(payment)
    for status in ("needs_response", "lost", "under_review"):
        side.set_dispute("du_app", payment.processor_ref, status, 5000)
        deliver(client, "charge.dispute.updated", side.disputes["du_app"])
        assert fresh(payment).status == {"lost": "reversed"}.get(status, "disputed") and net(payment) == {}
    side.set_dispute("du_app", payment.processor_ref, "won", 5000)
    deliver(client, "charge.dispute.closed", side.disputes["du_app"])
    deliver(client, "charge.dispute.updated", side.disputes["du_app"], event_id="evt_late_update")
    assert fresh(payment).status == "succeeded" and net(payment) == before
    assert PaymentReversal.select().count() == 2
    audit = [json.loads(a.detail)["status"] for a in AuditLog.select().where(
        AuditLog.action == "payment.dispute_status").order_by(AuditLog.id)]
    assert audit == ["needs_response", "lost", "under_review", "won"]


# --- Refunds that fail. ---------------------------------------------------------------------------------


def fail_refunds(proc, monkeypatch, failed_ids, status="failed"):
    """Stripe's refunds list as it reads once these refunds failed (localstripe's never do)."""
    real = proc._client.v1.refunds.list

    def listed(*a, **k):
        rows = [dict(r.to_dict(), status=status if r.id in failed_ids else r.get("status", "succeeded"))
                for r in real(*a, **k).data]
        return stripe.ListObject.construct_from({"object": "list", "data": rows, "has_more": False,
                                                 "url": "/v1/refunds"}, "sk_test")
    monkeypatch.setattr(proc._client.v1.refunds, "list", listed)


@pytest.mark.parametrize("status", ["failed", "canceled"])
def test_a_refund_that_fails_later_is_applied_again_once(app, client, logged_in, owing, stripe_server,
                                                         monkeypatch, status):
    """``charge.refund.updated`` with the refund ``failed`` or ``canceled`` (Stripe's Refund object, as its
    docs show it): the money never left, so the payment is succeeded again and its invoices paid again."""
    payment = paid_card(logged_in, stripe_server)
    before = net(payment)
    done = app.test_cli_runner().invoke(args=["refund", payment.ref])
    assert done.exit_code == 0, done.output
    assert fresh(payment).status == "refunded" and net(payment) == {}
    refund = stripe_server.client.v1.refunds.list(params={"payment_intent": payment.processor_ref}).data[0]
    fail_refunds(app.extensions["processor"], monkeypatch, {refund.id}, status)
    obj = dict(refund.to_dict(), status=status, failure_reason="lost_or_stolen_card")
    deliver(client, "charge.refund.updated", obj)
    deliver(client, "charge.refund.updated", obj, event_id="evt_refund_again")
    deliver(client, "charge.refunded", stripe_server.client.v1.charges.retrieve(refund.charge).to_dict())
    payment = fresh(payment)
    assert payment.status == "succeeded" and net(payment) == before
    assert [r.kind for r in PaymentReversal.select().order_by(PaymentReversal.id)] == ["refund", "refund_failed"]
    assert payments.refundable(payment) == 5000
    email = Outbox.select().where(Outbox.kind == "payment.reversal").order_by(Outbox.id.desc()).first()
    assert "could not be made" in email.text_body and payment.ref in email.text_body


def test_a_refund_failing_after_the_payment_was_disputed_is_left_to_staff(app, client, logged_in, owing,
                                                                           stripe_server, monkeypatch, side):
    """The dispute's amount may already count the refund as the customer's: nothing is applied again."""
    payment = paid_card(logged_in, stripe_server)
    assert app.test_cli_runner().invoke(args=["refund", payment.ref, "20.00"]).exit_code == 0
    side.set_dispute("du_after", payment.processor_ref, "lost", 3000)
    deliver(client, "charge.dispute.created", side.disputes["du_after"])
    assert fresh(payment).status == "reversed"
    refund = stripe_server.client.v1.refunds.list(params={"payment_intent": payment.processor_ref}).data[0]
    fail_refunds(app.extensions["processor"], monkeypatch, {refund.id})
    deliver(client, "charge.refund.updated", dict(refund.to_dict(), status="failed"))
    assert fresh(payment).status == "reversed" and net(payment) == {}
    assert PaymentReversal.select().where(PaymentReversal.kind == "refund_failed").count() == 0
    assert AuditLog.select().where(AuditLog.action == "payment.refund_failed_unapplied").count() == 1


# --- Saved methods the processor changes. --------------------------------------------------------------


def saved(customer, token, method_type="card", **kw):
    facts = dict(brand="Visa", last4="4242", exp_month=12, exp_year=2026) if method_type == "card" else dict(
        brand="STRIPE TEST BANK", last4="6789")
    return PaymentMethod.create(customer=customer.id, processor="stripe", processor_ref=token,
                                method_type=method_type, **dict(facts, **kw))


@pytest.mark.parametrize("event_type", ["payment_method.automatically_updated", "payment_method.updated"])
def test_a_card_the_bank_renewed_keeps_its_autopay_with_its_new_expiry(app, client, customer, monkeypatch,
                                                                        event_type):
    """Stripe's card updater (``payment_method.automatically_updated``, a PaymentMethod as its docs show it):
    the saved card is the same method with a new expiry and number, so autopay goes on with it."""
    card = saved(customer, "pm_renewed")
    autopay.turn_on(customer.id, card.id, accepted=True, ip="203.0.113.9", user_agent="pytest")
    pm = {"id": "pm_renewed", "object": "payment_method", "type": "card", "customer": "cus_test",
          "card": {"brand": "visa", "last4": "1881", "exp_month": 9, "exp_year": 2030, "country": "US"}}
    proc = app.extensions["processor"]
    monkeypatch.setattr(proc._client.v1.payment_methods, "retrieve",
                        lambda i, *a, **k: stripe.PaymentMethod.construct_from(pm, "sk_test"))
    deliver(client, event_type, pm)
    deliver(client, event_type, pm, event_id="evt_pm_again")
    card = PaymentMethod.get_by_id(card.id)
    assert (card.last4, card.exp_month, card.exp_year, card.removed_at) == ("1881", 9, 2030, None)
    assert autopay.enrolment(customer.id).enabled
    assert AuditLog.select().where(AuditLog.action == "method.updated").count() == 1


def test_a_bank_mandate_gone_inactive_makes_the_account_unusable_and_turns_autopay_off(app, client, customer,
                                                                                       monkeypatch):
    """``mandate.updated`` with the Mandate ``inactive`` (Stripe's shape): the account may not be debited again."""
    bank = saved(customer, "pm_bank_mandate", method_type="ach")
    autopay.turn_on(customer.id, bank.id, accepted=True, ip="203.0.113.9", user_agent="pytest")
    single = {"id": "mandate_0", "object": "mandate", "payment_method": "pm_bank_mandate", "status": "inactive",
              "type": "single_use"}  # a one-time debit's mandate, used up: the account stays
    mandates = {"mandate_0": single}
    proc = app.extensions["processor"]
    monkeypatch.setattr(proc._client.v1.mandates, "retrieve",
                        lambda i, *a, **k: stripe.Mandate.construct_from(mandates[i], "sk_test"))
    deliver(client, "mandate.updated", single)
    assert PaymentMethod.get_by_id(bank.id).removed_at is None and autopay.enrolment(customer.id).enabled
    mandate = {"id": "mandate_1", "object": "mandate", "payment_method": "pm_bank_mandate", "status": "inactive",
               "type": "multi_use", "customer_acceptance": {"type": "online", "accepted_at": 1700000000}}
    mandates["mandate_1"] = mandate
    deliver(client, "mandate.updated", mandate)
    deliver(client, "mandate.updated", mandate, event_id="evt_mandate_again")
    assert PaymentMethod.get_by_id(bank.id).removed_at is not None
    enrolment = autopay.enrolment(customer.id)
    assert not enrolment.enabled and "authorization" in enrolment.disabled_reason
    mails = list(Outbox.select().where(Outbox.kind == "method_unusable"))
    assert len(mails) == 1 and "ending 6789" in mails[0].text_body and mails[0].to_addr == customer.email


def test_an_active_mandate_or_a_method_not_ours_changes_nothing(app, client, customer, monkeypatch):
    bank = saved(customer, "pm_bank_ok", method_type="ach")
    proc = app.extensions["processor"]
    mandate = {"id": "mandate_2", "object": "mandate", "payment_method": "pm_bank_ok", "status": "active",
               "type": "multi_use"}
    monkeypatch.setattr(proc._client.v1.mandates, "retrieve",
                        lambda i, *a, **k: stripe.Mandate.construct_from(mandate, "sk_test"))
    deliver(client, "mandate.updated", mandate)
    pm = {"id": "pm_someone_else", "object": "payment_method", "type": "card",
          "card": {"brand": "visa", "last4": "0000", "exp_month": 1, "exp_year": 2031}}
    monkeypatch.setattr(proc._client.v1.payment_methods, "retrieve",
                        lambda i, *a, **k: stripe.PaymentMethod.construct_from(pm, "sk_test"))
    deliver(client, "payment_method.automatically_updated", pm)
    assert PaymentMethod.get_by_id(bank.id).removed_at is None
    assert PaymentMethod.select().count() == 1 and not Outbox.select().where(Outbox.kind == "method_unusable")


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
