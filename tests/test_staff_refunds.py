"""Refunds from the staff pages against a real Stripe API server (localstripe): full or part, with a reason,
reviewed and confirmed once, emailed to the customer; more than was paid, or twice, refused; owners only."""
import datetime as dt
import re

import pytest

from db.models import Allocation, AuditLog, Outbox, Payment, PaymentReversal, RefundRequest
from tests.factories import Portal, make_invoice
from tests.staff_support import CLERK_EMAIL, log_in_staff, make_staff
from tests.staff_support import owner  # noqa: F401  (fixture)
from tests.stripe_support import app, localstripe, pay_card, start_payment, stripe_server  # noqa: F401

TODAY = dt.date.today()


@pytest.fixture
def paid(app, logged_in, customer, stripe_server):
    """The customer paid $50 by card through Stripe: $30 to OLD-1, $20 to NEW-2."""
    make_invoice(customer, 3000, due=TODAY - dt.timedelta(days=5), number="OLD-1")
    make_invoice(customer, 4000, due=TODAY + dt.timedelta(days=10), number="NEW-2")
    payment = start_payment(logged_in, "50.00")
    status, _ = pay_card(logged_in, stripe_server, payment)
    assert status == 200 and Payment.get_by_id(payment.id).status == "succeeded"
    return Payment.get_by_id(payment.id)


def review(owner, payment, amount, reason="Charged twice"):
    """Post the refund form; returns the review page and its confirmation key."""
    resp = owner.post(f"/staff/payments/{payment.ref}/refund", {"amount": amount, "reason": reason, "step": "review"})
    page = resp.get_data(as_text=True)
    m = re.search(r'name="key" value="([^"]+)"', page)
    return resp, page, (m.group(1) if m else None)


def confirm(owner, payment, amount, key, reason="Charged twice"):
    return owner.post(f"/staff/payments/{payment.ref}/refund",
                      {"amount": amount, "reason": reason, "key": key, "step": "confirm"})


def stripe_refunds(server, payment):
    return sorted(r.amount for r in server.client.v1.refunds.list(params={"payment_intent": payment.processor_ref}).data)


def test_a_partial_refund_is_reviewed_confirmed_once_and_emailed(app, owner, paid, stripe_server):
    resp, page, key = review(owner, paid, "15.00")
    assert resp.status_code == 200 and "Confirm refund of $15.00" in page and key
    assert stripe_refunds(stripe_server, paid) == [] and RefundRequest.select().count() == 0  # review writes nothing
    first = confirm(owner, paid, "15.00", key)
    second = confirm(owner, paid, "15.00", key)  # the confirmation double-clicked
    assert first.status_code == second.status_code == 303
    assert stripe_refunds(stripe_server, paid) == [1500]
    assert PaymentReversal.select().where(PaymentReversal.payment == paid.id).count() == 1
    rev = PaymentReversal.get(PaymentReversal.payment == paid.id)
    assert (rev.kind, rev.amount_cents, rev.reason) == ("refund", 1500, "Charged twice")
    # The newest allocation ($20 on NEW-2) is reversed by a new row and $5 re-added.
    assert sorted(a.amount_cents for a in Allocation.select().where(Allocation.payment == paid.id)) == \
        [-2000, 500, 2000, 3000]
    mail = Outbox.get(Outbox.kind == "payment.reversal")
    assert "$15.00" in mail.text_body and paid.ref in mail.text_body
    shown = owner.get(first.headers["Location"]).get_data(as_text=True)
    assert "Refund of $15.00 made" in shown and "up to $35.00" in shown
    entry = AuditLog.get(AuditLog.action == "refund.requested")
    assert entry.actor.startswith("staff:") and "Charged twice" in entry.detail
    assert Payment.get_by_id(paid.id).status == "succeeded"


def test_the_rest_refunded_in_full_then_nothing_is_left(app, owner, paid, stripe_server):
    _, _, key = review(owner, paid, "20.00")
    confirm(owner, paid, "20.00", key)
    form = owner.get(f"/staff/payments/{paid.ref}/refund").get_data(as_text=True)
    assert 'value="30.00"' in form  # the form offers what is left
    _, _, key = review(owner, paid, "30.00")
    assert confirm(owner, paid, "30.00", key).status_code == 303
    assert Payment.get_by_id(paid.id).status == "refunded" and stripe_refunds(stripe_server, paid) == [2000, 3000]
    resp, page, key = review(owner, paid, "1.00")
    assert resp.status_code == 422 and key is None and "nothing left to refund" in page
    assert 'id="refund-link"' not in owner.get(f"/staff/payments/{paid.ref}").get_data(as_text=True)


def test_more_than_was_paid_and_bad_input_are_refused_with_nothing_sent(app, owner, paid, stripe_server):
    for amount, reason, field in (("50.01", "x", "amount"), ("0", "x", "amount"), ("abc", "x", "amount"),
                                  ("10.00", "", "reason"), ("10.00", "y" * 256, "reason")):
        resp, page, key = review(owner, paid, amount, reason)
        assert resp.status_code == 422 and key is None and f'id="{field}-error"' in page, (amount, reason)
    # A confirmation forged past the review is checked again when the money moves.
    resp = confirm(owner, paid, "60.00", "k" * 32)
    assert resp.status_code == 422 and "at most $50.00" in resp.get_data(as_text=True)
    assert confirm(owner, paid, "10.00", "short").status_code == 422
    assert stripe_refunds(stripe_server, paid) == [] and RefundRequest.select().count() == 0


def test_two_confirmations_cannot_together_refund_more_than_was_paid(app, owner, paid, stripe_server):
    _, _, key1 = review(owner, paid, "50.00")
    _, _, key2 = review(owner, paid, "50.00")  # two tabs, each reviewed while nothing was refunded
    assert confirm(owner, paid, "50.00", key1).status_code == 303
    resp = confirm(owner, paid, "50.00", key2)
    assert resp.status_code == 422 and stripe_refunds(stripe_server, paid) == [5000]


def test_a_clerk_cannot_refund(app, paid, stripe_server):
    make_staff(CLERK_EMAIL, staff_role="clerk")
    clerk = log_in_staff(Portal(app.test_client()), CLERK_EMAIL)
    assert clerk.get(f"/staff/payments/{paid.ref}/refund").status_code == 403
    assert clerk.post(f"/staff/payments/{paid.ref}/refund",
                      {"amount": "50.00", "reason": "x", "key": "k" * 32, "step": "confirm"}).status_code == 403
    assert 'id="refund-link"' not in clerk.get(f"/staff/payments/{paid.ref}").get_data(as_text=True)
    assert stripe_refunds(stripe_server, paid) == []


def test_a_request_left_after_stripe_refunded_is_found_by_its_key_and_recorded_by_reconcile(
        app, owner, paid, stripe_server, monkeypatch):
    from billing import refunds
    from db.models import utcnow

    def crash(*args, **kwargs):
        raise RuntimeError("power cut")

    stripe_server.client.v1.refunds.create(params={"payment_intent": paid.processor_ref, "amount": 100})  # another
    _, _, key = review(owner, paid, "15.00")
    monkeypatch.setattr(refunds, "_record", crash)  # Stripe refunds, then the server dies
    app.config["PROPAGATE_EXCEPTIONS"] = True
    with pytest.raises(RuntimeError):
        confirm(owner, paid, "15.00", key)
    monkeypatch.undo()
    request = RefundRequest.get(RefundRequest.request_key == key)
    RefundRequest.update(updated_at=utcnow() - dt.timedelta(minutes=20)).where(RefundRequest.id == request.id).execute()
    result = app.test_cli_runner().invoke(args=["reconcile"])
    assert f"refund of $15.00 on {paid.ref}: made, now recorded" in result.output, result.output
    request = RefundRequest.get_by_id(request.id)
    made = [r for r in stripe_server.client.v1.refunds.list(params={"payment_intent": paid.processor_ref}).data
            if r.amount == 1500]
    assert request.status == "done" and [r.id for r in made] == [request.processor_ref]
    assert PaymentReversal.select().where(PaymentReversal.payment == paid.id, PaymentReversal.amount_cents == 1500
                                          ).count() == 1
    assert stripe_refunds(stripe_server, paid) == [100, 1500]  # nothing sent twice
