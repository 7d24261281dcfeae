"""Held payments (the processor reported another amount or currency) resolved by an owner on the sandbox: accepted
as reported through the ledger rules, or refunded and closed so that their reservation ends; a reason, a review,
CSRF, an audit row, and a double submission that changes nothing."""
import datetime as dt
import json
import re

import pytest

from billing import accounts, payments
from db import write_tx
from db.models import Allocation, AuditLog, CreditEntry, Isp, Outbox, Payment, PaymentInvoice, SandboxIntent, \
    SandboxRefund
from tests.factories import Portal, make_invoice
from tests.staff_support import CLERK_EMAIL, log_in_staff, make_staff
from tests.staff_support import owner  # noqa: F401  (fixture)
from tests.test_pay_flow import GOOD_CARD, make_payment, pay_at_processor

TODAY = dt.date.today()


@pytest.fixture
def invoices(customer):
    """$30 overdue (OLD-1) and $40 due later (NEW-2)."""
    return (make_invoice(customer, 3000, due=TODAY - dt.timedelta(days=5), number="OLD-1"),
            make_invoice(customer, 4000, due=TODAY + dt.timedelta(days=10), number="NEW-2"))


def hold(logged_in, amount="40.00", **change):
    """A card payment of ``amount`` whose intent the processor reports with ``change``: held when it comes back."""
    ref, entry = make_payment(logged_in, amount)
    p = Payment.get(Payment.ref == ref)
    with write_tx():
        SandboxIntent.update(**change).where(SandboxIntent.id == p.processor_ref).execute()
    done = pay_at_processor(logged_in, entry, GOOD_CARD)
    assert done.status_code == 303 and logged_in.get(done.location).status_code == 200
    p = Payment.get_by_id(p.id)
    assert p.status == payments.HELD
    return p


def review(owner, payment, action, reason="Checked with the processor"):
    return owner.post(f"/staff/payments/{payment.ref}/held", {"action": action, "reason": reason, "step": "review"})


def confirm(owner, payment, action, reason="Checked with the processor"):
    return owner.post(f"/staff/payments/{payment.ref}/held", {"action": action, "reason": reason, "step": "confirm"})


def text(resp):
    return resp.get_data(as_text=True)


def test_an_owner_accepts_a_held_payment_as_reported_once_through_the_ledger_rules(app, logged_in, customer,
                                                                                    invoices, owner):
    p = hold(logged_in, "40.00", amount_cents=4500)  # the processor took $45.00, not $40.00
    assert accounts.invoice_view(customer.id, invoices[0].id).pending_cents == 3000  # held money stays reserved
    page = text(owner.get(f"/staff/payments/{p.ref}"))
    assert 'id="resolve-held-link"' in page
    listed = text(owner.get("/staff/payments?status=held"))  # the list finds what is waiting for staff
    assert p.ref in listed and '<option value="held" selected>Being checked</option>' in listed
    form = text(owner.get(f"/staff/payments/{p.ref}/held"))
    assert "$40.00" in form and "$45.00, succeeded" in form and "$30.00 to OLD-1; $15.00 to NEW-2" in form
    shown = review(owner, p, "accept")
    assert shown.status_code == 200 and "Confirm: Accept as reported" in text(shown)
    assert Payment.get_by_id(p.id).status == payments.HELD  # the review writes nothing
    first, second = confirm(owner, p, "accept"), confirm(owner, p, "accept")  # a double click
    assert first.status_code == second.status_code == 303
    p = Payment.get_by_id(p.id)
    assert (p.status, p.amount_cents) == (payments.SUCCEEDED, 4500)
    assert sorted(a.amount_cents for a in Allocation.select().where(Allocation.payment == p.id)) == [1500, 3000]
    assert accounts.summary(customer.id).balance_cents == 7000 - 4500
    entries = list(AuditLog.select().where(AuditLog.action == "payment.held_accepted"))
    assert len(entries) == 1 and entries[0].actor.startswith("staff:")
    detail = json.loads(entries[0].detail)
    assert (detail["reason"], detail["expected_charge_cents"], detail["reported_amount_cents"]) == \
        ("Checked with the processor", 4000, 4500)
    assert Outbox.select().where(Outbox.to_addr == p.billing_email).count() >= 1  # the receipt
    assert "Accepted as reported: $45.00 applied" in text(owner.get(first.location))
    assert accounts.invoice_view(customer.id, invoices[0].id).pending_cents == 0


def test_an_owner_refunds_and_closes_a_held_payment_once_and_the_customer_can_pay_again(app, logged_in, customer,
                                                                                       invoices, owner):
    p = hold(logged_in, "70.00", currency="EUR")
    assert payments.room(customer.id).owed_cents == 0  # reserved: nothing else can be paid meanwhile
    first, second = confirm(owner, p, "refund"), confirm(owner, p, "refund")
    assert first.status_code == second.status_code == 303
    refunds = [r.amount_cents for r in SandboxRefund.select().where(SandboxRefund.intent == p.processor_ref)]
    assert refunds == [7000]  # all of it, once
    p = Payment.get_by_id(p.id)
    assert (p.status, p.failure_code) == (payments.CANCELED, payments.HELD_REFUNDED)
    assert "Refunded by staff: Checked with the processor" == p.failure_message
    assert not PaymentInvoice.select().where(PaymentInvoice.payment == p.id).exists()
    assert Allocation.select().where(Allocation.payment == p.id).count() == 0
    assert CreditEntry.select().where(CreditEntry.payment == p.id).count() == 0
    assert payments.room(customer.id).owed_cents == 7000  # the reservation is released
    assert accounts.invoice_view(customer.id, invoices[0].id).pending_cents == 0
    assert AuditLog.select().where(AuditLog.action == "payment.held_refunded").count() == 1
    assert AuditLog.select().where(AuditLog.action == "payment.held_refund_requested").count() == 1
    mail = Outbox.get(Outbox.kind == "payment.reversal")
    assert "$70.00" in mail.text_body and p.ref in mail.text_body
    assert "Refunded at the processor and closed" in text(owner.get(first.location))
    again, entry = make_payment(logged_in, "70.00")  # and the customer pays again
    assert pay_at_processor(logged_in, entry, GOOD_CARD).status_code == 303
    logged_in.get(f"/payments/{again}")
    assert Payment.get(Payment.ref == again).status == payments.SUCCEEDED


def test_another_currency_or_more_than_the_prepayment_allowance_cannot_be_accepted(app, logged_in, customer,
                                                                                  invoices, owner):
    euro = hold(logged_in, "30.00", currency="EUR")
    refused = review(owner, euro, "accept")
    assert refused.status_code == 422 and "kept in USD" in text(refused) and "Refund it instead" in text(refused)
    forged = confirm(owner, euro, "accept")  # past the review
    assert forged.status_code == 422 and Payment.get_by_id(euro.id).status == payments.HELD
    with write_tx():
        Isp.update(max_prepay_cents=0).execute()
    big = hold(logged_in, "40.00", amount_cents=9000)  # $90 taken on $40 owed (and $30 held already)
    refused = confirm(owner, big, "accept")
    assert refused.status_code == 422 and "prepayment allowance" in text(refused)
    assert Payment.get_by_id(big.id).status == payments.HELD
    assert Allocation.select().count() == 0 and CreditEntry.select().count() == 0


def test_a_reason_is_required_only_owners_may_resolve_and_csrf_is_checked(app, logged_in, invoices, owner):
    p = hold(logged_in, "40.00", amount_cents=4100)
    missing = review(owner, p, "accept", reason="  ")
    assert missing.status_code == 422 and 'id="reason-error"' in text(missing)
    assert confirm(owner, p, "shrug").status_code == 422
    assert owner.client.post(f"/staff/payments/{p.ref}/held",
                             data={"action": "accept", "reason": "x", "step": "confirm"}).status_code == 400
    make_staff(CLERK_EMAIL, staff_role="clerk", name="Cary Clerk")
    clerk = log_in_staff(Portal(app.test_client()), CLERK_EMAIL)
    assert 'id="resolve-held-link"' not in text(clerk.get(f"/staff/payments/{p.ref}"))
    assert clerk.get(f"/staff/payments/{p.ref}/held").status_code == 403
    assert confirm(clerk, p, "accept").status_code == 403
    assert Payment.get_by_id(p.id).status == payments.HELD
    assert not AuditLog.select().where(AuditLog.action.startswith("payment.held_")).exists()


def test_the_confirmation_form_needs_no_javascript(app, logged_in, invoices, owner):
    p = hold(logged_in, "40.00", amount_cents=4100)
    page = text(review(owner, p, "refund"))
    form = re.search(r'<form method="post" action="([^"]+)" id="confirm-held">(.*?)</form>', page, re.S)
    assert form and form.group(1) == f"/staff/payments/{p.ref}/held"
    assert 'name="csrf_token"' in form.group(2) and 'name="step" value="confirm"' in form.group(2)
    assert "hx-" not in form.group(0) and "onclick" not in page  # a plain form: submitted by the browser itself
    done = confirm(owner, p, "refund")
    assert done.status_code == 303 and done.location == f"/staff/payments/{p.ref}?resolved=1"


def _refund_then_crash(app, monkeypatch, p):
    """An owner's Refund and close, with the server stopping just after the sandbox made the refund."""
    from billing import held
    from billing.processors.sandbox import SandboxProcessor

    real_refund = SandboxProcessor.refund

    def refund_then_crash(self, intent_id, cents, key):
        real_refund(self, intent_id, cents, key)
        raise RuntimeError("the server stopped after the processor refunded")

    with monkeypatch.context() as m:
        m.setattr(SandboxProcessor, "refund", refund_then_crash)
        with pytest.raises(RuntimeError):
            held.resolve(p.id, held.REFUND, "Checked", app.extensions["processor"], "staff:1")


def test_a_refund_left_unrecorded_by_a_crash_is_found_by_its_key_not_made_twice(app, logged_in, invoices, owner,
                                                                                 monkeypatch):
    from billing.processors.sandbox import SandboxProcessor

    p = hold(logged_in, "40.00", amount_cents=4100)
    _refund_then_crash(app, monkeypatch, p)
    assert Payment.get_by_id(p.id).status == payments.HELD
    refused = confirm(owner, p, "accept")  # money already on its way back cannot be accepted as well
    assert refused.status_code == 422 and "refund of this payment was already asked for" in text(refused)
    assert Payment.get_by_id(p.id).status == payments.HELD and Allocation.select().count() == 0
    monkeypatch.setattr(SandboxProcessor, "refund", lambda *a, **k: pytest.fail("refunded twice"))
    assert confirm(owner, p, "refund").status_code == 303  # the owner tries again
    assert [r.amount_cents for r in SandboxRefund.select()] == [4100]
    assert Payment.get_by_id(p.id).failure_code == payments.HELD_REFUNDED
    assert confirm(owner, p, "accept").status_code == 303  # too late to accept: it is closed, nothing changes
    assert Payment.get_by_id(p.id).status == payments.CANCELED and Allocation.select().count() == 0


def test_a_held_payment_the_processor_did_not_charge_after_all_is_closed_without_a_refund(app, logged_in, customer,
                                                                                        invoices, owner):
    p = hold(logged_in, "40.00", amount_cents=4100)
    with write_tx():  # the processor's record, asked again, shows no charge
        SandboxIntent.update(status="requires_payment_method").where(SandboxIntent.id == p.processor_ref).execute()
    assert review(owner, p, "accept").status_code == 422
    assert confirm(owner, p, "refund").status_code == 303
    p = Payment.get_by_id(p.id)
    assert (p.status, p.failure_code) == (payments.CANCELED, payments.HELD_NOT_CHARGED)
    assert SandboxIntent.get_by_id(p.processor_ref).status == "canceled" and SandboxRefund.select().count() == 0
    assert payments.room(customer.id).owed_cents == 7000


def test_reconcile_closes_a_held_payment_whose_refund_the_processor_made_before_a_crash(app, logged_in, customer,
                                                                                       invoices, monkeypatch):
    from db.models import RefundRequest, utcnow

    p = hold(logged_in, "40.00", amount_cents=4100)
    _refund_then_crash(app, monkeypatch, p)
    with write_tx():  # left 'requested' long enough for reconcile to ask the processor
        RefundRequest.update(updated_at=utcnow() - dt.timedelta(minutes=20)).execute()
    result = app.test_cli_runner().invoke(args=["reconcile"])
    assert result.exit_code == 0 and f"{p.ref}: held -> canceled (refunded)" in result.output
    p = Payment.get_by_id(p.id)
    assert (p.status, p.failure_code) == (payments.CANCELED, payments.HELD_REFUNDED)
    assert [r.amount_cents for r in SandboxRefund.select()] == [4100]
    assert payments.room(customer.id).owed_cents == 7000
    assert f"{p.ref}: held" not in app.test_cli_runner().invoke(args=["reconcile"]).output  # once


def test_two_owners_deciding_at_once_accept_or_refund_never_both(app, logged_in, invoices):
    from billing import held
    from billing.errors import FormErrors

    p = hold(logged_in, "40.00", amount_cents=4100)
    processor = app.extensions["processor"]
    state = processor.retrieve_payment_intent(p.processor_ref)
    assert payments.accept_held(p.id, state, "Agreed", "staff:1") is True  # the first owner accepts
    with pytest.raises(FormErrors):  # the second had read it as held before that committed
        held._refund_and_close(p, state, "Refused", processor, "staff:2")
    assert SandboxRefund.select().count() == 0 and Payment.get_by_id(p.id).status == payments.SUCCEEDED
    assert payments.accept_held(p.id, state, "Agreed", "staff:1") is False  # and accepting again does nothing
    assert Allocation.select().where(Allocation.payment == p.id).count() == 2
