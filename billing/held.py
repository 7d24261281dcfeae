"""Payments held for staff (the processor reported another amount or currency): an owner accepts or refunds them.

A held payment counts against what the customer may be charged until someone decides. An owner reads the
processor's own record again and chooses, with a reason, confirmed once:

- **Accept as reported**: the processor's real charge, less the payment's fee, is applied by the ledger
  rules (billing.payments.accept_held), unless it is in another currency or would leave more credit than
  the prepayment allowance; then it is refused with the reason, and the owner refunds it instead.
- **Refund and close**: the whole reported charge is refunded through the processor interface, and the
  payment is closed (canceled, nothing was ever allocated), which ends its reservation. A processor that,
  asked again, says it charged nothing after all is canceled there and the payment closed without a refund.

A double submission is harmless: the moves out of HELD are guarded, and the refund's key is the payment's
own (one RefundRequest, UNIQUE by that key, and the processor's idempotency key), so a second submit, a
retry after a crash, or a second tab finds the same refund instead of making another.
"""
from dataclasses import dataclass

from peewee import IntegrityError

from billing import accounts, bounds, money, refunds
from billing import payments as pay
from billing import processors as proc
from billing.errors import FormErrors
from db import write_tx
from db.models import Payment, RefundRequest, utcnow

ACCEPT = "accept"
REFUND = "refund"
ACTIONS = {ACCEPT: "Accept as reported", REFUND: "Refund and close"}
NOT_CHARGED = (proc.REQUIRES_PAYMENT_METHOD, proc.REQUIRES_ACTION, proc.REQUIRES_VERIFICATION, proc.CANCELED, proc.FAILED)


@dataclass(frozen=True)
class Report:
    """A held payment next to what the processor says about it now."""

    payment: Payment
    state: proc.IntentState
    expected_cents: int  # what the portal asked the processor to charge (amount plus fee)
    accept_cents: int  # what accepting would apply (0 when it cannot be accepted)
    accept_problem: str  # why it cannot be accepted now, or ""
    allocations: tuple  # ((invoice number, cents), ...) where accepting would apply it now
    credit_cents: int  # and the part that would become account credit


def refund_key(payment):
    """The one key of a held payment's refund: RefundRequest.request_key and the processor's idempotency key."""
    return f"held-{payment.ref}"


def report(payment, processor):
    """What the processor says now about a held payment, and what accepting it would do."""
    state = processor.retrieve_payment_intent(payment.processor_ref)
    try:
        cents, problem = pay.accepted_cents(payment, state), ""
    except FormErrors as e:
        cents, problem = 0, e.errors["form"]
    allocations, credit = (), 0
    if cents:
        plan = accounts.plan_payment(payment.customer_id, cents, payment.target_invoice_id)
        numbers = {inv.id: inv.number for inv in accounts.open_invoices(payment.customer_id)}
        allocations = tuple((numbers.get(invoice_id, str(invoice_id)), part) for invoice_id, part in plan.allocations)
        credit = plan.credit_cents
    return Report(payment, state, pay.expected_charge_cents(payment), cents, problem, allocations, credit)


def check(payment, action, reason):
    """(action, reason) for a decision on a held payment, or FormErrors by field; nothing is written."""
    errors = {}
    if payment.status != pay.HELD:
        errors["form"] = (f"Payment {payment.ref} is {pay.LABELS[payment.status].lower()}, not held: "
                          "it was already resolved.")
    if action not in ACTIONS:
        errors["action"] = "Choose Accept as reported, or Refund and close."
    reason = (reason or "").strip()
    if not reason:
        errors["reason"] = "Say why, for example: the customer agreed to the amount the bank took."
    elif len(reason) > 255 or bounds.line_problem(reason):
        errors["reason"] = "Keep the reason to one line of 255 characters."
    if errors:
        raise FormErrors(errors)
    return action, reason


def resolve(payment_id, action, reason, processor, actor):
    """Carry out a confirmed decision on a held payment; returns the payment. FormErrors says why not."""
    payment = Payment.get_by_id(payment_id)
    if payment.status != pay.HELD:
        return payment  # the same confirmation, submitted again: already done
    action, reason = check(payment, action, reason)
    state = processor.retrieve_payment_intent(payment.processor_ref)  # decide on what it says now
    if action == ACCEPT:
        pay.accept_held(payment.id, state, reason, actor)  # refused there, under the lock, once a refund is asked
    elif state.status in NOT_CHARGED:
        state = processor.cancel_payment_intent(payment.processor_ref)
        if state.status in (proc.SUCCEEDED, proc.PROCESSING):  # it was paid meanwhile: decide again
            raise FormErrors({"form": "The processor has just charged this payment. Look at it again."})
        pay.close_held(payment.id, pay.HELD_NOT_CHARGED, reason, actor)
    elif state.status != proc.SUCCEEDED:
        raise FormErrors({"form": pay.not_settled(payment, state)})
    else:
        _refund_and_close(payment, state, reason, processor, actor)
    return Payment.get_by_id(payment.id)


def _refund_and_close(payment, state, reason, processor, actor):
    """Refund the whole reported charge once (written down first, then asked), then close the payment."""
    processor.require(proc.Capability.REFUNDS)
    key = refund_key(payment)
    with write_tx():
        accounts.lock_customer(payment.customer_id)
        if Payment.get_by_id(payment.id).status != pay.HELD:  # accepted meanwhile by another owner: no refund
            raise FormErrors({"form": f"Payment {payment.ref} was resolved meanwhile: look at it again."})
        request = RefundRequest.get_or_none(RefundRequest.request_key == key)
        if request is None:
            try:
                with write_tx():
                    request = RefundRequest.create(request_key=key, payment=payment.id, amount_cents=state.amount_cents,
                                                   reason=reason, actor=actor, status=refunds.REQUESTED)
                    accounts.audit(actor, "payment.held_refund_requested", "payment", payment.ref,
                                   amount_cents=state.amount_cents, currency=state.currency, reason=reason)
            except IntegrityError:  # the same decision, committed meanwhile by another worker
                request = RefundRequest.get(RefundRequest.request_key == key)
        elif request.status == refunds.FAILED:  # asked before and refused: ask again
            RefundRequest.update(status=refunds.REQUESTED, error="", updated_at=utcnow()).where(
                (RefundRequest.id == request.id) & (RefundRequest.status == refunds.FAILED)).execute()
    request = RefundRequest.get_by_id(request.id)
    refunded = request.amount_cents
    if request.status != refunds.DONE:
        try:
            # Asked first, so that a processor ignoring idempotency keys still refunds once after a crash.
            found = processor.find_refund(payment.processor_ref, key)
            refund_id, refunded = found or processor.refund(payment.processor_ref, request.amount_cents, key)
        except proc.ProcessorError as e:
            with write_tx():
                RefundRequest.update(status=refunds.FAILED, error=str(e)[:255], updated_at=utcnow()).where(
                    (RefundRequest.id == request.id) & (RefundRequest.status == refunds.REQUESTED)).execute()
                accounts.audit(actor, "refund.failed", "payment", payment.ref, amount_cents=request.amount_cents,
                               error=str(e)[:255])
            raise FormErrors({"form": f"The processor refused the refund: {e}"}) from None
        with write_tx():
            RefundRequest.update(status=refunds.DONE, processor_ref=refund_id, error="", updated_at=utcnow()).where(
                (RefundRequest.id == request.id) & (RefundRequest.status != refunds.DONE)).execute()
    pay.close_held(payment.id, pay.HELD_REFUNDED, reason, actor, refunded_cents=refunded)


def close_refunded(actor="reconcile"):
    """Close held payments whose refund the processor made but whose closing was never recorded (a crash).

    ``refunds.resolve_stuck`` (reconcile) settles such a refund request from the processor's answer; this
    then closes its payment, so that its reservation ends without waiting for an owner. Returns the refs closed.
    """
    closed = []
    done = (RefundRequest.select(RefundRequest, Payment).join(Payment)
            .where((RefundRequest.status == refunds.DONE) & (Payment.status == pay.HELD))
            .order_by(RefundRequest.id))
    for request in done:
        payment = request.payment
        if request.request_key == refund_key(payment) and pay.close_held(
                payment.id, pay.HELD_REFUNDED, request.reason, actor, refunded_cents=request.amount_cents):
            closed.append(payment.ref)
    return closed


def outcome_notice(payment):
    """What the staff page says after a decision on a once-held payment, or None."""
    fmt = lambda c: money.format_money(c, payment.currency)  # noqa: E731
    if payment.status == pay.SUCCEEDED:
        return f"Accepted as reported: {fmt(payment.amount_cents)} applied. The customer's receipt is queued."
    if payment.failure_code == pay.HELD_REFUNDED:
        return "Refunded at the processor and closed. The customer's email about it is queued."
    if payment.failure_code == pay.HELD_NOT_CHARGED:
        return "The processor had not charged it: canceled there and closed."
    return None
