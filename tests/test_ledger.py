"""Ledger rules, Flask-free: allocation order, statuses, credit, and the money invariant."""
import datetime as dt
import secrets

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from peewee import fn

from billing import accounts, ledger, payments
from billing.ledger import OpenInvoice, allocate, invoice_status
from billing.processors import SUCCEEDED, IntentState
from db.models import Allocation, CreditEntry, Invoice, Payment, utcnow
from tests.factories import make_customer, make_invoice

D = dt.date


def inv(id, due, balance, number=None):
    return OpenInvoice(id, number or f"N{id:03d}", due, balance)


def test_total_balance_goes_to_oldest_invoice_first():
    invoices = [inv(1, D(2026, 3, 1), 5000), inv(2, D(2026, 1, 1), 3000), inv(3, D(2026, 2, 1), 4000)]
    plan = allocate(6000, invoices)
    assert plan.allocations == ((2, 3000), (3, 3000))
    assert plan.credit_cents == 0


def test_same_due_date_is_ordered_by_invoice_number():
    invoices = [inv(1, D(2026, 1, 1), 1000, "B-2"), inv(2, D(2026, 1, 1), 1000, "A-9")]
    assert allocate(1500, invoices).allocations == ((2, 1000), (1, 500))


def test_paying_one_invoice_fills_it_then_oldest_first_then_credit():
    invoices = [inv(1, D(2026, 1, 1), 3000), inv(2, D(2026, 2, 1), 3000), inv(3, D(2026, 3, 1), 3000)]
    plan = allocate(10000, invoices, first_invoice_id=3)
    assert plan.allocations == ((3, 3000), (1, 3000), (2, 3000))
    assert plan.credit_cents == 1000


def test_overpayment_with_nothing_owed_is_all_credit():
    assert allocate(2500, []) == ledger.Plan((), 2500)


def test_paid_invoices_are_skipped():
    plan = allocate(1000, [inv(1, D(2026, 1, 1), 0), inv(2, D(2026, 2, 1), 2000)])
    assert plan.allocations == ((2, 1000),)


def test_status_is_derived_from_money_and_date():
    today = D(2026, 6, 15)
    future, past = D(2026, 7, 1), D(2026, 6, 1)
    assert invoice_status(5000, 0, future, today) == ledger.UNPAID
    assert invoice_status(5000, 1, future, today) == ledger.PARTIALLY_PAID
    assert invoice_status(5000, 5000, past, today) == ledger.PAID
    assert invoice_status(5000, 0, past, today) == ledger.OVERDUE
    assert invoice_status(5000, 2500, past, today) == ledger.OVERDUE
    assert invoice_status(5000, 0, today, today) == ledger.UNPAID  # due today is not overdue yet
    assert invoice_status(5000, 0, future, today, void=True) == ledger.VOID


def test_balance_never_goes_below_zero():
    assert ledger.balance_of(5000, 6000) == 0


# --- Against the database, still without Flask. ------------------------------------


def pay(customer, cents, invoice=None):
    """A succeeded payment through the state machine, as the processor would report it."""
    p = Payment.create(ref=f"PAY-{secrets.token_hex(4)}", customer=customer.id,
                       idempotency_key=secrets.token_urlsafe(24), amount_cents=cents, method_type="card",
                       status=payments.AWAITING_DETAILS, target_invoice=invoice, processor="sandbox",
                       processor_ref=f"pi_{secrets.token_hex(8)}", charging_at=utcnow())  # claimed, as Pay does
    state = IntentState(id=p.processor_ref, status=SUCCEEDED, amount_cents=cents, brand="Visa", last4="4242",
                         currency="USD")
    payments.apply_intent_state(p.id, state)
    return p, state


def test_partial_payment_leaves_invoice_partially_paid(ledger_db):
    c = make_customer()
    i = make_invoice(c, 5000)
    pay(c, 2000)
    view = accounts.invoice_view(c.id, i.id)
    assert (view.paid_cents, view.balance_cents, view.status) == (2000, 3000, ledger.PARTIALLY_PAID)


def test_overpayment_becomes_credit_applied_to_later_invoices(ledger_db):
    c = make_customer()
    make_invoice(c, 3000)
    pay(c, 5000)
    assert CreditEntry.balance(c.id) == 2000
    later = make_invoice(c, 1500)
    assert accounts.invoice_view(c.id, later.id).status == ledger.PAID
    assert CreditEntry.balance(c.id) == 500
    last = make_invoice(c, 1000)
    view = accounts.invoice_view(c.id, last.id)
    assert (view.paid_cents, view.status) == (500, ledger.PARTIALLY_PAID)
    assert CreditEntry.balance(c.id) == 0


def test_the_same_success_reported_twice_allocates_once(ledger_db):
    c = make_customer()
    make_invoice(c, 3000)
    p, state = pay(c, 3000)
    payments.apply_intent_state(p.id, state)
    payments.apply_intent_state(p.id, state)
    assert Allocation.select(fn.SUM(Allocation.amount_cents)).where(Allocation.payment == p.id).scalar() == 3000


def check_invariants(customer_id):
    succeeded = (Payment.select(fn.COALESCE(fn.SUM(Payment.amount_cents), 0))
                 .where((Payment.customer == customer_id) & (Payment.status == payments.SUCCEEDED)).scalar())
    allocated = (Allocation.select(fn.COALESCE(fn.SUM(Allocation.amount_cents), 0)).join(Payment)
                 .where(Payment.customer == customer_id).scalar())
    credit = CreditEntry.balance(customer_id)
    assert succeeded == allocated + credit
    assert credit >= 0
    for i in Invoice.for_customer(customer_id):
        assert 0 <= i.paid_cents <= i.total_cents
    for i in Invoice.select().where(Invoice.customer == customer_id):  # void ones too: their money moved off
        assert i.paid_cents == (Allocation.select(fn.COALESCE(fn.SUM(Allocation.amount_cents), 0))
                                .where(Allocation.invoice == i.id).scalar()), i.number
    if credit > 0:
        assert not list(Invoice.open_for(customer_id)), "credit is left while an invoice is open"
    for p in Payment.select().where(Payment.customer == customer_id):
        a = Allocation.select(fn.COALESCE(fn.SUM(Allocation.amount_cents), 0)).where(Allocation.payment == p.id)
        cr = CreditEntry.select(fn.COALESCE(fn.SUM(CreditEntry.amount_cents), 0)).where(CreditEntry.payment == p.id)
        assert a.scalar() + cr.scalar() == (p.amount_cents if p.status == payments.SUCCEEDED else 0)


operations = st.lists(
    st.one_of(
        st.tuples(st.just("invoice"), st.integers(1, 50000), st.integers(-90, 90)),
        st.tuples(st.just("pay"), st.integers(1, 80000), st.one_of(st.none(), st.integers(0, 20))),
        st.tuples(st.just("repeat"), st.integers(0, 20), st.none()),
    ),
    min_size=1, max_size=25,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=operations)
def test_payments_always_equal_allocations_plus_credit(ledger_db, ops):
    c = make_customer()
    invoices, paid = [], []
    for kind, a, b in ops:
        if kind == "invoice":
            invoices.append(make_invoice(c, a, due=dt.date.today() + dt.timedelta(days=b)))
        elif kind == "pay":
            target = invoices[b % len(invoices)].id if invoices and b is not None else None
            paid.append(pay(c, a, target))
        elif paid:  # a duplicate report of an earlier success
            p, state = paid[a % len(paid)]
            payments.apply_intent_state(p.id, state)
        check_invariants(c.id)


def _paid_cents_hold(customer_id):
    """Each invoice's kept paid_cents is exactly its allocations' sum, and never more than its total."""
    for i in Invoice.select().where(Invoice.customer == customer_id):
        rows = Allocation.select(fn.COALESCE(fn.SUM(Allocation.amount_cents), 0)).where(Allocation.invoice == i.id)
        assert i.paid_cents == rows.scalar(), (i.number, i.paid_cents)
        assert 0 <= i.paid_cents <= i.total_cents or i.void, (i.number, i.paid_cents, i.total_cents)


money_moves = st.lists(
    st.one_of(
        st.tuples(st.just("invoice"), st.integers(1, 50000)),
        st.tuples(st.just("pay"), st.integers(1, 80000)),
        st.tuples(st.just("refund"), st.integers(1, 80000)),
        st.tuples(st.just("void"), st.integers(0, 20)),
    ),
    min_size=1, max_size=20,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(moves=money_moves)
def test_an_invoices_paid_total_follows_payments_refunds_and_voids(ledger_db, moves):
    from billing import invoicing

    c = make_customer()
    invoices, paid = [], []
    for kind, n in moves:
        if kind == "invoice":
            invoices.append(make_invoice(c, n))
        elif kind == "pay":
            paid.append(pay(c, n)[0])
        elif kind == "refund" and paid:
            p = paid[n % len(paid)]
            payments.record_refunds(p.id, [(f"re_{secrets.token_hex(6)}", 1 + n % p.amount_cents)])
        elif kind == "void" and invoices:
            invoicing.void(invoices[n % len(invoices)].id, "billed the wrong plan", "staff")
        _paid_cents_hold(c.id)
