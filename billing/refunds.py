"""Refunds staff ask for: full or part of a processor payment, with a reason, once per confirmed form.

The order of work makes a double click or a retry harmless whatever the processor does with idempotency
keys (localstripe ignores them; a crashed request must not be sent twice):

1. In one write transaction: check what is still refundable, counting refunds already in flight, and write
   a RefundRequest UNIQUE by the confirmed form's key. A second submit finds it and stops there.
2. Ask the processor, with that key as its idempotency key.
3. Record the refund in the ledger through billing.payments.record_refunds (new reversing rows, the
   customer emailed), keyed by the processor's refund id, so the webhook reporting the same refund is a no-op.

A request left 'requested' (a crash or a timeout between 1 and 3) holds its cents until ``resolve_stuck``,
which ``reconcile`` runs, asks the processor about it once it is STUCK_AFTER old: a refund the processor
made with the request's key is recorded and the request is done; if the processor has none, nothing was
refunded, the request fails ("the processor has no record of this refund") and its cents are free again.
STUCK_AFTER is far longer than any processor call may take (Stripe's client gives up after 80 s and a few
retries), so a request still being answered is never settled under it; and if it were, the answer still
wins: step 3 records a refund the processor made whatever the request's status.
"""
import datetime as dt
import re

from peewee import IntegrityError

from billing import accounts, money
from billing import payments as pay
from billing.errors import FormErrors
from billing.processors import Capability, ProcessorError
from db import write_tx
from db.models import Payment, RefundRequest, sum_cents, utcnow

REQUESTED = "requested"
DONE = "done"
FAILED = "failed"
_KEY = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
STUCK_AFTER = dt.timedelta(minutes=15)
NO_RECORD = "the processor has no record of this refund; nothing was refunded"


def in_flight(payment_id):
    """Cents of refunds asked for and not yet recorded or failed."""
    return (RefundRequest.select(sum_cents(RefundRequest.amount_cents))
            .where((RefundRequest.payment == payment_id) & (RefundRequest.status == REQUESTED)).scalar())


def refundable(payment):
    """Cents of a payment staff can still refund: 0 for a counter payment (that is reversed instead)."""
    if payment.processor == pay.OFFLINE:
        return 0
    return max(pay.refundable(payment) - in_flight(payment.id), 0)


def can_refund(processor):
    """Whether the configured processor declares refunds."""
    return processor.can(Capability.REFUNDS)


def check(payment, amount_text, reason):
    """(cents, reason) for a refund of this payment, or FormErrors by field; nothing is written."""
    errors = {}
    left = refundable(payment)
    cents = None
    if payment.processor == pay.OFFLINE:
        errors["form"] = "A payment taken at the counter is reversed from its page, not refunded."
    elif payment.status != pay.SUCCEEDED or left <= 0:
        errors["form"] = (f"Payment {payment.ref} is {pay.LABELS[payment.status].lower()}; "
                          "there is nothing left to refund.")
    else:
        try:
            cents = money.parse_amount(amount_text)
        except money.AmountError as e:
            errors["amount"] = str(e)
        else:
            if cents > left:
                errors["amount"] = f"You can refund at most {money.format_money(left, payment.currency)}."
    reason = (reason or "").strip()
    if not reason:
        errors["reason"] = "Say why, for example: charged twice."
    elif len(reason) > 255:
        errors["reason"] = "Keep the reason to 255 characters."
    if errors:
        raise FormErrors(errors)
    return cents, reason


def refund(payment_id, amount_text, reason, key, processor, actor):
    """Refund once per ``key``: at the processor, then in the ledger. Returns the RefundRequest."""
    if not _KEY.match(key or ""):
        raise FormErrors({"form": "This confirmation has expired. Start the refund again."})
    if not can_refund(processor):
        raise FormErrors({"form": f"The {processor.name} processor cannot make refunds."})
    with write_tx():
        payment = Payment.get_by_id(payment_id)
        accounts.lock_customer(payment.customer_id)
        existing = RefundRequest.get_or_none(RefundRequest.request_key == key)
        if existing is not None:
            if existing.payment_id != payment.id:
                raise FormErrors({"form": "This confirmation has expired. Start the refund again."})
            return existing
        cents, reason = check(payment, amount_text, reason)
        try:
            with write_tx():
                request = RefundRequest.create(request_key=key, payment=payment.id, amount_cents=cents,
                                               reason=reason, actor=actor, status=REQUESTED)
        except IntegrityError:  # the same confirmation, committed meanwhile by another worker
            return RefundRequest.get(RefundRequest.request_key == key)
        accounts.audit(actor, "refund.requested", "payment", payment.ref, amount_cents=cents, reason=reason)
    try:
        refund_id, refunded = processor.refund(payment.processor_ref, cents, key)
    except ProcessorError as e:
        with write_tx():
            RefundRequest.update(status=FAILED, error=str(e)[:255], updated_at=utcnow()).where(
                (RefundRequest.id == request.id) & (RefundRequest.status == REQUESTED)).execute()
            accounts.audit(actor, "refund.failed", "payment", payment.ref, amount_cents=cents, error=str(e)[:255])
        raise FormErrors({"form": f"The processor refused the refund: {e}"}) from None
    _record(request.id, refund_id, refunded, actor)
    return RefundRequest.get_by_id(request.id)


def _record(request_id, refund_id, refunded, actor):
    """The processor made the refund: the request is done and the ledger takes it back (once by refund id)."""
    with write_tx():
        request = RefundRequest.get_by_id(request_id)
        # Not only from 'requested': what the processor did wins over a request resolve_stuck gave up on.
        RefundRequest.update(status=DONE, processor_ref=refund_id, error="", updated_at=utcnow()).where(
            (RefundRequest.id == request.id) & (RefundRequest.status != DONE)).execute()
        pay.record_refunds(request.payment_id, ((refund_id, refunded),), actor=actor, reason=request.reason)


def resolve_stuck(processor, now=None, older_than=STUCK_AFTER):
    """Settle refund requests left 'requested' longer than ``older_than`` by asking the processor; cron-safe.

    Returns [(payment ref, cents, 'done' | 'failed' | 'requested')]: 'requested' when the processor could
    not be reached (it is asked again next time).
    """
    now = now or utcnow()
    stuck = (RefundRequest.select(RefundRequest, Payment).join(Payment)
             .where((RefundRequest.status == REQUESTED) & (RefundRequest.updated_at < now - older_than)
                    & (Payment.processor == processor.name))
             .order_by(RefundRequest.id))
    report = []
    for request in stuck:
        payment = request.payment
        try:
            found = processor.find_refund(payment.processor_ref, request.request_key)
        except ProcessorError:
            report.append((payment.ref, request.amount_cents, REQUESTED))
            continue
        if found is not None:
            _record(request.id, found.id, found.amount_cents, "reconcile")
            with write_tx():
                accounts.audit("reconcile", "refund.resolved", "payment", payment.ref, amount_cents=found.amount_cents,
                               refund=found.id)
            report.append((payment.ref, request.amount_cents, DONE))
            continue
        with write_tx():
            moved = RefundRequest.update(status=FAILED, error=NO_RECORD, updated_at=utcnow()).where(
                (RefundRequest.id == request.id) & (RefundRequest.status == REQUESTED)).execute()
            if moved:
                accounts.audit("reconcile", "refund.expired", "payment", payment.ref,
                               amount_cents=request.amount_cents, error=NO_RECORD)
        report.append((payment.ref, request.amount_cents, FAILED if moved else REQUESTED))
    return report


def requests_for(payment_id):
    """Refunds staff asked for on a payment, newest first."""
    return list(RefundRequest.select().where(RefundRequest.payment == payment_id).order_by(RefundRequest.id.desc()))


def request_by_id(request_id):
    """One refund request, or None (also for None)."""
    return RefundRequest.get_or_none(RefundRequest.id == request_id) if request_id else None
