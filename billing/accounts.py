"""A customer's account: balances, invoices, statement, credit, and posting money.

Writes here are called inside the caller's ``write_tx()``; reads are plain.
"""
import contextvars
import datetime as dt
import json
from dataclasses import dataclass

from peewee import JOIN, fn

from billing import ledger
from billing.words import N_, Text
from db import database, is_postgres, pages, write_tx
from db.compiled import Arg, Compiled
from db.models import (
    Allocation,
    AuditLog,
    CreditEntry,
    Customer,
    Invoice,
    InvoiceLine,
    Payment,
    PaymentInvoice,
    PaymentReversal,
    sum_cents,
)

PROCESSING = "processing"  # mirrors billing.payments.PROCESSING without the import cycle
AWAITING_VERIFICATION = "awaiting_verification"  # ... and billing.payments.AWAITING_VERIFICATION
SUCCEEDED = "succeeded"
# Payments whose planned invoices (PaymentInvoice) count as pending: an ACH debit settling, one waiting for its
# bank account to be verified, a payment held for staff, and an attempt the processor was asked to charge whose
# answer is not recorded yet (its planned rows exist only from that moment: billing.payments.claim_charge).
PLANNED = ("awaiting_details", AWAITING_VERIFICATION, PROCESSING, "held")
ON_ITS_WAY = (PROCESSING, AWAITING_VERIFICATION)  # Home's "Processing" figure: a bank debit settling or verifying
RECEIVED = (SUCCEEDED, "refunded", "disputed", "reversed")  # payments whose money arrived (billing.payments)
REVERSAL_LABELS = {"refund": N_("Refund"), "return": N_("Returned by the bank"), "dispute": N_("Disputed"),
                   "dispute_won": N_("Dispute won"), "counter_reversal": N_("Reversed by staff"),
                   "refund_failed": N_("Refund failed: applied again")}


@dataclass(frozen=True)
class InvoiceView:
    """An invoice with what is paid, what is owed, and its derived status."""

    invoice: Invoice
    paid_cents: int
    balance_cents: int
    status: str
    pending_cents: int

    @property
    def pending(self):
        return self.pending_cents > 0

    @property
    def settling(self):
        """All that is owed is on its way (a bank debit settling): not due, and not overdue."""
        return 0 < self.balance_cents <= self.pending_cents


@dataclass(frozen=True)
class Summary:
    """The figures on a customer's Home page."""

    balance_cents: int
    pending_cents: int
    credit_cents: int
    next_due_date: object  # the earliest due date from today on with money still owed, or None
    overdue_cents: int  # owed on invoices past their due date, not counting money still settling
    overdue_since: object = None  # the oldest such due date

    @property
    def payable_cents(self):
        """Balance that can still be paid: what is owed minus what is already on its way."""
        return max(self.balance_cents - self.pending_cents, 0)


def today():
    """The portal's business date."""
    return dt.date.today()


def lock_customer(customer_id):
    """Serialise writers on one customer (PostgreSQL; SQLite already holds the write lock)."""
    if is_postgres():
        Customer.select(Customer.id).where(Customer.id == customer_id).for_update().execute()


# The client's address of the web request being served, set by the HTTP layer for each request, so that
# every audit row says where it came from without each caller passing it ('' for cron and the CLI).
_origin = contextvars.ContextVar("audit_origin", default="")


def set_audit_origin(ip):
    """Record ``ip`` as where the audit rows written from now on (in this request) come from."""
    return _origin.set((ip or "")[:64])


def reset_audit_origin(token):
    """Undo set_audit_origin at the end of the request."""
    _origin.reset(token)


def audit(actor, action, entity, entity_id, **detail):
    """Append a row to the audit trail."""
    AuditLog.create(
        actor=actor, action=action, entity=entity, entity_id=str(entity_id),
        detail=json.dumps(detail, sort_keys=True, default=str) if detail else "", ip=_origin.get(),
    )


def pending_by_invoice(invoice_ids):
    """{invoice id: cents of it that payments may have charged or are settling}."""
    if not invoice_ids:
        return {}
    rows = (
        PaymentInvoice.select(PaymentInvoice.invoice, sum_cents(PaymentInvoice.amount_cents).alias("cents"))
        .join(Payment)
        .where(Payment.status.in_(PLANNED) & PaymentInvoice.invoice.in_(invoice_ids))
        .group_by(PaymentInvoice.invoice)
    )
    return {row.invoice_id: row.cents for row in rows}


def _view(inv, pending, on):
    paid = inv.paid_cents
    return InvoiceView(
        invoice=inv,
        paid_cents=paid,
        balance_cents=ledger.balance_of(inv.total_cents, paid),
        status=ledger.invoice_status(inv.total_cents, paid, inv.due_date, on, inv.void),
        pending_cents=pending.get(inv.id, 0),
    )


def invoice_views(customer_id, on=None, newest_first=True):
    """All of a customer's invoices as InvoiceViews (one page of them: invoice_page)."""
    on = on or today()
    q = Invoice.for_customer(customer_id)
    if newest_first:
        q = q.order_by(Invoice.due_date.desc(), Invoice.number.desc())
    invoices = list(q)
    pending = pending_by_invoice([inv.id for inv in invoices])
    return [_view(inv, pending, on) for inv in invoices]


_NEWEST_FIRST = (Invoice.due_date.desc(), Invoice.number.desc())
# The Invoices tab's first page, the one nearly every visit shows.
_FIRST_INVOICES = Compiled(lambda: Invoice.for_customer(Arg(0)).order_by(*_NEWEST_FIRST).limit(Arg(1)))


def invoice_page(customer_id, page, per_page, on=None):
    """One page (db.pages.Page) of a customer's invoices, newest first, as InvoiceViews."""
    on = on or today()
    q = Invoice.for_customer(customer_id).order_by(*_NEWEST_FIRST)

    def views(invoices):
        pending = pending_by_invoice([inv.id for inv in invoices])
        return [_view(inv, pending, on) for inv in invoices]

    return pages.paginate(q, page, per_page, first_rows=lambda n: _FIRST_INVOICES.rows(customer_id, n)).map(views)


def invoice_view(customer_id, invoice_id, on=None):
    """One of the customer's own invoices as an InvoiceView, or None (also for others' ids)."""
    inv = Invoice.for_customer(customer_id).where(Invoice.id == invoice_id).first()
    if inv is None:
        return None
    return _view(inv, pending_by_invoice([inv.id]), on or today())


def applied_payments(invoice_id):
    """Allocations to an invoice with their payments, oldest first."""
    return list(
        Allocation.select(Allocation, Payment)
        .join(Payment)
        .where(Allocation.invoice == invoice_id)
        .order_by(Allocation.created_at, Allocation.id)
    )


def payment_ledger(payment_id):
    """A payment's ledger rows in order, as (when, what, cents): applied to invoices, held as credit, taken back.

    Allocations and credit rows together sum to what the payment still holds.
    """
    rows = [(a.created_at, 0, a.id, f"Invoice {a.invoice.number}", a.amount_cents)
            for a in Allocation.select(Allocation, Invoice).join(Invoice).where(Allocation.payment == payment_id)]
    for c in (CreditEntry.select(CreditEntry, Invoice).join(Invoice, join_type=JOIN.LEFT_OUTER)
              .where(CreditEntry.payment == payment_id)):
        what = f"Account credit used for invoice {c.invoice.number}" if c.invoice_id else "Account credit"
        rows.append((c.created_at, 1, c.id, what, c.amount_cents))
    return [(at, what, cents) for at, _k, _id, what, cents in sorted(rows)]


def credit_left(payment_id):
    """Cents of a payment still held as account credit (not yet applied to an invoice, nor taken back)."""
    return CreditEntry.select(sum_cents(CreditEntry.amount_cents)).where(CreditEntry.payment == payment_id).scalar()


def invoice_lines(invoice_id):
    """An invoice's lines in order."""
    return list(InvoiceLine.select().where(InvoiceLine.invoice == invoice_id).order_by(InvoiceLine.position))


def open_invoices(customer_id):
    """The customer's invoices with a balance, as ledger.OpenInvoice, oldest first."""
    return [
        ledger.OpenInvoice(inv.id, inv.number, inv.due_date, ledger.balance_of(inv.total_cents, inv.paid_cents))
        for inv in Invoice.open_for(customer_id)
    ]


# One statement for Home's figures: each separate ORM query cost ~0.3 ms just to build (bench/RESULTS.md).
# "Owed" is what is unpaid and not already on its way: money of a bank debit still settling is neither
# due nor overdue (it shows as Processing), so the next due date and the overdue figure leave it out.
_SUMMARY_SQL = """
SELECT
  (SELECT COALESCE(SUM(total_cents - paid_cents), 0) FROM invoice
    WHERE customer_id = {p} AND void = FALSE AND total_cents > paid_cents),
  (SELECT COALESCE(SUM(amount_cents), 0) FROM payment WHERE customer_id = {p} AND status IN ({p}, {p})),
  (SELECT COALESCE(SUM(amount_cents), 0) FROM credit_entry WHERE customer_id = {p}),
  o.next_due, o.overdue, o.overdue_since
FROM (
  SELECT MIN(CASE WHEN due_date >= {p} THEN due_date END) AS next_due,
         COALESCE(SUM(CASE WHEN due_date < {p} THEN owed ELSE 0 END), 0) AS overdue,
         MIN(CASE WHEN due_date < {p} THEN due_date END) AS overdue_since
  FROM (SELECT i.due_date, i.total_cents - i.paid_cents
                 - (SELECT COALESCE(SUM(pi.amount_cents), 0) FROM payment_invoice pi
                     JOIN payment p ON p.id = pi.payment_id
                     WHERE pi.invoice_id = i.id AND p.status IN ({p}, {p})) AS owed
        FROM invoice i WHERE i.customer_id = {p} AND i.void = FALSE AND i.total_cents > i.paid_cents) AS t
  WHERE owed > 0
) AS o
"""


def _as_date(value):
    if isinstance(value, str):  # SQLite keeps dates as ISO text
        return dt.date.fromisoformat(value)
    return value


def summary_sql(customer_id, on):
    """Home's summary statement for this database, and its parameters."""
    day = on.isoformat()
    return _SUMMARY_SQL.format(p=database.param), (customer_id, customer_id, *ON_ITS_WAY, customer_id,
                                                   day, day, day, *ON_ITS_WAY, customer_id)


def summary(customer_id, on=None):
    """Balance due, money pending, account credit, next future due date and what is overdue, in one query."""
    sql, params = summary_sql(customer_id, on or today())
    balance, pending, credit, next_due, overdue, overdue_since = database.execute_sql(sql, params).fetchone()
    return Summary(
        balance_cents=int(balance),
        pending_cents=int(pending),
        credit_cents=int(credit),
        next_due_date=_as_date(next_due),
        overdue_cents=int(overdue),
        overdue_since=_as_date(overdue_since),
    )


def plan_payment(customer_id, amount_cents, first_invoice_id=None):
    """Where a payment of this size would go right now (nothing is written)."""
    return ledger.allocate(amount_cents, open_invoices(customer_id), first_invoice_id)


def post_payment(payment):
    """Apply a succeeded payment: allocations by the ledger rules, the rest to credit.

    Runs inside the caller's transaction, which has already moved the payment
    to succeeded exactly once; UNIQUE constraints are the second guard.
    """
    lock_customer(payment.customer_id)
    plan = plan_payment(payment.customer_id, payment.amount_cents, payment.target_invoice_id)
    for invoice_id, cents in plan.allocations:
        Allocation.record(payment.id, invoice_id, cents)
    if plan.credit_cents:
        CreditEntry.create(customer=payment.customer_id, payment=payment.id, amount_cents=plan.credit_cents)
    return plan


def apply_credit(customer_id):
    """Spend any account credit on open invoices, oldest invoice and oldest credit first."""
    lock_customer(customer_id)
    sources = list(
        CreditEntry.select(CreditEntry.payment, sum_cents(CreditEntry.amount_cents).alias("cents"))
        .where(CreditEntry.customer == customer_id)
        .group_by(CreditEntry.payment)
        .having(fn.SUM(CreditEntry.amount_cents) > 0)
        .order_by(CreditEntry.payment)
    )
    applied = 0
    for source in sources:
        plan = ledger.allocate(source.cents, open_invoices(customer_id))
        for invoice_id, cents in plan.allocations:
            Allocation.record(source.payment_id, invoice_id, cents)
            CreditEntry.create(
                customer=customer_id, payment=source.payment_id, invoice=invoice_id, amount_cents=-cents
            )
            applied += cents
        if plan.credit_cents:
            break  # no open balance left for later credit either
    return applied


def add_invoice(customer_id, number, issue_date, due_date, lines, period=(None, None), currency="USD",
                actor="system"):
    """Create an invoice from (description, quantity, unit_cents) lines and apply any credit."""
    with write_tx():
        total = sum(q * unit for _, q, unit in lines)
        inv = Invoice.create(
            customer=customer_id, number=number, issue_date=issue_date, due_date=due_date,
            period_start=period[0], period_end=period[1], total_cents=total, currency=currency,
        )
        for pos, (desc, qty, unit) in enumerate(lines):
            InvoiceLine.create(invoice=inv, position=pos, description=desc, quantity=qty,
                               unit_cents=unit, amount_cents=qty * unit)
        audit(actor, "invoice.created", "invoice", inv.id, number=number, total_cents=total)
        apply_credit(customer_id)
    return inv


@dataclass(frozen=True)
class StatementRow:
    on: dt.date
    kind: str  # invoice | payment | reversal
    description: str
    charge_cents: int
    payment_cents: int
    balance_cents: int


@dataclass(frozen=True)
class Statement:
    start: dt.date
    end: dt.date
    opening_cents: int
    rows: list
    closing_cents: int


def _adjustments(customer_id):
    """(date, invoice id, invoice number, description, cents credited, invoice's issue date) of the customer's
    non-void invoices' adjustments.

    An adjustment is dated when it was added, but never before its invoice's issue date. The lines are reached
    through the index of adjustment lines alone (migration 0220), not by walking every invoice's lines.
    """
    rows = (InvoiceLine.select(InvoiceLine, Invoice).join(Invoice)
            .where((Invoice.customer == customer_id) & (Invoice.void == False)  # noqa: E712
                   & (InvoiceLine.kind == "adjustment")))
    return [(max(r.created_at.date() if r.created_at else r.invoice.issue_date, r.invoice.issue_date), r.invoice_id,
             r.invoice.number, r.description, -r.amount_cents, r.invoice.issue_date) for r in rows]


def _statement_entries(customer_id, start, end, adjustments):
    """(date, order, kind, description, charge, payment) for invoices, adjustments and money received.

    ``adjustments`` is _adjustments(customer_id), read once by the caller.
    """
    inv_q = Invoice.select().where((Invoice.customer == customer_id) & (Invoice.void == False))  # noqa: E712
    # Money once received stays on the statement; what was taken back later is its own row (below).
    pay_q = Payment.select().where((Payment.customer == customer_id) & Payment.status.in_(RECEIVED))
    rev_q = PaymentReversal.select(PaymentReversal, Payment).join(Payment).where(Payment.customer == customer_id)
    if start:
        inv_q = inv_q.where(Invoice.issue_date >= start)
        pay_q = pay_q.where(Payment.settled_at >= dt.datetime.combine(start, dt.time()))
        rev_q = rev_q.where(PaymentReversal.created_at >= dt.datetime.combine(start, dt.time()))
    if end:
        inv_q = inv_q.where(Invoice.issue_date <= end)
        pay_q = pay_q.where(Payment.settled_at < dt.datetime.combine(end + dt.timedelta(days=1), dt.time()))
        rev_q = rev_q.where(PaymentReversal.created_at < dt.datetime.combine(end + dt.timedelta(days=1), dt.time()))
    credited = {}
    for _on, invoice_id, _n, _d, cents, _issued in adjustments:
        credited[invoice_id] = credited.get(invoice_id, 0) + cents
    # An invoice shows what it charged when issued; each adjustment (credit note) is its own, later row.
    entries = [(i.issue_date, 0, "invoice", N_("Invoice %(number)s", number=i.number),
                i.total_cents + credited.get(i.id, 0), 0) for i in inv_q]
    entries += [(on, 1, "adjustment", N_("Adjustment to invoice %(number)s: %(description)s", number=number,
                                         description=desc), 0, cents)
                for on, _id, number, desc, cents, _issued in adjustments
                if (not start or on >= start) and (not end or on <= end)]
    entries += [(p.settled_at.date(), 1, "payment", N_("Payment %(ref)s", ref=p.ref), 0, p.amount_cents) for p in pay_q]
    entries += [(r.created_at.date(), 2, "reversal", N_("%(kind)s: payment %(ref)s", ref=r.payment.ref,
                                                        kind=Text(REVERSAL_LABELS.get(r.kind, r.kind))),
                 max(r.amount_cents, 0), max(-r.amount_cents, 0)) for r in rev_q]
    return entries


def _opening_balance(customer_id, start, adjustments):
    """What the customer owed before ``start`` (negative: credit), summed in the database.

    ``adjustments`` is _adjustments(customer_id), read once by the caller.
    """
    before = dt.datetime.combine(start, dt.time())
    charged = (Invoice.select(sum_cents(Invoice.total_cents))
               .where((Invoice.customer == customer_id) & (Invoice.void == False)  # noqa: E712
                      & (Invoice.issue_date < start)).scalar())
    received = (Payment.select(sum_cents(Payment.amount_cents))
                .where((Payment.customer == customer_id) & Payment.status.in_(RECEIVED)
                       & (Payment.settled_at < before)).scalar())
    taken_back = (PaymentReversal.select(sum_cents(PaymentReversal.amount_cents)).join(Payment)
                  .where((Payment.customer == customer_id) & (PaymentReversal.created_at < before)).scalar())
    # Invoice totals are net of their adjustments; an adjustment counts on its own date instead.
    for on, _id, _n, _d, cents, issued in adjustments:
        charged += cents if issued < start else 0
        charged -= cents if on < start else 0
    return charged - received + taken_back


def statement(customer_id, start, end):
    """Activity between two dates with a running balance (negative means credit)."""
    adjustments = _adjustments(customer_id)  # read once: the opening balance and the rows both need them
    opening = _opening_balance(customer_id, start, adjustments)
    running = opening
    rows = []
    for on, _, kind, desc, charge, paid in sorted(_statement_entries(customer_id, start, end, adjustments)):
        running += charge - paid
        rows.append(StatementRow(on, kind, desc, charge, paid, running))
    return Statement(start, end, opening, rows, running)


def set_language(customer_id, language):
    """Remember the portal language the customer chose (a code the portal offers, or None to follow the browser)."""
    with write_tx():
        Customer.update(language=language).where(Customer.id == customer_id).execute()
