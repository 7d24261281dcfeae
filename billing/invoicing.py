"""Invoices staff make and correct on the staff pages: create with lines, edit, void, adjust (credit notes).

The ledger's rules hold through every change:

- An invoice with money applied to it, or on its way, is never rewritten. It can be **adjusted**: a new
  line with a negative amount (a credit note), which lowers what is owed. If that leaves the invoice paid
  beyond its new total, the excess goes back to its payments as account credit, by new reversing rows
  (newest allocation first), and the credit then pays other open invoices, oldest first.
- **Voiding** an invoice releases whatever was applied to it to account credit the same way, with a reason.
- A new or edited invoice takes account credit the customer already holds, oldest invoice first.

Every change writes one audit row; payments always equal their allocations plus their credit.
"""
import re

from peewee import IntegrityError, fn

from billing import accounts, bounds, ledger, money
from billing.payments import AWAITING_DETAILS, AWAITING_VERIFICATION, HELD, PROCESSING, FormErrors, verification_expires
from db import write_tx
from db.models import Allocation, CreditEntry, Invoice, InvoiceLine, Payment, PaymentInvoice, sum_cents, utcnow

MAX_LINES = 8
CHARGE = "charge"
ADJUSTMENT = "adjustment"
_NUMBER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,63}$", re.ASCII)
_KEY = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
_FIELDS = ("number", "issue_date", "due_date", "period_start", "period_end")


def suggest_number(today=None):
    """A free invoice number like INV-2026-0042 for the new-invoice form."""
    today = today or accounts.today()
    n = Invoice.select().count() + 1
    while True:
        number = f"INV-{today:%Y}-{n:04d}"
        if not Invoice.select().where(Invoice.number == number).exists():
            return number
        n += 1


def form_values(invoice=None, copy=False):
    """The invoice form's fields for a new invoice, an edit, or a re-issue (``copy``) of a void one."""
    values = {k: "" for k in _FIELDS}
    if invoice is None:
        today = accounts.today()
        values.update(number=suggest_number(today), issue_date=today.isoformat())
    else:
        for k in _FIELDS[1:]:
            v = getattr(invoice, k)
            values[k] = v.isoformat() if v else ""
        values["number"] = suggest_number() if copy else invoice.number
    lines = [line for line in accounts.invoice_lines(invoice.id) if line.kind == CHARGE] if invoice else []
    for i in range(MAX_LINES):
        line = lines[i] if i < len(lines) else None
        values[f"line{i}_description"] = line.description if line else ""
        values[f"line{i}_quantity"] = str(line.quantity) if line else ("1" if i == 0 else "")
        values[f"line{i}_unit"] = money.cents_to_input(line.unit_cents) if line else ""
    return values


def check_form(form, number_fixed=None):
    """Checked header and lines of the invoice form, or FormErrors by field; nothing is written."""
    errors = {}
    data = {}
    number = number_fixed or (form.get("number") or "").strip()
    if not _NUMBER.match(number):
        errors["number"] = "Use up to 64 letters, digits, dots, dashes or slashes, like INV-2026-0042."
    data["number"] = number
    for key, required in (("issue_date", True), ("due_date", True), ("period_start", False),
                          ("period_end", False)):
        text = (form.get(key) or "").strip()
        data[key] = None
        if not text:
            if required:
                errors[key] = "Enter a date like 2026-03-01."
            continue
        try:
            data[key] = bounds.parse_date(text)
        except bounds.BoundsError as e:
            errors[key] = str(e)
    if data["issue_date"] and data["due_date"] and data["due_date"] < data["issue_date"]:
        errors["due_date"] = "The due date cannot be before the issue date."
    if data["period_start"] and data["period_end"] and data["period_end"] < data["period_start"]:
        errors["period_end"] = "The period cannot end before it starts."
    lines = []
    for i in range(MAX_LINES):
        desc = (form.get(f"line{i}_description") or "").strip()
        qty_text = (form.get(f"line{i}_quantity") or "").strip()
        unit_text = (form.get(f"line{i}_unit") or "").strip()
        if not desc and not unit_text and qty_text in ("", "1"):
            continue
        key = f"line{i}"
        if not desc or len(desc) > 200 or bounds.line_problem(desc):
            errors[key] = "Describe the line in one line of up to 200 characters."
            continue
        if not qty_text.isascii() or not qty_text.isdigit() or not 1 <= int(qty_text) <= 10_000:
            errors[key] = "The quantity is a whole number from 1 to 10,000."
            continue
        try:
            unit = money.parse_amount(unit_text)
        except money.AmountError as e:
            errors[key] = f"Unit price: {e}"
            continue
        lines.append((desc, int(qty_text), unit))
    total = sum(q * u for _, q, u in lines)
    if not lines and not any(k.startswith("line") for k in errors):
        errors["line0"] = "Add at least one line."
    elif total > bounds.MAX_CENTS:
        errors["line0"] = f"The total cannot be more than {money.format_money(bounds.MAX_CENTS)}."
    if errors:
        raise FormErrors(errors)
    data["lines"] = lines
    data["total_cents"] = total
    return data


def _same_invoice(inv, customer_id, data):
    """True when a stored invoice is what this form would create (the form posted twice)."""
    if inv.customer_id != customer_id or inv.void or inv.total_cents != data["total_cents"]:
        return False
    stored = [(line.description, line.quantity, line.unit_cents) for line in accounts.invoice_lines(inv.id)]
    return stored == data["lines"] and (inv.issue_date, inv.due_date) == (data["issue_date"], data["due_date"])


def create(customer_id, form, actor):
    """Create an invoice from the staff form; returns (invoice, created). The same form twice creates one."""
    data = check_form(form)
    existing = Invoice.get_or_none(Invoice.number == data["number"])
    if existing is not None:
        if _same_invoice(existing, customer_id, data):
            return existing, False
        raise FormErrors({"number": f"Invoice number {data['number']} is already used."})
    try:
        inv = accounts.add_invoice(customer_id, data["number"], data["issue_date"], data["due_date"], data["lines"],
                                   period=(data["period_start"], data["period_end"]), actor=actor)
    except IntegrityError:  # the same number, committed meanwhile
        existing = Invoice.get(Invoice.number == data["number"])
        if _same_invoice(existing, customer_id, data):
            return existing, False
        raise FormErrors({"number": f"Invoice number {data['number']} is already used."}) from None
    return inv, True


def applied_cents(invoice_id):
    """Cents applied to an invoice now (allocations net of their reversals)."""
    return (Allocation.select(sum_cents(Allocation.amount_cents))
            .where(Allocation.invoice == invoice_id).scalar())


def pending_cents(invoice_id):
    """Cents of payments on their way that are planned for this invoice: what accounts.pending_by_invoice counts."""
    return accounts.pending_by_invoice([invoice_id]).get(invoice_id, 0)


def in_flight_payment(invoice_id):
    """The oldest payment whose money for this invoice is on its way, or None.

    On its way: a charge claimed and not yet answered, a payment held for staff, an ACH debit settling, or one
    waiting for its bank account to be verified;
    planned for the invoice (its PaymentInvoice rows, as pending_cents counts them) or aimed at it. An attempt
    only open in a payment window is not: its charge is checked again (payments.claim_charge) against the
    invoice as it is then.
    """
    planned = PaymentInvoice.select(PaymentInvoice.payment).where(PaymentInvoice.invoice == invoice_id)
    answered_or_claimed = (Payment.status != AWAITING_DETAILS) | Payment.charging_at.is_null(False)
    return (Payment.select().where(Payment.status.in_(accounts.PLANNED) & (
        Payment.id.in_(planned) | ((Payment.target_invoice == invoice_id) & answered_or_claimed)))
        .order_by(Payment.id).first())


def in_flight_words(payment):
    """What a payment on its way is doing, for the staff's message."""
    amount = money.format_money(payment.amount_cents, payment.currency)
    if payment.status == PROCESSING:
        return f"bank payment {payment.ref} of {amount} is still settling"
    if payment.status == HELD:
        return f"payment {payment.ref} of {amount} is held for checking (resolve it from its page)"
    if payment.status == AWAITING_VERIFICATION:
        return (f"bank payment {payment.ref} of {amount} is waiting for the customer to verify the bank account; "
                f"it is canceled by itself if that is not done by {verification_expires(payment):%Y-%m-%d}")
    return f"payment {payment.ref} of {amount} is being charged and the processor has not answered yet"


def has_adjustments(invoice_id):
    """True when an adjustment (credit note) was added to the invoice."""
    return InvoiceLine.select().where((InvoiceLine.invoice == invoice_id) & (InvoiceLine.kind == ADJUSTMENT)).exists()


def why_not_editable(inv):
    """Why the invoice's lines and dates cannot be edited any more, or None when they can."""
    if inv.void:
        return "It is void."
    if Allocation.select().where(Allocation.invoice == inv.id).exists():
        return "Payments were applied to it; add an adjustment instead."
    busy = in_flight_payment(inv.id)
    if busy is not None:
        return f"Money for it is on its way: {in_flight_words(busy)}."
    if has_adjustments(inv.id):
        return "It has an adjustment."
    return None


def update(invoice_id, form, actor):
    """Edit an invoice that no money has touched (dates and lines; its number stays); FormErrors otherwise."""
    with write_tx():
        inv = Invoice.get_by_id(invoice_id)
        accounts.lock_customer(inv.customer_id)
        reason = why_not_editable(inv)
        if reason:
            raise FormErrors({"form": f"Invoice {inv.number} cannot be edited. {reason}"})
        data = check_form(form, number_fixed=inv.number)
        before = {k: getattr(inv, k) for k in _FIELDS[1:]} | {"total_cents": inv.total_cents,
                                                               "lines": [(x.description, x.quantity, x.unit_cents)
                                                                         for x in accounts.invoice_lines(inv.id)]}
        after = {k: data[k] for k in _FIELDS[1:]} | {"total_cents": data["total_cents"], "lines": data["lines"]}
        changed = sorted(k for k in after if after[k] != before[k])
        if not changed:
            return inv, []
        InvoiceLine.delete().where(InvoiceLine.invoice == inv.id).execute()
        _add_lines(inv.id, data["lines"], actor)
        Invoice.update(issue_date=data["issue_date"], due_date=data["due_date"], period_start=data["period_start"],
                       period_end=data["period_end"], total_cents=data["total_cents"]).where(
            Invoice.id == inv.id).execute()
        accounts.audit(actor, "invoice.updated", "invoice", inv.id, number=inv.number, fields=changed,
                       total_before=before["total_cents"], total_after=data["total_cents"])
        accounts.apply_credit(inv.customer_id)
    return Invoice.get_by_id(inv.id), changed


def _add_lines(invoice_id, lines, actor):
    now = utcnow()
    for pos, (desc, qty, unit) in enumerate(lines):
        InvoiceLine.create(invoice=invoice_id, position=pos, description=desc, quantity=qty, unit_cents=unit,
                           amount_cents=qty * unit, kind=CHARGE, created_at=now, added_by=actor)


def _release(invoice_id, cents=None):
    """Give ``cents`` (all when None) applied to an invoice back to its payments as account credit.

    New rows only: each live allocation, newest first, is reversed by a negative row pointing at it (and
    what stays is re-added as a new row), and the cents become credit of the payment they came from.
    """
    reversed_ids = Allocation.select(Allocation.reverses).where(Allocation.reverses.is_null(False))
    live = (Allocation.select().where((Allocation.invoice == invoice_id) & (Allocation.amount_cents > 0)
                                      & Allocation.id.not_in(reversed_ids)).order_by(Allocation.id.desc()))
    need = applied_cents(invoice_id) if cents is None else cents
    released = 0
    for row in live:
        if need <= 0:
            break
        taken = min(need, row.amount_cents)
        Allocation.record(row.payment_id, invoice_id, -row.amount_cents, reverses=row.id)
        if row.amount_cents > taken:
            Allocation.record(row.payment_id, invoice_id, row.amount_cents - taken)
        payment = Payment.get_by_id(row.payment_id)
        CreditEntry.create(customer=payment.customer_id, payment=payment.id, amount_cents=taken)
        need -= taken
        released += taken
    return released


def void(invoice_id, reason, actor):
    """Void an invoice with a reason; money applied to it becomes account credit. False if already void."""
    reason = (reason or "").strip()
    if not reason or len(reason) > 255 or bounds.line_problem(reason):
        raise FormErrors({"void_reason": "Say why in one line of up to 255 characters, e.g. billed the wrong plan."})
    with write_tx():
        inv = Invoice.get_by_id(invoice_id)
        accounts.lock_customer(inv.customer_id)
        if inv.void:
            return False
        busy = in_flight_payment(inv.id)
        if busy is not None:
            raise FormErrors({"void_reason": f"Money for this invoice is on its way: {in_flight_words(busy)}. "
                                             "Void it once that payment has settled or been resolved."})
        released = _release(inv.id)
        Invoice.update(void=True, void_reason=reason, voided_at=utcnow()).where(Invoice.id == inv.id).execute()
        accounts.audit(actor, "invoice.voided", "invoice", inv.id, number=inv.number, reason=reason,
                       released_to_credit_cents=released)
        accounts.apply_credit(inv.customer_id)
    return True


def adjust(invoice_id, form, actor):
    """Add an adjustment (a credit note) to an invoice: a negative line, once per form key. Returns the line."""
    errors = {}
    desc = (form.get("adj_description") or "").strip()
    if not desc or len(desc) > 200 or bounds.line_problem(desc):
        errors["adj_description"] = "Say what it is for in one line, e.g. credit for 3 days without service."
    try:
        cents = money.parse_amount(form.get("adj_amount"))
    except money.AmountError as e:
        errors["adj_amount"] = str(e)
        cents = None
    key = form.get("adj_key") or ""
    if not _KEY.match(key):
        errors["form"] = "This form has expired. Reload the page and try again."
    if errors:
        raise FormErrors(errors)
    with write_tx():
        inv = Invoice.get_by_id(invoice_id)
        accounts.lock_customer(inv.customer_id)
        done = InvoiceLine.get_or_none(InvoiceLine.request_key == key)
        if done is not None:
            return done
        if inv.void:
            raise FormErrors({"form": "A void invoice cannot be adjusted."})
        if cents > inv.total_cents:
            raise FormErrors({"adj_amount": "An adjustment can take the invoice down to zero at most: "
                                            f"{money.format_money(inv.total_cents, inv.currency)}."})
        position = (InvoiceLine.select(fn.MAX(InvoiceLine.position)).where(InvoiceLine.invoice == inv.id).scalar()
                    or 0) + 1
        try:
            with write_tx():
                line = InvoiceLine.create(invoice=inv.id, position=position, description=desc, quantity=1,
                                          unit_cents=-cents, amount_cents=-cents, kind=ADJUSTMENT,
                                          created_at=utcnow(), added_by=actor, request_key=key)
        except IntegrityError:
            return InvoiceLine.get(InvoiceLine.request_key == key)
        total = inv.total_cents - cents
        Invoice.update(total_cents=total).where(Invoice.id == inv.id).execute()
        over = applied_cents(inv.id) - total
        released = _release(inv.id, over) if over > 0 else 0
        accounts.audit(actor, "invoice.adjusted", "invoice", inv.id, number=inv.number, amount_cents=-cents,
                       description=desc, total_after=total, released_to_credit_cents=released)
        accounts.apply_credit(inv.customer_id)
    return line


def staff_view(invoice_id):
    """An invoice with what staff need to see and do on its page, or None."""
    inv = Invoice.get_or_none(Invoice.id == invoice_id)
    if inv is None:
        return None
    paid = applied_cents(inv.id)
    rows = list(Allocation.select(Allocation, Payment).join(Payment).where(Allocation.invoice == inv.id)
                .order_by(Allocation.id))
    return dict(invoice=inv, paid_cents=paid, balance_cents=ledger.balance_of(inv.total_cents, paid),
                pending_cents=pending_cents(inv.id), lines=accounts.invoice_lines(inv.id), allocations=rows,
                status=ledger.invoice_status(inv.total_cents, paid, inv.due_date, accounts.today(), inv.void),
                not_editable=why_not_editable(inv))


def void_for(customer_id):
    """A customer's void invoices, newest first."""
    return list(Invoice.select().where((Invoice.customer == customer_id) & (Invoice.void == True))  # noqa: E712
                .order_by(Invoice.id.desc()))
