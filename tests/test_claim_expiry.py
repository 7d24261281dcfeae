"""Claimed charges that never got an answer (a 3-D Secure challenge the customer left, a processor error after
the claim) are settled by reconcile once their claim TTL has passed: recorded once if the processor charged,
otherwise canceled at the processor and in the portal, so the reservation ends and the customer can pay again.
A fresh claim is left alone. On the sandbox processor, through the same interface as Stripe."""
import datetime as dt
from urllib.parse import urlsplit

import pytest

from billing import accounts, payments
from db import write_tx
from db.models import Allocation, AuditLog, Payment, PaymentInvoice, PaymentMethod, SandboxIntent
from tests.test_pay_flow import GOOD_CARD, make_payment, owing, pay_at_processor  # noqa: F401  (owing: a fixture)

THREE_D_SECURE = {**GOOD_CARD, "number": "4000 0027 6000 3184"}


@pytest.fixture
def processor(app):
    return app.extensions["processor"]


def left_at_the_challenge(logged_in, amount="30.00"):
    """A card payment whose bank asked for a challenge the customer never answered: claimed, unanswered."""
    ref, entry = make_payment(logged_in, amount)
    pay_at_processor(logged_in, entry, THREE_D_SECURE)
    p = Payment.get(Payment.ref == ref)
    assert p.status == payments.AWAITING_DETAILS and p.charging_at is not None
    assert SandboxIntent.get_by_id(p.processor_ref).status == "requires_action"
    return p, urlsplit(entry).path.rsplit("/", 1)[1]


def test_an_abandoned_challenge_expires_after_the_claim_ttl_and_the_customer_can_pay_again(app, logged_in, customer,
                                                                                          owing, processor):
    p, _ = left_at_the_challenge(logged_in)
    assert accounts.invoice_view(customer.id, owing[0].id).pending_cents == 3000
    assert payments.room(customer.id).owed_cents == 4000  # $30 of the $70 is reserved by the claim
    later = p.charging_at + payments.CLAIM_TTL + dt.timedelta(minutes=1)
    assert payments.reconcile(processor, now=later) == [(p.ref, payments.AWAITING_DETAILS, payments.CANCELED)]
    p = Payment.get_by_id(p.id)
    assert (p.status, p.failure_code) == (payments.CANCELED, "claim_expired")
    assert SandboxIntent.get_by_id(p.processor_ref).status == "canceled"  # its window can no longer pay it
    assert not PaymentInvoice.select().where(PaymentInvoice.payment == p.id).exists()
    assert accounts.invoice_view(customer.id, owing[0].id).pending_cents == 0
    assert payments.room(customer.id).owed_cents == 7000
    assert AuditLog.select().where((AuditLog.action == "payment.canceled") & (AuditLog.entity_id == p.ref)).count() == 1
    assert payments.reconcile(processor, now=later) == []  # once
    ref, entry = make_payment(logged_in, "70.00")  # the whole balance, paid afresh
    assert pay_at_processor(logged_in, entry, GOOD_CARD).status_code == 303
    logged_in.get(f"/payments/{ref}")
    assert Payment.get(Payment.ref == ref).status == payments.SUCCEEDED and Allocation.select().count() == 2


def test_a_claim_the_processor_charged_but_nobody_recorded_is_recorded_once(app, logged_in, customer, owing,
                                                                          processor):
    p, intent_id = left_at_the_challenge(logged_in)
    processor.complete_challenge(intent_id, approve=True)  # approved at the bank; the portal never heard
    later = p.charging_at + payments.CLAIM_TTL + dt.timedelta(minutes=1)
    assert payments.reconcile(processor, now=later) == [(p.ref, payments.AWAITING_DETAILS, payments.SUCCEEDED)]
    assert payments.reconcile(processor, now=later) == []
    assert [(a.invoice_id, a.amount_cents) for a in Allocation.select().where(Allocation.payment == p.id)] == \
        [(owing[0].id, 3000)]
    assert accounts.summary(customer.id).balance_cents == 4000
    assert SandboxIntent.get_by_id(p.processor_ref).status == "succeeded"


def test_a_fresh_claim_is_left_alone(app, logged_in, customer, owing, processor):
    p, _ = left_at_the_challenge(logged_in)
    soon = p.charging_at + payments.CLAIM_TTL - dt.timedelta(minutes=1)  # looked at (past 5 minutes), not expired
    assert payments.reconcile(processor, now=soon) == [(p.ref, payments.AWAITING_DETAILS, payments.AWAITING_DETAILS)]
    fresh = Payment.get_by_id(p.id)
    assert fresh.charging_at == p.charging_at and fresh.failure_code == ""
    assert SandboxIntent.get_by_id(p.processor_ref).status == "requires_action"
    assert accounts.invoice_view(customer.id, owing[0].id).pending_cents == 3000


def test_an_autopay_claim_the_processor_never_received_is_released_after_its_longer_ttl(app, customer, owing,
                                                                                      processor):
    with write_tx():
        method = PaymentMethod.create(customer=customer.id, processor="sandbox", processor_ref="pm_sbx_never",
                                      method_type="card", brand="Visa", last4="4242")
        p = payments.create_off_session(customer.id, method=method, amount_cents=3000, invoice_id=owing[0].id,
                                        idempotency_key="autopay-never-charged-1", processor_name="sandbox")
    # The run stopped (a processor error) before any intent was created: the claim holds the invoice.
    assert accounts.invoice_view(customer.id, owing[0].id).pending_cents == 3000
    hours = p.charging_at + payments.CLAIM_TTL + dt.timedelta(hours=1)
    assert payments.reconcile(processor, now=hours) == [(p.ref, payments.AWAITING_DETAILS, payments.AWAITING_DETAILS)]
    weeks = p.charging_at + dt.timedelta(days=8)  # past the ordinary reconcile window too
    assert payments.reconcile(processor, now=weeks) == [(p.ref, payments.AWAITING_DETAILS, payments.CANCELED)]
    assert Payment.get_by_id(p.id).failure_code == "claim_expired"
    assert accounts.invoice_view(customer.id, owing[0].id).pending_cents == 0
    assert payments.reconcile(processor, now=weeks) == []
