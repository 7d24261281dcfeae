"""Refunds staff ask for: full or part of a processor payment, with a reason, once per confirmed form.

Staff give the part of the payment's amount to refund; its convenience fee goes back with it in proportion
(billing.fees.refund_fee), so a full refund returns the whole charge. The request keeps the two parts apart
and the processor is asked for their sum.

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

from billing import accounts, fees, money
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


def _in_flight(payment_id, column):
    return (RefundRequest.select(sum_cents(column))
            .where((RefundRequest.payment == payment_id) & (RefundRequest.status == REQUESTED)).scalar())


def in_flight(payment_id):
    """Cents of the amount in refunds asked for and not yet recorded or failed."""
    return _in_flight(payment_id, RefundRequest.amount_cents)


def refundable(payment):
    """Cents of a payment staff can still refund: 0 for a counter payment (that is reversed instead)."""
    if payment.processor == pay.OFFLINE:
        return 0
    return max(pay.refundable(payment) - in_flight(payment.id), 0)


def fee_refundable(payment):
    """Cents of the payment's convenience fee not yet returned nor held by a refund in flight."""
    if payment.processor == pay.OFFLINE or payment.status != pay.SUCCEEDED:
        return 0
    return max((payment.fee_cents or 0) - pay.fee_taken_back(payment.id)
               - _in_flight(payment.id, RefundRequest.fee_cents), 0)


def fee_for(payment, cents):
    """The convenience fee that goes back with a refund of ``cents`` of the amount now (billing.fees.refund_fee)."""
    before = payment.amount_cents - refundable(payment) if payment.status == pay.SUCCEEDED else payment.amount_cents
    fee_before = (payment.fee_cents or 0) - fee_refundable(payment)
    return fees.refund_fee(payment.amount_cents, payment.fee_cents or 0, before, fee_before, cents)


def can_refund(processor):
    """Whether the configured processor declares refunds."""
    return processor.can(Capability.REFUNDS)


def check(payment, amount_text, reason):
    """(cents, fee cents, reason) for a refund of this payment, or FormErrors by field; nothing is written.

    ``cents`` is of the payment's amount, as staff typed it; the fee share goes back with it.
    """
    errors = {}
    left = refundable(payment)
    cents = fee = None
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
            else:
                fee = fee_for(payment, cents)
                # Checked again with the fee: amount and fee together never exceed what is left of the charge.
                if cents + fee > left + fee_refundable(payment):
                    errors["amount"] = "That refund and its fee share are more than is left of the charge."
    reason = (reason or "").strip()
    if not reason:
        errors["reason"] = "Say why, for example: charged twice."
    elif len(reason) > 255:
        errors["reason"] = "Keep the reason to 255 characters."
    if errors:
        raise FormErrors(errors)
    return cents, fee, reason


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
        cents, fee, reason = check(payment, amount_text, reason)
        try:
            with write_tx():
                request = RefundRequest.create(request_key=key, payment=payment.id, amount_cents=cents,
                                               fee_cents=fee, reason=reason, actor=actor, status=REQUESTED)
        except IntegrityError:  # the same confirmation, committed meanwhile by another worker
            return RefundRequest.get(RefundRequest.request_key == key)
        accounts.audit(actor, "refund.requested", "payment", payment.ref, amount_cents=cents, fee_cents=fee,
                       reason=reason)
    try:
        refund_id, refunded = processor.refund(payment.processor_ref, cents + fee, key)
    except ProcessorError as e:
        with write_tx():
            RefundRequest.update(status=FAILED, error=str(e)[:255], updated_at=utcnow()).where(
                (RefundRequest.id == request.id) & (RefundRequest.status == REQUESTED)).execute()
            accounts.audit(actor, "refund.failed", "payment", payment.ref, amount_cents=cents, fee_cents=fee,
                           error=str(e)[:255])
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

    Returns [(payment ref, cents of the charge, 'done' | 'failed' | 'requested')]: 'requested' when the
    processor could not be reached (it is asked again next time).
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
            report.append((payment.ref, request.amount_cents + request.fee_cents, REQUESTED))
            continue
        if found is not None:
            _record(request.id, found.id, found.amount_cents, "reconcile")
            with write_tx():
                accounts.audit("reconcile", "refund.resolved", "payment", payment.ref, amount_cents=found.amount_cents,
                               refund=found.id)
            report.append((payment.ref, request.amount_cents + request.fee_cents, DONE))
            continue
        with write_tx():
            moved = RefundRequest.update(status=FAILED, error=NO_RECORD, updated_at=utcnow()).where(
                (RefundRequest.id == request.id) & (RefundRequest.status == REQUESTED)).execute()
            if moved:
                accounts.audit("reconcile", "refund.expired", "payment", payment.ref,
                               amount_cents=request.amount_cents, fee_cents=request.fee_cents, error=NO_RECORD)
        report.append((payment.ref, request.amount_cents + request.fee_cents, FAILED if moved else REQUESTED))
    return report


def requests_for(payment_id):
    """Refunds staff asked for on a payment, newest first."""
    return list(RefundRequest.select().where(RefundRequest.payment == payment_id).order_by(RefundRequest.id.desc()))


def request_by_id(request_id):
    """One refund request, or None (also for None)."""
    return RefundRequest.get_or_none(RefundRequest.id == request_id) if request_id else None
