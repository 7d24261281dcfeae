"""Ledger rules: where money goes and what an invoice's status is. Pure functions."""
import datetime as dt
from dataclasses import dataclass

UNPAID = "Unpaid"
PARTIALLY_PAID = "Partially paid"
PAID = "Paid"
OVERDUE = "Overdue"
VOID = "Void"


@dataclass(frozen=True)
class OpenInvoice:
    """What allocation needs to know about an invoice."""

    id: int
    number: str
    due_date: dt.date
    balance_cents: int


@dataclass(frozen=True)
class Plan:
    """Where a payment's cents go: (invoice id, cents) pairs, then credit."""

    allocations: tuple
    credit_cents: int


def oldest_first(invoices):
    """Invoices in the order money is applied: due date, then invoice number."""
    return sorted(invoices, key=lambda inv: (inv.due_date, inv.number))


def allocate(amount_cents, invoices, first_invoice_id=None):
    """Plan a payment: the chosen invoice first, then oldest first, the rest to credit."""
    if amount_cents < 0:
        raise ValueError("cannot allocate a negative amount")
    ordered = oldest_first(inv for inv in invoices if inv.balance_cents > 0)
    if first_invoice_id is not None:
        ordered.sort(key=lambda inv: inv.id != first_invoice_id)  # stable: keeps the rest oldest-first
    left = amount_cents
    allocations = []
    for inv in ordered:
        if left == 0:
            break
        take = min(left, inv.balance_cents)
        allocations.append((inv.id, take))
        left -= take
    return Plan(tuple(allocations), left)


def invoice_status(total_cents, paid_cents, due_date, today, void=False):
    """Derive an invoice's status from its total, what is applied, and the date."""
    if void:
        return VOID
    balance = max(total_cents - paid_cents, 0)
    if balance == 0:
        return PAID
    if due_date < today:
        return OVERDUE
    if paid_cents > 0:
        return PARTIALLY_PAID
    return UNPAID


def balance_of(total_cents, paid_cents):
    """What is still owed on an invoice; never below zero."""
    return max(total_cents - paid_cents, 0)
