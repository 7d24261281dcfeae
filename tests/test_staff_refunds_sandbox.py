"""Refunds from the staff pages on the built-in sandbox, through the same processor interface as Stripe: full or
part, with a reason, confirmed once, emailed; more than was paid, or twice, refused. And refund requests left
"requested" (a crash, a processor that never answered) are settled by reconcile instead of holding cents."""
import datetime as dt

import pytest

from billing import refunds
from db.models import Allocation, AuditLog, Outbox, Payment, PaymentReversal, RefundRequest, SandboxRefund, utcnow
from tests.factories import make_invoice
from tests.staff_support import owner  # noqa: F401  (fixture)
from tests.test_pay_flow import GOOD_CARD, make_payment, pay_at_processor
from tests.test_staff_refunds import confirm, review
from views.sandbox import deliver_events

TODAY = dt.date.today()


@pytest.fixture
def paid(app, logged_in, customer):
    """The customer paid $50 by card on the sandbox: $30 to OLD-1, $20 to NEW-2."""
    make_invoice(customer, 3000, due=TODAY - dt.timedelta(days=5), number="OLD-1")
    make_invoice(customer, 4000, due=TODAY + dt.timedelta(days=10), number="NEW-2")
    ref, entry = make_payment(logged_in, "50.00")
    done = pay_at_processor(logged_in, entry, GOOD_CARD)
    assert done.status_code == 303 and logged_in.get(done.location).status_code == 200  # the result page records it
    payment = Payment.get(Payment.ref == ref)
    assert payment.status == "succeeded" and payment.processor == "sandbox"
    return payment


def sandbox_refunds(payment):
    return sorted(r.amount_cents for r in SandboxRefund.select().where(SandboxRefund.intent == payment.processor_ref))


def reversals(payment):
    return PaymentReversal.select().where(PaymentReversal.payment == payment.id).count()


def age(request_id, minutes=20):
    """As if the request had been left that long."""
    RefundRequest.update(updated_at=utcnow() - dt.timedelta(minutes=minutes)).where(
        RefundRequest.id == request_id).execute()


def test_a_sandbox_payment_is_refunded_in_part_once_then_in_full(app, owner, paid):
    page = owner.get(f"/staff/payments/{paid.ref}").get_data(as_text=True)
    assert 'id="refund-link"' in page and "up to $50.00" in page  # the sandbox declares refunds
    resp, shown, key = review(owner, paid, "15.00")
    assert resp.status_code == 200 and "Confirm refund of $15.00" in shown and key
    assert sandbox_refunds(paid) == [] and RefundRequest.select().count() == 0  # the review writes nothing
    first, second = confirm(owner, paid, "15.00", key), confirm(owner, paid, "15.00", key)  # a double click
    assert first.status_code == second.status_code == 303
    assert sandbox_refunds(paid) == [1500] and reversals(paid) == 1
    assert sorted(a.amount_cents for a in Allocation.select().where(Allocation.payment == paid.id)) == \
        [-2000, 500, 2000, 3000]  # the newest allocation ($20 on NEW-2) reversed, $5 of it re-added
    mail = Outbox.get(Outbox.kind == "payment.reversal")
    assert "$15.00" in mail.text_body and paid.ref in mail.text_body and mail.to_addr == paid.billing_email
    shown = owner.get(first.headers["Location"]).get_data(as_text=True)
    assert "Refund of $15.00 made" in shown and "up to $35.00" in shown
    deliver_events(app)  # the sandbox's charge.refunded webhook reports the same refund: no second reversal
    assert reversals(paid) == 1 and Outbox.select().where(Outbox.kind == "payment.reversal").count() == 1

    _, _, key = review(owner, paid, "35.00")
    assert confirm(owner, paid, "35.00", key).status_code == 303
    assert Payment.get_by_id(paid.id).status == "refunded" and sandbox_refunds(paid) == [1500, 3500]
    resp, shown, key = review(owner, paid, "1.00")
    assert resp.status_code == 422 and key is None and "nothing left to refund" in shown
    assert 'id="refund-link"' not in owner.get(f"/staff/payments/{paid.ref}").get_data(as_text=True)
    assert [r.status for r in RefundRequest.select().order_by(RefundRequest.id)] == ["done", "done"]


def test_more_than_was_paid_or_twice_is_refused_on_the_sandbox(app, owner, paid):
    resp, shown, key = review(owner, paid, "50.01")
    assert resp.status_code == 422 and key is None and "at most $50.00" in shown
    resp, shown, key = review(owner, paid, "10.00", reason="")
    assert resp.status_code == 422 and 'id="reason-error"' in shown
    assert confirm(owner, paid, "60.00", "k" * 32).status_code == 422  # forged past the review
    _, _, key1 = review(owner, paid, "50.00")
    _, _, key2 = review(owner, paid, "50.00")  # a second tab, reviewed before the first was confirmed
    assert confirm(owner, paid, "50.00", key1).status_code == 303
    refused = confirm(owner, paid, "50.00", key2)
    assert refused.status_code == 422 and "nothing left to refund" in refused.get_data(as_text=True)
    assert sandbox_refunds(paid) == [5000] and reversals(paid) == 1


def test_a_request_left_after_the_processor_refunded_is_recorded_by_reconcile(app, owner, paid, monkeypatch):
    def crash(*args, **kwargs):
        raise RuntimeError("power cut")

    _, _, key = review(owner, paid, "15.00")
    monkeypatch.setattr(refunds, "_record", crash)  # the sandbox refunds, then the server dies
    app.config["PROPAGATE_EXCEPTIONS"] = True
    with pytest.raises(RuntimeError):
        confirm(owner, paid, "15.00", key)
    monkeypatch.undo()
    request = RefundRequest.get(RefundRequest.request_key == key)
    assert request.status == "requested" and sandbox_refunds(paid) == [1500] and reversals(paid) == 0
    assert refunds.refundable(Payment.get_by_id(paid.id)) == 3500  # held while nobody knows

    runner = app.test_cli_runner()
    young = runner.invoke(args=["reconcile"])
    assert young.exit_code == 0 and "refund of" not in young.output  # it may still be being answered
    age(request.id)
    result = runner.invoke(args=["reconcile"])
    assert result.exit_code == 0, result.output
    assert f"refund of $15.00 on {paid.ref}: made, now recorded" in result.output
    request = RefundRequest.get_by_id(request.id)
    assert request.status == "done" and request.processor_ref.startswith("re_sbx")
    assert reversals(paid) == 1 and refunds.refundable(Payment.get_by_id(paid.id)) == 3500
    assert Outbox.select().where(Outbox.kind == "payment.reversal").count() == 1
    assert AuditLog.select().where(AuditLog.action == "refund.resolved").count() == 1
    assert "refund of" not in runner.invoke(args=["reconcile"]).output  # settled once
    deliver_events(app)
    assert reversals(paid) == 1


def test_a_request_the_processor_never_made_expires_and_frees_its_cents(app, owner, paid, monkeypatch):
    def timeout(*args, **kwargs):
        raise RuntimeError("the worker was killed while asking the processor")

    _, _, key = review(owner, paid, "20.00")
    monkeypatch.setattr(app.extensions["processor"], "refund", timeout)
    app.config["PROPAGATE_EXCEPTIONS"] = True
    with pytest.raises(RuntimeError):
        confirm(owner, paid, "20.00", key)
    monkeypatch.undo()
    request = RefundRequest.get(RefundRequest.request_key == key)
    assert request.status == "requested" and refunds.refundable(Payment.get_by_id(paid.id)) == 3000
    page = owner.get(f"/staff/payments/{paid.ref}").get_data(as_text=True)
    assert "In progress" in page and "up to $30.00" in page

    age(request.id)
    result = app.test_cli_runner().invoke(args=["reconcile"])
    assert f"refund of $20.00 on {paid.ref}: not made, released" in result.output, result.output
    request = RefundRequest.get_by_id(request.id)
    assert request.status == "failed" and "no record" in request.error
    assert refunds.refundable(Payment.get_by_id(paid.id)) == 5000 and sandbox_refunds(paid) == []
    assert reversals(paid) == 0 and Outbox.select().where(Outbox.kind == "payment.reversal").count() == 0
    assert AuditLog.get(AuditLog.action == "refund.expired").entity_id == paid.ref
    page = owner.get(f"/staff/payments/{paid.ref}").get_data(as_text=True)
    assert "Not made: the processor has no record" in page and "up to $50.00" in page
    # The same confirmation cannot be replayed into a refund; a new review can refund.
    assert confirm(owner, paid, "20.00", key).status_code == 422
    _, _, key2 = review(owner, paid, "20.00")
    assert confirm(owner, paid, "20.00", key2).status_code == 303 and sandbox_refunds(paid) == [2000]
