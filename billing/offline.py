"""Cash, check and money-order payments staff take at the counter: checking the form, recording, reversing.

The money moves in billing.payments (``record_offline``, ``reverse_offline``); this module turns what
the clerk typed into checked values, with a message for each field, before anything is written.
"""
import datetime as dt
import re

from billing import accounts, money
from billing.payments import OFFLINE, OFFLINE_TYPES, FormErrors, record_offline, reverse_offline
from db.models import OfflinePayment, Outbox, Payment

MAX_CENTS = 10_000_000  # $100,000: a typo guard; a real counter payment is far below it
OLDEST_DAYS = 366  # a payment received more than a year ago is a typo, or belongs in the import
_KEY = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
_CHECK_NUMBER = re.compile(r"^[A-Za-z0-9 -]{1,30}$")

def method_text(kind, number):
    """How the payment's method reads on receipts and lists: 'Cash', 'Check no. 1042'."""
    label = OFFLINE_TYPES[kind]
    return f"{label} no. {number}" if number else label


def check_form(customer_id, form, today=None):
    """Checked values of the Record-a-payment form, or FormErrors with a message per field."""
    today = today or accounts.today()
    errors = {}
    kind = form.get("kind") or ""
    if kind not in OFFLINE_TYPES:
        errors["kind"] = "Choose cash, check or money order."
    cents = None
    try:
        cents = money.parse_amount(form.get("amount"))
        if cents > MAX_CENTS:
            errors["amount"] = f"That is more than {money.format_money(MAX_CENTS)}; check the amount."
    except money.AmountError as e:
        errors["amount"] = str(e)
    number = (form.get("check_number") or "").strip()
    if kind == "check" and not number:
        errors["check_number"] = "Enter the check number."
    elif number and not _CHECK_NUMBER.match(number):
        errors["check_number"] = "Use up to 30 letters, digits, spaces or dashes."
    if kind == "cash":
        number = ""
    received = None
    text = (form.get("received_on") or "").strip()
    try:
        received = dt.date.fromisoformat(text) if text else None
    except ValueError:
        pass
    if received is None:
        errors["received_on"] = "Enter the date the payment was received, like 2026-03-01."
    elif received > today:
        errors["received_on"] = "The date received cannot be in the future."
    elif received < today - dt.timedelta(days=OLDEST_DAYS):
        errors["received_on"] = "That is more than a year ago; check the date."
    note = (form.get("note") or "").strip()
    if len(note) > 500:
        errors["note"] = "Keep the note to 500 characters."
    invoice_id = None
    chosen = form.get("invoice") or ""
    if chosen:
        view = accounts.invoice_view(customer_id, _int(chosen))
        if view is None or view.balance_cents <= 0:
            errors["invoice"] = "Choose one of this customer's open invoices, or oldest first."
        else:
            invoice_id = view.invoice.id
    key = form.get("idempotency_key") or ""
    if not _KEY.match(key):
        errors["form"] = "This form has expired. Reload the page and enter the payment again."
    if errors:
        raise FormErrors(errors)
    return dict(kind=kind, amount_cents=cents, check_number=number, received_on=received, note=note,
                invoice_id=invoice_id, idempotency_key=key)


def record(customer_id, form, actor):
    """Check the form and record the payment once; returns (payment, created).

    A form posted again (a double click, Back and resubmit) finds its payment by the form's key before it
    is checked again: the invoice it paid is no longer open, and that must not turn a retry into an error.
    """
    key = form.get("idempotency_key") or ""
    if _KEY.match(key):
        done = Payment.get_or_none((Payment.idempotency_key == key) & (Payment.customer == customer_id)
                                   & (Payment.processor == OFFLINE))
        if done is not None:
            return done, False
    data = check_form(customer_id, form)
    return record_offline(
        customer_id, amount_cents=data["amount_cents"], kind=data["kind"],
        method_text=method_text(data["kind"], data["check_number"]), idempotency_key=data["idempotency_key"],
        invoice_id=data["invoice_id"], actor=actor,
        details=dict(check_number=data["check_number"], received_on=data["received_on"], note=data["note"],
                     recorded_by=actor))


def reverse(payment, reason, actor):
    """Reverse a counter payment with a reason (a bounced check); False when it was already reversed."""
    reason = (reason or "").strip()
    if not reason:
        raise FormErrors({"reason": "Say why, for example: check returned unpaid."})
    if len(reason) > 255:
        raise FormErrors({"reason": "Keep the reason to 255 characters."})
    return reverse_offline(payment.id, reason, actor)


def details_of(payment):
    """The counter record of a payment, or None for a payment made through a processor."""
    return OfflinePayment.get_or_none(OfflinePayment.payment == payment.id)


def receipt_email(payment):
    """The payment's receipt in the outbox (queued or sent), or None when none was queued."""
    return (Outbox.select().where(Outbox.dedupe_key.in_([f"payment-{payment.id}-receipt",
                                                         f"payment-{payment.id}-ach-settled"]))
            .order_by(Outbox.id).first())


def by_ref(ref):
    """Any customer's payment by reference (staff only), or None."""
    return Payment.get_or_none(Payment.ref == (ref or "")[:32])


def _int(value):
    try:
        n = int(value)
    except (TypeError, ValueError):
        return None
    return n if 0 < n < 2**62 else None
