"""Stripe's microdeposit verification of a us_bank_account: requires_action with next_action
verify_with_microdeposits, on PaymentIntents and SetupIntents, and its webhooks.

localstripe has no us_bank_account, so (as in tests/test_stripe_webhooks.py) ``StripeSide`` plays Stripe's part
for those objects: every PaymentIntent and SetupIntent here is shaped as Stripe's API reference documents it
(``next_action.type: verify_with_microdeposits`` with ``hosted_verification_url``, ``microdeposit_type`` and
``arrival_date``; a failed verification as ``requires_payment_method`` with ``last_payment_error.code``
``payment_method_microdeposit_verification_attempts_exceeded``), and every event is signed with the webhook secret.
"""
import copy
import datetime as dt
import time

import pytest

from billing import accounts, methods, payments
from billing.processors import REQUIRES_ACTION, REQUIRES_VERIFICATION
from billing.processors.stripe import HANDLED_EVENTS, intent_state, setup_state
from db import write_tx
from db.models import MethodSetup, Outbox, Payment, WebhookEvent
from tests.factories import make_invoice
from tests.stripe_support import (  # noqa: F401  (fixtures)
    app,
    event_body,
    localstripe,
    post_event,
    start_payment,
    stripe_server,
)
from tests.test_stripe_webhooks import StripeSide

TODAY = dt.date.today()
ARRIVAL = int(time.time()) + 2 * 86400  # Stripe: the deposits land in 1-2 business days
HOSTED = "https://payments.stripe.com/microdeposit/pacs_test_YWNjdF8xTTJKVGtMa2RJd0h1N2l4LHBhX25vbmNlX1Bzbm"


def microdeposits(kind="amounts"):
    """A next_action as Stripe documents it for a bank account that must be verified."""
    return {"type": "verify_with_microdeposits",
            "verify_with_microdeposits": {"arrival_date": ARRIVAL, "hosted_verification_url": HOSTED,
                                          "microdeposit_type": kind}}


VERIFY_FAILED = {"code": "payment_method_microdeposit_verification_attempts_exceeded",
                 "type": "invalid_request_error",
                 "message": "You have exceeded the number of allowed verification attempts."}


class VerifyingSide(StripeSide):
    """Stripe, for a bank account entered by hand: confirming it sends microdeposits instead of debiting."""

    def _confirm(self, intent_id, params=None, options=None):
        if intent_id not in self.intents:
            return self._real_confirm(intent_id, params=params, options=options)
        self.confirmed.append((intent_id, params))
        self.set_ach(intent_id, "requires_action")["next_action"] = microdeposits()

    def set_ach(self, intent_id, status, error=None, amount=None):
        pi = super().set_ach(intent_id, status, error, amount)
        pi.setdefault("next_action", None)
        if status != "requires_action":
            pi["next_action"] = None
        return pi


@pytest.fixture
def side(app, monkeypatch):
    return VerifyingSide(app.extensions["processor"], monkeypatch)


@pytest.fixture
def owing(customer):
    old = make_invoice(customer, 3000, due=TODAY - dt.timedelta(days=5), number="OLD-1")
    new = make_invoice(customer, 4000, due=TODAY + dt.timedelta(days=10), number="NEW-2")
    return old, new


def ach_payment(logged_in, side, amount="50.00", cents=5000):
    payment = start_payment(logged_in, amount, method_type="ach")
    side.set_ach(payment.processor_ref, "requires_confirmation", amount=cents)
    return payment


def deliver(client, event_type, obj, event_id=None):
    resp = post_event(client, event_body(event_type, copy.deepcopy(obj), event_id=event_id))
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return resp.get_json()


def fresh(payment):
    return Payment.get_by_id(payment.id)


# --- The mapping, on objects in Stripe's shape. ----------------------------------------------------------


def test_stripe_declares_bank_verification_and_subscribes_to_its_events(app):
    from billing.processors import Capability

    assert app.extensions["processor"].can(Capability.BANK_VERIFICATION)
    assert {"payment_intent.requires_action", "setup_intent.requires_action"} <= set(HANDLED_EVENTS)


@pytest.mark.parametrize("kind", ["amounts", "descriptor_code"])
def test_a_payment_intent_waiting_for_microdeposits_maps_to_requires_verification(kind):
    pi = {"id": "pi_test_1", "object": "payment_intent", "amount": 5000, "currency": "usd",
          "status": "requires_action", "payment_method_types": ["us_bank_account"], "next_action": microdeposits(kind),
          "payment_method": {"id": "pm_1", "object": "payment_method", "type": "us_bank_account",
                             "us_bank_account": {"bank_name": "STRIPE TEST BANK", "last4": "6789"}}}
    state = intent_state(pi)
    assert state.status == REQUIRES_VERIFICATION and state.verification.url == HOSTED
    assert state.verification.microdeposit_type == kind
    arrives = dt.datetime.fromtimestamp(ARRIVAL, dt.timezone.utc).replace(tzinfo=None)
    assert state.verification.arrives_at == arrives
    assert state.verification.expires_at == arrives + dt.timedelta(days=10)


def test_a_card_challenge_stays_requires_action_and_a_setup_waiting_for_microdeposits_maps_too():
    card = {"id": "pi_test_2", "object": "payment_intent", "amount": 100, "currency": "usd",
            "status": "requires_action", "next_action": {"type": "use_stripe_sdk", "use_stripe_sdk": {}}}
    assert intent_state(card).status == REQUIRES_ACTION and intent_state(card).verification is None
    seti = {"id": "seti_test_1", "object": "setup_intent", "status": "requires_action",
            "next_action": microdeposits("descriptor_code"),
            "payment_method": {"id": "pm_2", "object": "payment_method", "type": "us_bank_account",
                               "us_bank_account": {"bank_name": "STRIPE TEST BANK", "last4": "6789"}}}
    state = setup_state(seti)
    assert state.status == REQUIRES_VERIFICATION and state.verification.url == HOSTED
    assert state.method_token == ""  # nothing is saved before it is verified
    no_page = copy.deepcopy(seti)
    no_page["next_action"]["verify_with_microdeposits"]["hosted_verification_url"] = "javascript:alert(1)"
    assert setup_state(no_page).status == REQUIRES_ACTION


# --- Payments. -----------------------------------------------------------------------------------------------


def test_a_bank_payment_stripe_must_verify_waits_with_stripes_link_and_is_not_offered_again(client, logged_in, owing,
                                                                                         side):
    old, new = owing
    payment = ach_payment(logged_in, side)
    answer = logged_in.post(f"/payments/{payment.ref}/stripe/bank", {"accepted": "1"}).get_json()
    assert answer["done"] and answer["payment_status"] == payments.AWAITING_VERIFICATION
    payment = fresh(payment)
    assert payment.verify_url == HOSTED and payment.verify_type == "amounts"
    assert payment.verify_expires_at == dt.datetime.fromtimestamp(ARRIVAL, dt.timezone.utc).replace(
        tzinfo=None) + dt.timedelta(days=10)
    assert accounts.invoice_view(payment.customer_id, old.id).pending_cents == 3000
    page = logged_in.get(f"/payments/{payment.ref}").get_data(as_text=True)
    assert HOSTED in page and "Verify your bank account to finish this payment" in page
    assert HOSTED in logged_in.get("/").get_data(as_text=True)
    mail = Outbox.get(Outbox.kind == "bank_verification")
    assert HOSTED in mail.text_body
    # Stripe's requires_action event, delivered twice, changes nothing more.
    deliver(client, "payment_intent.requires_action", side.intents[payment.processor_ref], event_id="evt_ra_1")
    deliver(client, "payment_intent.requires_action", side.intents[payment.processor_ref], event_id="evt_ra_1")
    assert WebhookEvent.select().count() == 1
    assert Outbox.select().where(Outbox.kind == "bank_verification").count() == 1
    assert fresh(payment).status == payments.AWAITING_VERIFICATION


def test_the_requires_action_webhook_alone_moves_a_payment_confirmed_elsewhere(client, logged_in, owing, side):
    payment = ach_payment(logged_in, side)
    with write_tx():  # Stripe.js confirmed it in the window; the portal's answer never came back
        payments.claim_charge(payment.id)
    side.set_ach(payment.processor_ref, "requires_action")["next_action"] = microdeposits("descriptor_code")
    deliver(client, "payment_intent.requires_action", side.intents[payment.processor_ref])
    payment = fresh(payment)
    assert payment.status == payments.AWAITING_VERIFICATION and payment.verify_type == "descriptor_code"


def test_verified_then_settled_at_stripe_is_followed_to_success(client, logged_in, owing, side):
    old, new = owing
    payment = ach_payment(logged_in, side)
    logged_in.post(f"/payments/{payment.ref}/stripe/bank", {"accepted": "1"})
    obj = side.set_ach(payment.processor_ref, "processing")
    deliver(client, "payment_intent.processing", obj)
    assert fresh(payment).status == payments.PROCESSING
    side.set_ach(payment.processor_ref, "succeeded")
    deliver(client, "payment_intent.succeeded", obj)
    assert fresh(payment).status == payments.SUCCEEDED
    assert accounts.invoice_view(payment.customer_id, old.id).status == "Paid"


def test_a_verification_stripe_fails_fails_the_payment_and_frees_its_invoices(client, logged_in, owing, side):
    old, new = owing
    payment = ach_payment(logged_in, side)
    logged_in.post(f"/payments/{payment.ref}/stripe/bank", {"accepted": "1"})
    obj = side.set_ach(payment.processor_ref, "requires_payment_method", error=VERIFY_FAILED)
    deliver(client, "payment_intent.payment_failed", obj)
    payment = fresh(payment)
    assert payment.status == payments.FAILED
    assert payment.failure_code == "payment_method_microdeposit_verification_attempts_exceeded"
    assert accounts.invoice_view(payment.customer_id, old.id).pending_cents == 0


def test_reconcile_cancels_at_stripe_a_payment_left_unverified_past_its_deadline(app, logged_in, owing, side,
                                                                                monkeypatch):
    proc = app.extensions["processor"]
    payment = ach_payment(logged_in, side)
    logged_in.post(f"/payments/{payment.ref}/stripe/bank", {"accepted": "1"})
    canceled = []

    def cancel(intent_id, params=None, options=None):
        canceled.append((intent_id, params))
        side.set_ach(intent_id, "canceled")

    monkeypatch.setattr(proc._client.v1.payment_intents, "cancel", cancel)
    assert payments.reconcile(proc, now=dt.datetime.utcnow() + dt.timedelta(days=5))[0][2] == \
        payments.AWAITING_VERIFICATION
    assert canceled == []
    payments.reconcile(proc, now=dt.datetime.utcnow() + dt.timedelta(days=13))
    assert canceled == [(payment.processor_ref, {"cancellation_reason": "abandoned"})]
    assert fresh(payment).status == payments.CANCELED and fresh(payment).failure_code == "verification_expired"


# --- Saving a bank account: setup_intent.requires_action. ---------------------------------------------------


def test_a_setup_stripe_must_verify_emails_the_customer_stripes_link_once(client, app, logged_in, customer,
                                                                         monkeypatch):
    proc = app.extensions["processor"]
    with write_tx():
        setup = MethodSetup.create(ref="SET-VERIFY01", customer=customer.id, processor="stripe",
                                   processor_ref="seti_test_verify", method_type="ach", status=methods.SETUP_OPEN)
    seti = {"id": "seti_test_verify", "object": "setup_intent", "status": "requires_action",
            "customer": "cus_test", "next_action": microdeposits(),
            "payment_method": {"id": "pm_ach", "object": "payment_method", "type": "us_bank_account",
                               "us_bank_account": {"bank_name": "STRIPE TEST BANK", "last4": "6789"}}}
    monkeypatch.setattr(proc, "_setup", lambda setup_id: copy.deepcopy(seti))
    deliver(client, "setup_intent.requires_action", seti, event_id="evt_seti_1")
    deliver(client, "setup_intent.requires_action", seti, event_id="evt_seti_2")
    mails = list(Outbox.select().where(Outbox.kind == "bank_verification"))
    assert len(mails) == 1 and HOSTED in mails[0].text_body and mails[0].to_addr == customer.email
    assert "STRIPE TEST BANK ending 6789" in mails[0].text_body
    page = logged_in.get(f"/methods/setup/{setup.ref}").get_data(as_text=True)
    assert "Verify your bank account to save it" in page and HOSTED in page
