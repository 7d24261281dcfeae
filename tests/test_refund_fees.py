"""A refund returns the convenience fee in proportion: all of it with a full refund, a rounded share with a
partial one, and exactly the whole fee over successive partial refunds; the fee part is recorded apart from
the ledger, shown to staff, in the customer's email and by the ``refund`` command."""
import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing import accounts, fees, payments, refunds
from db.models import Allocation, CreditEntry, Invoice, Outbox, Payment, PaymentReversal, RefundRequest, SandboxRefund
from tests.factories import make_invoice
from tests.staff_support import owner  # noqa: F401  (fixture)
from tests.test_fees import set_fees
from tests.test_pay_flow import GOOD_CARD, make_payment, pay_at_processor
from tests.test_staff_refunds import confirm, review
from views.sandbox import deliver_events

TODAY = dt.date.today()
FEE = 178  # 2.95 % of $50.00 is 147.5 cents, half up to 148, plus 30


# --- The rule. ------------------------------------------------------------------------------------


@pytest.mark.parametrize("amount,fee,refunded,share", [
    (5000, 178, 5000, 178),   # all of it
    (5000, 178, 1500, 53),    # 53.4 -> 53
    (5000, 178, 3500, 125),   # 124.6 -> 125
    (1000, 30, 500, 15),
    (1000, 25, 500, 13),      # 12.5 exactly: half up
    (5000, 0, 2500, 0),       # no fee
])
def test_the_fee_share_is_the_fee_times_the_part_refunded_rounded_half_up(amount, fee, refunded, share):
    assert fees.fee_share(amount, fee, refunded) == share


@given(amount=st.integers(1, 10**7), fee=st.integers(0, 10**5),
       parts=st.lists(st.integers(1, 10**7), min_size=1, max_size=12))
def test_successive_partial_refunds_return_exactly_the_fee_and_each_split_inverts(amount, fee, parts):
    refunded = fee_back = 0
    for part in parts + [amount]:  # the last one refunds whatever is left
        cents = min(part, amount - refunded)
        if cents <= 0:
            break
        share = fees.refund_fee(amount, fee, refunded, fee_back, cents)
        assert 0 <= share <= fee - fee_back
        # A processor reporting this refund of the charge is split back into the same two parts.
        assert fees.split_refund(amount, fee, refunded, fee_back, cents + share) == (cents, share)
        refunded, fee_back = refunded + cents, fee_back + share
    assert (refunded, fee_back) == (amount, fee)  # no drift, whatever the partial refunds were


# --- Through the staff pages and the sandbox. ---------------------------------------------------------


@pytest.fixture
def paid(app, logged_in, customer):
    """The customer paid $50 by card with a 2.95 % + $0.30 fee ($51.78 charged): $30 to OLD-1, $20 to NEW-2."""
    set_fees(card=(295, 30))
    make_invoice(customer, 3000, due=TODAY - dt.timedelta(days=5), number="OLD-1")
    make_invoice(customer, 4000, due=TODAY + dt.timedelta(days=10), number="NEW-2")
    ref, entry = make_payment(logged_in, "50.00")
    done = pay_at_processor(logged_in, entry, GOOD_CARD)
    assert done.status_code == 303 and logged_in.get(done.location).status_code == 200
    payment = Payment.get(Payment.ref == ref)
    assert payment.status == "succeeded" and (payment.amount_cents, payment.fee_cents) == (5000, FEE)
    return payment


def sandbox_refunds(payment):
    return [r.amount_cents for r in SandboxRefund.select().where(SandboxRefund.intent == payment.processor_ref)
            .order_by(SandboxRefund.created_at)]


def parts(payment):
    return [(r.amount_cents, r.fee_cents) for r in
            PaymentReversal.select().where(PaymentReversal.payment == payment.id).order_by(PaymentReversal.id)]


def ledger_holds(payment):
    alloc = sum(a.amount_cents for a in Allocation.select().where(Allocation.payment == payment.id))
    credit = sum(c.amount_cents for c in CreditEntry.select().where(CreditEntry.payment == payment.id))
    return alloc + credit


def test_a_full_refund_returns_the_whole_charge(app, owner, paid):
    shown = owner.get(f"/staff/payments/{paid.ref}").get_data(as_text=True)
    assert "up to $50.00, with up to $1.78 of its fee" in shown
    page = owner.get(f"/staff/payments/{paid.ref}/refund").get_data(as_text=True)
    assert 'id="fee-refundable">$1.78<' in page
    resp, shown, key = review(owner, paid, "50.00")
    assert resp.status_code == 200 and 'id="review-fee">$1.78<' in shown and 'id="review-total">$51.78<' in shown
    assert "Confirm refund of $51.78" in shown
    done = confirm(owner, paid, "50.00", key)
    assert done.status_code == 303
    assert sandbox_refunds(paid) == [5178] and parts(paid) == [(5000, FEE)]
    payment = Payment.get_by_id(paid.id)
    assert payment.status == "refunded" and ledger_holds(payment) == 0
    assert payments.taken_back(paid.id) == 5000 and payments.fee_taken_back(paid.id) == FEE
    request = RefundRequest.get(RefundRequest.request_key == key)
    assert (request.amount_cents, request.fee_cents, request.status) == (5000, FEE, "done")
    mail = Outbox.get(Outbox.kind == "payment.reversal")
    assert "We refunded $51.78" in mail.text_body and "$50.00 of the payment and $1.78 of its card" in mail.text_body
    shown = owner.get(done.headers["Location"]).get_data(as_text=True)
    assert "Refund of $51.78 ($50.00 of the payment and $1.78 of its fee) made." in shown
    assert "$50.00 + $1.78 fee" in shown
    deliver_events(app)  # the sandbox's webhook reports the same refund of the charge: recorded once
    assert parts(paid) == [(5000, FEE)]


def test_a_partial_refund_returns_the_fee_share_and_more_than_the_charge_is_refused(app, owner, paid):
    resp, shown, key = review(owner, paid, "15.00")
    assert 'id="review-fee">$0.53<' in shown and "Confirm refund of $15.53" in shown
    assert confirm(owner, paid, "15.00", key).status_code == 303
    assert sandbox_refunds(paid) == [1553] and parts(paid) == [(1500, 53)]
    assert refunds.refundable(Payment.get_by_id(paid.id)) == 3500
    assert refunds.fee_refundable(Payment.get_by_id(paid.id)) == FEE - 53
    shown = owner.get(f"/staff/payments/{paid.ref}").get_data(as_text=True)
    assert "up to $35.00, with up to $1.25 of its fee" in shown
    assert "We refunded $15.53" in Outbox.get(Outbox.kind == "payment.reversal").text_body
    resp, shown, _ = review(owner, paid, "35.01")
    assert resp.status_code == 422 and "at most $35.00" in shown
    # A refund of the charge larger than what is left of amount and fee together is not recorded.
    assert not payments.record_refunds(paid.id, [("re_too_much", 5178 - 1553 + 1)])


def test_partial_then_full_refunds_agree_everywhere_and_return_exactly_the_fee(app, owner, paid):
    for amount in ("15.00", "20.00", "15.00"):
        _, _, key = review(owner, paid, amount)
        assert confirm(owner, paid, amount, key).status_code == 303
    # 53 (53.4), then 125 - 53 = 72 (124.6 in all), then the rest: 178 - 125 = 53.
    assert parts(paid) == [(1500, 53), (2000, 72), (1500, 53)]
    assert sandbox_refunds(paid) == [1553, 2072, 1553] and sum(sandbox_refunds(paid)) == 5000 + FEE
    requests = [(r.amount_cents, r.fee_cents) for r in RefundRequest.select().order_by(RefundRequest.id)]
    assert requests == parts(paid)
    payment = Payment.get_by_id(paid.id)
    assert payment.status == "refunded" and ledger_holds(payment) == 0
    assert [accounts.invoice_view(payment.customer_id, i.id).balance_cents
            for i in Invoice.select().where(Invoice.customer == payment.customer_id).order_by(Invoice.number)] \
        == [4000, 3000]  # NEW-2, OLD-1: owed again in full, and no fee cent reached them
    assert refunds.refundable(payment) == 0 and refunds.fee_refundable(payment) == 0
    deliver_events(app)
    assert len(parts(paid)) == 3 and Outbox.select().where(Outbox.kind == "payment.reversal").count() == 3


def test_a_refund_reported_by_the_processor_is_split_in_proportion_and_the_last_returns_the_rest(app, owner,
                                                                                                paid):
    proc = app.extensions["processor"]
    dashboard = proc.refund(paid.processor_ref, 1000, "from-the-dashboard")  # $10.00 of the charge
    assert payments.record_refunds(paid.id, [(dashboard.id, dashboard.amount_cents)])
    # 966 + share(966) = 966 + 34 (34.4) = 1000
    assert parts(paid) == [(966, 34)]
    _, shown, key = review(owner, paid, "40.34")
    assert confirm(owner, paid, "40.34", key).status_code == 303
    assert parts(paid) == [(966, 34), (4034, FEE - 34)]
    assert sum(sandbox_refunds(paid)) == 5000 + FEE and Payment.get_by_id(paid.id).status == "refunded"


def test_the_refund_command_prints_the_fee_share(app, runner, paid):
    part = runner.invoke(args=["refund", paid.ref, "20.00"])
    assert part.exit_code == 0, part.output
    # 2000 of 5000 is 71.2 cents of the fee: 71
    assert "refunded $20.71: $20.00 of the payment + $0.71 fee share" in part.output
    assert "$30.00 still refundable" in part.output
    rest = runner.invoke(args=["refund", paid.ref])
    assert rest.exit_code == 0, rest.output
    assert "refunded $31.07: $30.00 of the payment + $1.07 fee share" in rest.output
    assert parts(paid) == [(2000, 71), (3000, 107)] and Payment.get_by_id(paid.id).status == "refunded"


# --- Money taken back by the bank: the fee goes with it, apart from the ledger. ----------------------


def test_a_dispute_of_the_whole_charge_takes_the_fee_back_apart_and_a_won_one_gives_it_back(app, runner, paid):
    opened = runner.invoke(args=["sandbox-dispute", paid.ref])
    assert opened.exit_code == 0, opened.output
    rev = PaymentReversal.get(PaymentReversal.kind == "dispute")
    assert (rev.amount_cents, rev.fee_cents) == (5000, FEE)  # $51.78 disputed: $50.00 off the ledger, the fee apart
    assert (payments.taken_back(paid.id), payments.fee_taken_back(paid.id)) == (5000, FEE)
    assert accounts.summary(paid.customer_id).balance_cents == 7000  # both invoices due again, nothing more
    won = runner.invoke(args=["sandbox-dispute", paid.ref, "--won"])
    assert won.exit_code == 0, won.output
    assert (payments.taken_back(paid.id), payments.fee_taken_back(paid.id)) == (0, 0)
    assert accounts.summary(paid.customer_id).balance_cents == 2000


def test_a_dispute_lost_at_once_takes_back_the_fee_left_in_the_payment(app, paid, owner):
    """A late bank return reaches us as Stripe reports it, a dispute already lost: what is left of the charge
    after a refund comes back, fee and all, split as a refund of it would be."""
    _, _, key = review(owner, paid, "15.00")  # $15.00 refunded first, with its $0.53 share of the fee
    assert confirm(owner, paid, "15.00", key).status_code in (302, 303)
    assert payments.fee_taken_back(paid.id) == 53
    assert payments.record_dispute(paid.id, "du_late_return", "lost", 3500 + FEE - 53, reason="unauthorized")
    rev = PaymentReversal.get(PaymentReversal.kind == "dispute")
    assert (rev.amount_cents, rev.fee_cents) == (3500, FEE - 53)
    assert (payments.taken_back(paid.id), payments.fee_taken_back(paid.id)) == (5000, FEE)
    assert Payment.get_by_id(paid.id).status == payments.REVERSED
