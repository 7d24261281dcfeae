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
import stripe

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


MISMATCH = {"amounts": "payment_method_microdeposit_verification_amounts_mismatch",
            "descriptor_code": "payment_method_microdeposit_verification_descriptor_code_mismatch"}


class VerifyingSide(StripeSide):
    """Stripe, for a bank account entered by hand: confirming it sends microdeposits instead of debiting, and
    ``verify_microdeposits`` answers as Stripe documents it (right values: processing; wrong: a 400 whose code is
    ``payment_method_microdeposit_verification_amounts_mismatch`` or ``..._descriptor_code_mismatch``)."""

    def __init__(self, proc, monkeypatch):
        super().__init__(proc, monkeypatch)
        self.verified, self.canceled = [], []
        monkeypatch.setattr(proc._client.v1.payment_intents, "verify_microdeposits", self._verify)
        real_cancel = proc._client.v1.payment_intents.cancel

        def cancel(intent_id, params=None, options=None):
            if intent_id not in self.intents:
                return real_cancel(intent_id, params=params, options=options)
            self.canceled.append(intent_id)
            self.set_ach(intent_id, "canceled")
        monkeypatch.setattr(proc._client.v1.payment_intents, "cancel", cancel)

    def _verify(self, intent_id, params=None, options=None):
        self.verified.append((intent_id, params))
        pi = self.intents[intent_id]
        if pi["status"] != "requires_action":
            raise stripe.InvalidRequestError("This PaymentIntent is not awaiting verification.", None,
                                             code="payment_intent_unexpected_state", http_status=400)
        kind = pi["next_action"]["verify_with_microdeposits"]["microdeposit_type"]
        if params.get("amounts") != [32, 45] and params.get("descriptor_code") != "SM11AA":
            raise stripe.InvalidRequestError("The amounts provided do not match the amounts that were sent to the "
                                             "bank account.", kind, code=MISMATCH[kind], http_status=400)
        self.set_ach(intent_id, "processing")

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


def test_a_bank_payment_stripe_must_verify_waits_with_the_portals_form_and_is_not_offered_again(client, logged_in,
                                                                                             owing, side):
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
    # The portal's own form, never Stripe's hosted page: the portal checks the payment still fits as it verifies.
    assert f'action="/payments/{payment.ref}/verify" id="verify"' in page
    assert "Verify your bank account to finish this payment" in page and HOSTED not in page
    home = logged_in.get("/").get_data(as_text=True)
    assert f'href="/payments/{payment.ref}#verify"' in home and HOSTED not in home
    mail = Outbox.get(Outbox.kind == "bank_verification")
    assert f"/payments/{payment.ref}#verify" in mail.text_body and HOSTED not in mail.text_body
    # Stripe's requires_action event, delivered twice, changes nothing more.
    deliver(client, "payment_intent.requires_action", side.intents[payment.processor_ref], event_id="evt_ra_1")
    deliver(client, "payment_intent.requires_action", side.intents[payment.processor_ref], event_id="evt_ra_1")
    assert WebhookEvent.select().count() == 1
    assert Outbox.select().where(Outbox.kind == "bank_verification").count() == 1
    assert fresh(payment).status == payments.AWAITING_VERIFICATION


def _waiting(logged_in, side):
    payment = ach_payment(logged_in, side, amount="70.00", cents=7000)
    logged_in.post(f"/payments/{payment.ref}/stripe/bank", {"accepted": "1"})
    assert fresh(payment).status == payments.AWAITING_VERIFICATION
    return payment


def test_the_portals_form_verifies_at_stripe_and_the_debit_starts(logged_in, owing, side):
    payment = _waiting(logged_in, side)
    wrong = logged_in.post(f"/payments/{payment.ref}/verify", {"amount1": "12", "amount2": "34"})
    html = wrong.get_data(as_text=True)
    assert wrong.status_code == 422 and 'id="amounts-error"' in html
    assert "Those amounts do not match the deposits. Check your bank statement and try again." in html
    assert fresh(payment).status == payments.AWAITING_VERIFICATION
    done = logged_in.post(f"/payments/{payment.ref}/verify", {"amount1": "0.32", "amount2": "45"})
    assert done.status_code == 303 and fresh(payment).status == payments.PROCESSING
    assert side.verified == [(payment.processor_ref, {"amounts": [12, 34]}),
                             (payment.processor_ref, {"amounts": [32, 45]})]


def test_the_portal_does_not_verify_a_payment_that_no_longer_fits_and_cancels_it_at_stripe(logged_in, owing, side):
    old, new = owing
    payment = _waiting(logged_in, side)
    payments.record_offline(old.customer_id, amount_cents=7000, kind="cash", method_text="Cash",
                            idempotency_key=payments.new_idempotency_key(), invoice_id=None,
                            details=dict(check_number="", received_on=TODAY, note="", recorded_by="staff:1"),
                            actor="staff:1")
    resp = logged_in.post(f"/payments/{payment.ref}/verify", {"amount1": "32", "amount2": "45"})
    assert resp.status_code == 303
    assert side.verified == [] and side.canceled == [payment.processor_ref]  # never verified: never debited
    assert (fresh(payment).status, fresh(payment).failure_code) == (payments.CANCELED, payments.NO_LONGER_FITS)
    assert "was not charged" in logged_in.get(f"/payments/{payment.ref}").get_data(as_text=True)


@pytest.mark.parametrize("how", ["verified_on_stripes_page", "confirmed_by_a_browser"])
def test_a_debit_that_moved_at_stripe_unchecked_and_no_longer_fits_is_held(client, logged_in, owing, side, how):
    """Verified on Stripe's hosted page, or confirmed by a browser straight with Stripe.js (the window holds the
    client secret, and a bank debit cannot wait for a capture): checked when Stripe says it moved."""
    old, new = owing
    if how == "verified_on_stripes_page":
        p = _waiting(logged_in, side)
    else:
        p = ach_payment(logged_in, side, amount="70.00", cents=7000)
        assert fresh(p).charging_at is None  # the portal never asked Stripe to debit it
    payments.record_offline(old.customer_id, amount_cents=7000, kind="cash", method_text="Cash",
                            idempotency_key=payments.new_idempotency_key(), invoice_id=None,
                            details=dict(check_number="", received_on=TODAY, note="", recorded_by="staff:1"),
                            actor="staff:1")
    deliver(client, "payment_intent.processing", side.set_ach(p.processor_ref, "processing"))
    p = fresh(p)
    assert (p.status, p.failure_code) == (payments.HELD, payments.UNCHECKED)
    assert accounts.summary(old.customer_id).credit_cents == 0
    assert payments.room(old.customer_id).others_cents == 7000  # held: still counted until staff decide


def test_a_debit_a_browser_confirmed_that_still_fits_is_claimed_and_followed(client, logged_in, owing, side):
    old, new = owing
    browser = ach_payment(logged_in, side, amount="70.00", cents=7000)
    deliver(client, "payment_intent.processing", side.set_ach(browser.processor_ref, "processing"))
    assert fresh(browser).status == payments.PROCESSING
    assert accounts.invoice_view(old.customer_id, old.id).pending_cents == 3000


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
