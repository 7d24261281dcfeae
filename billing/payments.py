"""The payment state machine: the one place that moves a payment's state.

    created -> awaiting_details -> processing -> succeeded | failed
                      |                 (ACH settles later)
                      +-> succeeded | failed | canceled
                      +-> awaiting_verification -> processing | failed | canceled
                            (the bank account must be verified first: microdeposits)
    awaiting_details | awaiting_verification | processing -> held  (the processor reported another amount or
                      currency, or money moved without the portal's check and no longer fits)
    held -> succeeded | canceled  (an owner's decision only: billing.held)

What a customer may be charged is decided by one rule, ``check_fits``, under the customer's
lock inside a write transaction: when the amount is chosen (Continue), at Make Payment, and
again in the transaction that records that a processor is asked to charge (``claim_charge``).

Every move is a guarded UPDATE (``WHERE status IN (allowed sources)``) inside
a write transaction, so of any number of racing callers (double clicks, the
pop-up and the page both reporting, duplicated webhooks, reconcile) exactly
one performs it, and only that one allocates the money.
"""
import datetime as dt
import re
import secrets
from contextlib import contextmanager
from dataclasses import dataclass

from peewee import IntegrityError

from billing import accounts, bounds, fees, money, moves, receipts
from billing import processors as proc
from billing.errors import FormErrors  # noqa: F401  (billing.payments.FormErrors stays importable)
from billing.language import speaker_for
from billing.words import N_, joined
from db import pages, write_tx
from db.compiled import Arg, Compiled
from db.models import (Allocation, Customer, Invoice, Isp, Payment, PaymentInvoice, PaymentMethod, WebhookEvent, sum_cents,
                       utcnow)

CREATED = "created"
AWAITING_DETAILS = "awaiting_details"
PROCESSING = "processing"
SUCCEEDED = "succeeded"
FAILED = "failed"
CANCELED = "canceled"
# After success (see the last section): money taken back, always by new ledger rows.
REFUNDED = "refunded"  # refunded in full
DISPUTED = "disputed"  # the cardholder disputed the charge; the processor holds the money back meanwhile
REVERSED = "reversed"  # taken back for good: an ACH return or a lost dispute
HELD = "held"  # the processor reported another amount or currency, or took money unchecked that no longer fits:
#               nothing allocated, staff check it
# The processor took the bank details but must verify the account before it debits it (microdeposits, which
# take 1-2 business days to arrive; Stripe then allows 10 days to type them). The amount stays reserved and
# its invoices pending, autopay leaves them alone, and reconcile follows it until the processor says it is
# verified (processing), failed (too many wrong tries, a timeout) or the verification expires (canceled there
# and here, which frees the reservation). Nothing is charged until it moves to processing.
AWAITING_VERIFICATION = "awaiting_verification"

TRANSITIONS = {
    CREATED: {AWAITING_DETAILS, CANCELED},
    AWAITING_DETAILS: {PROCESSING, SUCCEEDED, FAILED, CANCELED, HELD, AWAITING_VERIFICATION},
    AWAITING_VERIFICATION: {PROCESSING, SUCCEEDED, FAILED, CANCELED, HELD},
    PROCESSING: {SUCCEEDED, FAILED, HELD},
    HELD: set(),  # only staff resolve it, after checking with the processor: see STAFF_RESOLVES
    SUCCEEDED: {REFUNDED, DISPUTED, REVERSED},
    FAILED: set(),
    CANCELED: set(),
    REFUNDED: set(),
    DISPUTED: {REVERSED},  # a won dispute returns to succeeded: see _reinstate, kept out of here on purpose
    REVERSED: set(),
}
# Moves no processor report may make, only a staff decision (billing.held): kept out of TRANSITIONS so that
# apply_intent_state can never take a held payment out of HELD.
STAFF_RESOLVES = {HELD: {SUCCEEDED, CANCELED}}
IN_FLIGHT = (CREATED, AWAITING_DETAILS, AWAITING_VERIFICATION, PROCESSING)
LABELS = {
    CREATED: "Started",
    AWAITING_DETAILS: "Waiting for payment details",
    PROCESSING: "Processing",
    SUCCEEDED: "Succeeded",
    FAILED: "Failed",
    CANCELED: "Canceled",
    REFUNDED: "Refunded",
    DISPUTED: "Disputed",
    REVERSED: "Reversed",
    HELD: "Being checked",
    AWAITING_VERIFICATION: "Waiting for bank account verification",
}
METHOD_TYPES = {"card": "Credit / Debit Card", "ach": "ACH (bank account)"}
_KEY = re.compile(r"^[A-Za-z0-9_-]{16,64}$")




def sources_of(target):
    """States from which a payment may move to ``target``."""
    return [s for s, targets in TRANSITIONS.items() if target in targets]


def _transition(payment_id, target, **fields):
    """Move a payment to ``target`` if its current state allows; True for the one caller that did."""
    fields["updated_at"] = utcnow()
    return bool(
        Payment.update(status=target, **fields)
        .where((Payment.id == payment_id) & Payment.status.in_(sources_of(target)))
        .execute()
    )


def new_idempotency_key():
    """A fresh key for one payment attempt, made when the amount step is shown."""
    return secrets.token_urlsafe(24)


def _new_ref():
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
    return "PAY-" + "".join(secrets.choice(alphabet) for _ in range(8))


# --- Step 2: payment type, method and amount. -------------------------------


def offered_types():
    """The payment types the ISP offers (staff Settings), as {value: label}."""
    from billing.settings import offered_method_types

    return offered_method_types(Isp.current() or Isp(name=""), METHOD_TYPES)


# --- The one rule: does an amount still fit what the customer owes? ------------------------------

# An attempt that reached the processor's window holds its amount against the balance for this long after
# it was last touched. Afterwards it stops counting, reconcile cancels it at the processor, and if it is
# ever paid anyway its charge is checked again (claim_charge) like any other.
RESERVATION_TTL = dt.timedelta(hours=1)


@dataclass(frozen=True)
class Room:
    """What a customer may be charged now: their balance less what other attempts may take, and the cap."""

    balance_cents: int  # open invoice balance
    others_cents: int  # other attempts: ACH settling, held, in the processor's window, or charged unrecorded
    credit_cents: int  # account credit already held
    allowance_cents: int  # the ISP's prepayment allowance: the most credit an account may hold
    currency: str = "USD"

    @property
    def owed_cents(self):
        """What is owed and not already on its way."""
        return max(self.balance_cents - self.others_cents, 0)

    @property
    def total_cents(self):
        """The most all new money together may be: owed, plus the allowance, less credit held."""
        return max(self.balance_cents - self.others_cents + self.allowance_cents - self.credit_cents, 0)

    def minimum_cents(self, isp_minimum):
        """The smallest payment allowed now: the ISP's minimum, or the whole of what is owed when that is
        less (so a small balance can be paid off), but never under the smallest charge a processor takes."""
        if 0 < self.owed_cents < isp_minimum:
            return max(self.owed_cents, money.SMALLEST_CHARGE_CENTS)
        return max(isp_minimum, money.SMALLEST_CHARGE_CENTS)

    def limit_cents(self, credit_chosen=None):
        """The most one attempt may charge; ``credit_chosen`` caps the part of it that becomes credit."""
        if credit_chosen is None:
            return self.total_cents
        return min(self.total_cents, self.owed_cents + max(credit_chosen, 0))


def _counted(now):
    """Attempts whose amount may still be charged or is settling, so that it counts against new ones."""
    reserved = (Payment.status == AWAITING_DETAILS) & (
        Payment.charging_at.is_null(False) | (Payment.updated_at > now - RESERVATION_TTL))
    return Payment.status.in_([PROCESSING, HELD, AWAITING_VERIFICATION]) | reserved


def room(customer_id, exclude_payment_id=None, now=None):
    """The customer's Room now, leaving out one attempt (the one being checked)."""
    now = now or utcnow()
    summary = accounts.summary(customer_id)
    q = Payment.select(sum_cents(Payment.amount_cents)).where(
        (Payment.customer == customer_id) & _counted(now))
    if exclude_payment_id is not None:
        q = q.where(Payment.id != exclude_payment_id)
    isp = Isp.current()
    return Room(balance_cents=summary.balance_cents, others_cents=int(q.scalar() or 0),
                credit_cents=summary.credit_cents, allowance_cents=isp.max_prepay_cents, currency=isp.currency)


def credit_chosen(payment):
    """The part of a payment the customer chose to pay beyond what they owed then (0 for older rows)."""
    if payment.owed_cents is None:
        return 0
    return max(payment.amount_cents - payment.owed_cents, 0)


class NoLongerFits(Exception):
    """An attempt would charge more than the customer may be charged now; ``new_cents`` is what fits."""

    def __init__(self, payment, room_now, new_cents):
        super().__init__(f"payment {payment.ref} no longer fits: {new_cents} cents would")
        self.payment = payment
        self.room = room_now
        self.new_cents = new_cents

    @property
    def message(self):
        """What changed, in words for the customer."""
        return what_changed(self.payment, self.room)


def what_changed(payment, room_now):
    """Why an attempt no longer fits, and what is owed now, for the customer."""
    fmt = lambda cents: money.format_money(cents, payment.currency)  # noqa: E731
    parts = []
    if payment.owed_cents is not None and payment.owed_cents != room_now.owed_cents:
        parts.append(N_("When you started this payment of %(amount)s you owed %(then)s; you owe %(now)s now.",
                        amount=fmt(payment.amount_cents), then=fmt(payment.owed_cents),
                        now=fmt(room_now.owed_cents)))
    else:
        parts.append(N_("You owe %(amount)s now.", amount=fmt(room_now.owed_cents)))
    if room_now.others_cents:
        parts.append(N_("%(amount)s is already on its way in other payments.", amount=fmt(room_now.others_cents)))
    if room_now.credit_cents and payment.amount_cents > room_now.owed_cents:
        parts.append(N_("Your account already holds %(credit)s of credit (at most %(allowance)s may be held).",
                        credit=fmt(room_now.credit_cents), allowance=fmt(room_now.allowance_cents)))
    return joined(parts)


def check_fits(payment, now=None):
    """Raise NoLongerFits unless ``payment`` may still be charged in full; call under the customer's lock.

    This is the one rule for every path that asks a processor to charge (the sandbox's Pay, Stripe's
    confirm, a saved method at Make Payment, autopay): the amount must be at most what is owed less what
    other attempts may take, plus the prepayment allowance less credit already held, and the part that
    would become credit must be no more than the customer chose when they typed the amount.
    """
    now_room = room(payment.customer_id, exclude_payment_id=payment.id, now=now)
    limit = now_room.limit_cents(credit_chosen(payment))
    if payment.amount_cents > limit:
        isp = Isp.current()
        raise NoLongerFits(payment, now_room, limit if limit >= now_room.minimum_cents(isp.min_payment_cents) else 0)
    return now_room


def expected_charge_cents(payment):
    """What the processor charges for this payment: the amount applied to invoices plus its convenience fee.

    Every amount handed to a processor, and every amount a processor reports back, is this figure; only
    ``amount_cents`` reaches the ledger.
    """
    return payment.amount_cents + (payment.fee_cents or 0)


def amount_limits(customer_id):
    """(minimum, maximum, room) for a payment now, from the ISP's settings and the account."""
    isp = Isp.current()
    now_room = room(customer_id)
    return now_room.minimum_cents(isp.min_payment_cents), now_room.limit_cents(), now_room


def suggested_amount(customer_id, invoice_id=None):
    """The amount to prefill: the invoice's balance, or the whole balance, less what is on its way."""
    owed = room(customer_id).owed_cents
    if invoice_id is not None:
        view = accounts.invoice_view(customer_id, invoice_id)
        if view is not None:
            return min(max(view.balance_cents - view.pending_cents, 0), owed)
    return owed


def check_amount(customer_id, text):
    """Cents for an amount the customer typed, within the ISP's limits and the account's room, or FormErrors."""
    isp = Isp.current()
    try:
        cents = money.parse_amount(text)
    except money.AmountError as e:
        raise FormErrors({"amount": e.message}) from None
    low, high, now_room = amount_limits(customer_id)
    fmt = lambda c: money.format_money(c, isp.currency)  # noqa: E731
    if 0 < now_room.owed_cents < money.SMALLEST_CHARGE_CENTS and high < low:
        raise FormErrors({"amount": N_("Your balance of %(balance)s is less than the smallest payment we can take "
                                       "(%(least)s); it is carried to your next bill.",
                                       balance=fmt(now_room.owed_cents), least=fmt(low))})
    if cents < low:
        raise FormErrors({"amount": N_("The minimum payment is %(amount)s.", amount=fmt(low))})
    if isp.max_payment_cents and cents > isp.max_payment_cents:  # the ISP's per-payment cap (Settings)
        raise FormErrors({"amount": N_("The most you can pay at once is %(amount)s.",
                                       amount=fmt(isp.max_payment_cents))})
    why = []
    if now_room.others_cents:
        why.append(N_("%(amount)s is already being processed", amount=fmt(now_room.others_cents)))
    if now_room.credit_cents > 0:
        why.append(N_("your account already holds %(credit)s of credit, and at most %(allowance)s may be held",
                      credit=fmt(now_room.credit_cents), allowance=fmt(now_room.allowance_cents)))
    reason = joined(why, "; ")
    if high < low:
        raise FormErrors({"amount": N_("You have no balance to pay right now (%(reason)s).", reason=reason) if why
                          else N_("You have no balance to pay right now.")})
    if cents > high:
        raise FormErrors({"amount": N_("The most you can pay now is %(amount)s (%(reason)s).", amount=fmt(high),
                                       reason=reason) if why
                          else N_("The most you can pay now is %(amount)s.", amount=fmt(high))})
    return cents, now_room


def start_payment(customer_id, *, amount_text, method_type, idempotency_key, invoice_id=None,
                  saved_method_id=None, processor_name="sandbox", actor="customer", origin="portal"):
    """Record step 2 as a payment in state created; the same key returns the same payment."""
    errors = {}
    if not _KEY.match(idempotency_key or ""):
        raise FormErrors({"form": N_("This form has expired. Reload the page and try again.")})
    if method_type not in offered_types():
        errors["method_type"] = N_("Choose a payment type.")
    saved = None
    if saved_method_id not in (None, "", "new"):
        saved = (PaymentMethod.active_for(customer_id, method_type)
                 .where(PaymentMethod.id == _int_or_none(saved_method_id)).first())
        if saved is None:
            errors["saved_method"] = _saved_method_clash(customer_id, saved_method_id, method_type)
    if invoice_id is not None:
        view = accounts.invoice_view(customer_id, invoice_id)
        if view is None:
            errors["form"] = N_("That invoice is not on your account.")
        elif view.balance_cents and view.pending_cents >= view.balance_cents:
            errors["form"] = N_("Invoice %(number)s is already being paid: its payment is processing. Check Payments "
                                "for where it is.", number=view.invoice.number)
    try:
        cents, now_room = check_amount(customer_id, amount_text)
    except FormErrors as e:
        errors.update(e.errors)
    if errors:
        raise FormErrors(errors)
    isp = Isp.current()
    # The fee is fixed here, where the customer is shown it, and charged exactly as shown (billing.fees).
    fields = dict(amount_cents=cents, method_type=method_type, target_invoice=invoice_id,
                  payment_method=saved.id if saved else None, owed_cents=now_room.owed_cents,
                  fee_cents=fees.fee_cents(isp, method_type, cents))
    with write_tx():
        existing = Payment.get_or_none(Payment.idempotency_key == idempotency_key)
        if existing is not None:
            if existing.customer_id != customer_id:
                raise FormErrors({"form": "This form has expired. Reload the page and try again."})
            # Going back and changing the amount is fine until billing is confirmed.
            Payment.update(updated_at=utcnow(), **fields).where(
                (Payment.id == existing.id) & (Payment.status == CREATED)).execute()
            return Payment.get_by_id(existing.id)
        try:
            with write_tx():
                payment = Payment.create(
                    ref=_new_ref(), customer=customer_id, idempotency_key=idempotency_key, currency=isp.currency,
                    status=CREATED, processor=processor_name, origin=origin, **fields,
                )
        except IntegrityError:  # a concurrent submit with the same key won
            return Payment.get(Payment.idempotency_key == idempotency_key)
        payment.confirmation_code = receipts.assign_code(payment.id)
        accounts.audit(actor, "payment.created", "payment", payment.ref, amount_cents=cents, method_type=method_type)
        return payment


def _saved_method_clash(customer_id, saved_method_id, method_type):
    """Why a chosen saved method cannot pay: it is of the other payment type, or not one of the customer's."""
    other = PaymentMethod.active_for(customer_id).where(PaymentMethod.id == _int_or_none(saved_method_id)).first()
    if other is None or method_type not in METHOD_TYPES:
        return "Choose one of your saved methods, or a new one."
    kind = "card" if other.method_type == "card" else "bank account"
    wanted = "card" if method_type == "card" else "bank account"
    return (f"You chose to pay by {METHOD_TYPES[method_type]}, but your saved {kind} {other.brand} ending "
            f"{other.last4} is a {kind}. Choose a saved {wanted}, or a new one.")


def _int_or_none(value):
    return bounds.parse_id(value)


# --- Step 3: billing information. --------------------------------------------

US_STATES = set(
    "AL AK AZ AR CA CO CT DE DC FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV NH NJ NM NY "
    "NC ND OH OK OR PA RI SC SD TN TX UT VT VA WA WV WI WY PR VI GU AS MP".split()
)
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[A-Za-z]{2,}$")
BILLING_FIELDS = ("name", "street", "city", "state", "zip", "email", "phone")


def check_billing(form, fields=BILLING_FIELDS):
    """Clean billing fields, or FormErrors with a message per field (only ``fields`` must be valid)."""
    data = {k: (form.get(k) or "").strip() for k in BILLING_FIELDS}
    errors = _billing_errors(data)
    errors = {k: v for k, v in errors.items() if k in fields}
    if errors:
        raise FormErrors(errors)
    return data


def _billing_errors(data):
    """A message for each billing field that is missing or malformed (``data`` is stripped; state upper-cased)."""
    errors = {}
    for key, missing in (("name", N_("Enter your name.")), ("street", N_("Enter the street address.")),
                         ("city", N_("Enter the city."))):
        if not data[key]:
            errors[key] = missing
        elif len(data[key]) > 100:
            errors[key] = N_("This is too long (100 characters at most).")
    data["state"] = data["state"].upper()
    if data["state"] not in US_STATES:
        errors["state"] = N_("Enter the 2-letter state code, like TX.")
    if not re.match(r"^[0-9]{5}(-[0-9]{4})?$", data["zip"], re.ASCII):
        errors["zip"] = N_("Enter a 5-digit ZIP code, like 78701.")
    if not _EMAIL.match(data["email"]) or len(data["email"]) > 254:
        errors["email"] = N_("Enter an email address, like name@example.com.")
    digits = re.sub(r"[\s().+-]", "", data["phone"])
    if digits.startswith("1") and len(digits) == 11:
        digits = digits[1:]
    if not re.match(r"^[0-9]{10}$", digits, re.ASCII):
        errors["phone"] = N_("Enter a 10-digit phone number, like 512-555-0100.")
    return errors


def confirm_billing(payment, form, processor, actor="customer", billing=None):
    """Make Payment: record billing information, reserve the amount if it still fits, open the processor's
    intent, and charge a saved method. Raises NoLongerFits (billing is kept) when the amount no longer fits.

    ``billing`` is billing data already checked by the caller (pay-by-link's, mostly from the file);
    without it every field of ``form`` is checked.
    """
    data = billing if billing is not None else check_billing(form)
    save = bool(form.get("save_for_autopay"))
    problem = None
    with write_tx():
        accounts.lock_customer(payment.customer_id)
        billing = {f"billing_{k}": v for k, v in data.items()}
        Payment.update(save_for_autopay=save, updated_at=utcnow(), **billing).where(
            (Payment.id == payment.id) & Payment.status.in_([CREATED, AWAITING_DETAILS])).execute()
        current = Payment.get_by_id(payment.id)
        if current.status == CREATED:
            try:
                check_fits(current)
            except NoLongerFits as e:
                problem = e
        if problem is None and _transition(payment.id, AWAITING_DETAILS):
            accounts.audit(actor, "payment.billing_confirmed", "payment", payment.ref, save_for_autopay=save)
    if problem is not None:
        raise problem
    return _hand_over(Payment.get_by_id(payment.id), processor, actor)


def _hand_over(payment, processor, actor):
    """Open the processor's intent; with a saved method, charge it now (the claim is checked first)."""
    if payment.status != AWAITING_DETAILS:
        return payment
    state = open_intent(payment, processor)
    if payment.payment_method_id and state.status == proc.REQUIRES_PAYMENT_METHOD:
        with write_tx():
            problem = claim_charge(payment.id)
        if problem is not None:
            return retire(Payment.get_by_id(payment.id), processor, problem=problem, actor=actor)
        state = processor.charge_saved_method(state.id, payment.payment_method.processor_ref)
        apply_intent_state(payment.id, state, processor=processor)
    return Payment.get_by_id(payment.id)


def claim_charge(payment_id, now=None):
    """Inside the caller's write_tx: check the attempt still fits, and record that a charge is being asked for.

    Returns None when the processor may now be asked to charge, or the NoLongerFits problem (nothing is
    recorded then, and nothing may be charged). From the claim on, the attempt counts as pending, with its
    planned invoices, until the processor's answer is recorded: a crash after the processor charged cannot
    let the same invoices be paid again.
    """
    now = now or utcnow()
    payment = Payment.get_by_id(payment_id)
    accounts.lock_customer(payment.customer_id)
    payment = Payment.get_by_id(payment_id)  # re-read under the lock
    if payment.status != AWAITING_DETAILS:
        return NoLongerFits(payment, room(payment.customer_id, payment.id, now), 0)
    try:
        check_fits(payment, now=now)
    except NoLongerFits as e:
        return e
    Payment.update(charging_at=now, updated_at=now).where(Payment.id == payment_id).execute()
    _plan(payment)
    return None


class ChargeGate:
    """The write transaction in which a processor's Pay charges one intent (see ``charging``)."""

    def __init__(self, payment, problem, txn):
        self.payment = payment
        self.problem = problem
        self._txn = txn

    def nothing_charged(self):
        """Undo the claim: the processor refused the details before charging anything."""
        self._txn.rollback()


@contextmanager
def charging(intent_id):
    """A write transaction that first claims the charge of the payment holding ``intent_id``.

    The processor charges inside it only when ``gate.problem`` is None; otherwise nothing may be charged and
    the caller retires the attempt. An intent no payment holds (none of ours) passes unchecked.
    """
    payment = Payment.get_or_none(Payment.processor_ref == intent_id)
    with write_tx() as txn:
        problem = claim_charge(payment.id) if payment is not None else None
        yield ChargeGate(payment, problem, txn)


def _plan(payment):
    """(Re)write the invoices a payment on its way is meant for: they show, and count, as pending."""
    PaymentInvoice.delete().where(PaymentInvoice.payment == payment.id).execute()
    plan = accounts.plan_payment(payment.customer_id, payment.amount_cents, payment.target_invoice_id)
    for invoice_id, cents in plan.allocations:
        PaymentInvoice.create(payment=payment.id, invoice=invoice_id, amount_cents=cents)


def _unclaim(payment_id):
    """The processor answered that it charged nothing (a decline): the attempt no longer counts as pending."""
    Payment.update(charging_at=None).where(Payment.id == payment_id).execute()
    PaymentInvoice.delete().where(PaymentInvoice.payment == payment_id).execute()


NO_LONGER_FITS = "no_longer_fits"


def retire(payment, processor, problem=None, code="", message="", actor="customer"):
    """Stop an attempt that no longer fits, was replaced or abandoned: canceled at the processor, then here.

    A processor that already took the money says so when asked to cancel; then that outcome is applied
    instead, so money received is never dropped.
    """
    if problem is not None:
        code, message = NO_LONGER_FITS, problem.message
    if payment.status in (CREATED, AWAITING_DETAILS, AWAITING_VERIFICATION):
        state = None
        if payment.processor_ref:
            state = processor.cancel_payment_intent(payment.processor_ref)
        elif payment.status == AWAITING_DETAILS:  # a crash may have left the intent unrecorded
            found = processor.find_payment_intent(payment.idempotency_key, payment.ref)
            state = processor.cancel_payment_intent(found.id) if found else None
        if state is not None and state.status in (proc.SUCCEEDED, proc.PROCESSING):
            with write_tx():
                Payment.update(processor_ref=state.id).where(
                    (Payment.id == payment.id) & Payment.processor_ref.is_null()).execute()
            return apply_intent_state(payment.id, state, actor=actor, processor=processor)
    with write_tx():
        if _transition(payment.id, CANCELED, failure_code=code[:255], failure_message=message[:255]):
            PaymentInvoice.delete().where(PaymentInvoice.payment == payment.id).execute()
            accounts.audit(actor, "payment.canceled", "payment", payment.ref, reason=code or "canceled")
    return Payment.get_by_id(payment.id)


def problem_now(payment):
    """NoLongerFits for an unfinished attempt that would not be charged now (read without a lock), or None."""
    if payment.status not in (CREATED, AWAITING_DETAILS):
        return None
    try:
        check_fits(payment)
    except NoLongerFits as e:
        return e
    return None


@dataclass(frozen=True)
class Stale:
    """An attempt that would not be charged now: what changed, and what may be paid instead (0: nothing)."""

    message: str
    new_cents: int


def staleness(payment):
    """Stale for an unfinished attempt that no longer fits, or one canceled because it did not; else None."""
    if payment.status in (CREATED, AWAITING_DETAILS):
        problem = problem_now(payment)
        return Stale(problem.message, problem.new_cents) if problem else None
    if payment.status == CANCELED and payment.failure_code == NO_LONGER_FITS:
        now_room = room(payment.customer_id)
        new = min(payment.amount_cents, now_room.limit_cents(credit_chosen(payment)))
        low = now_room.minimum_cents(Isp.current().min_payment_cents)
        return Stale(payment.failure_message, new if new >= low else 0)
    return None


def renew(payment, processor, actor="customer"):
    """Continue a stale attempt with what fits now, in one step: the old one is canceled (at the processor
    too) and a new attempt for the amount that fits goes to Make Payment with the same billing details.

    Returns the new payment, or None when nothing is left to pay.
    """
    problem = problem_now(payment)
    if payment.status in (CREATED, AWAITING_DETAILS) and problem is None:
        return payment  # it fits again: nothing to renew
    if payment.status in (CREATED, AWAITING_DETAILS):
        payment = retire(payment, processor, problem=problem, actor=actor)
    if payment.status != CANCELED:
        return payment
    with write_tx():
        accounts.lock_customer(payment.customer_id)
        now_room = room(payment.customer_id)
        cents = min(payment.amount_cents, now_room.limit_cents(credit_chosen(payment)))
        if cents < now_room.minimum_cents(Isp.current().min_payment_cents):
            return None
        if payment.target_invoice_id is not None:
            view = accounts.invoice_view(payment.customer_id, payment.target_invoice_id)
            target = payment.target_invoice_id if view and view.balance_cents > view.pending_cents else None
        else:
            target = None
        key = f"renew-{payment.idempotency_key}"[:64]
        existing = Payment.get_or_none(Payment.idempotency_key == key)
        if existing is not None:  # the same click, twice
            return existing
        fresh = Payment.create(
            ref=_new_ref(), customer=payment.customer_id, idempotency_key=key, currency=payment.currency,
            status=CREATED, processor=payment.processor, origin=payment.origin, amount_cents=cents,
            owed_cents=now_room.owed_cents, method_type=payment.method_type, target_invoice=target,
            payment_method=payment.payment_method_id,
            fee_cents=fees.fee_cents(Isp.current(), payment.method_type, cents),  # the rule the button shows
            **{f"billing_{k}": getattr(payment, f"billing_{k}") for k in BILLING_FIELDS})
        receipts.assign_code(fresh.id)
        accounts.audit(actor, "payment.created", "payment", fresh.ref, amount_cents=cents, replaces=payment.ref)
    form = {k: getattr(fresh, f"billing_{k}") for k in BILLING_FIELDS}
    if payment.save_for_autopay:
        form["save_for_autopay"] = "1"
    return confirm_billing(fresh, form, processor, actor=actor)


PAYLINK = "paylink"  # Payment.origin of a payment started through a pay link (billing.paylinks)


def _intent_metadata(payment):
    """What the processor is told when it creates a payment's intent: nothing that changes for its key.

    A pay link's payment names no customer: a card typed through a link is never kept for the account.
    """
    metadata = {"payment_ref": payment.ref}
    if payment.origin != PAYLINK:
        metadata["customer_id"] = str(payment.customer_id)
    return metadata


def may_save(payment):
    """True when the card of this payment may be saved for later: the customer ticked the box, on their own
    account (never through a pay link)."""
    return bool(payment.save_for_autopay) and payment.origin != PAYLINK


def open_intent(payment, processor):
    """The processor's intent for this payment, created once (the payment row is saved first)."""
    if payment.processor_ref:
        return processor.retrieve_payment_intent(payment.processor_ref)
    state = processor.create_payment_intent(
        amount_cents=expected_charge_cents(payment), currency=payment.currency, method_type=payment.method_type,
        idempotency_key=payment.idempotency_key,
        metadata=_intent_metadata(payment),
    )
    with write_tx():
        Payment.update(processor_ref=state.id, updated_at=utcnow()).where(
            (Payment.id == payment.id) & Payment.processor_ref.is_null()).execute()
    return state


# --- Outcomes: from the processor, never from the browser. -------------------


def reported_mismatch(payment, state):
    """Why the processor's report does not match the payment (amount or currency), or ""."""
    problems = []
    if state.amount_cents != expected_charge_cents(payment):
        problems.append(f"amount {state.amount_cents} cents, expected {expected_charge_cents(payment)}")
    if (state.currency or "").upper() != (payment.currency or "").upper():
        problems.append(f"currency {state.currency or 'not reported'}, expected {payment.currency}")
    return "; ".join(problems)


def _hold(payment, state, mismatch, actor):
    """Keep a payment whose processor report does not match out of the ledger, flagged for staff."""
    if _transition(payment.id, HELD, failure_code="amount_mismatch",
                   failure_message=f"Held for checking: the processor reported {mismatch}."[:255]):
        accounts.audit(actor, "payment.held", "payment", payment.ref, reported_status=state.status,
                       reported_amount_cents=state.amount_cents, reported_currency=state.currency,
                       mismatch=mismatch)


UNCHECKED = "unchecked_excess"  # Payment.failure_code of one held because it moved unchecked and did not fit


def _unchecked_excess(payment, now):
    """NoLongerFits for money the processor reports moving that the portal did not check just before, or None.

    Every charge the portal asks for is checked when it is asked (``claim_charge``; a card the browser
    confirmed is checked before its capture). Two moves happen at the processor without the portal: a bank
    debit that a browser confirmed with the processor directly (its window holds the intent's client secret,
    and a bank debit cannot be held for capture), and a bank account verified on the processor's own page days
    later instead of the portal's (``verify_bank``). Both are checked here, under the customer's lock, before
    anything is allocated; one that no longer fits is held for staff instead of becoming credit. The test is
    on the payment's state, not its method: any other move that reaches here unclaimed (a card the processor
    reports captured without the portal's capture) is just as unchecked, and is checked the same way.
    """
    if not (payment.status == AWAITING_VERIFICATION
            or (payment.status == AWAITING_DETAILS and payment.charging_at is None)):
        return None
    try:
        check_fits(payment, now=now)
    except NoLongerFits as e:
        return e
    return None


def _hold_unchecked(payment, state, problem, actor):
    """Keep money that moved unchecked and no longer fits out of the ledger, flagged for staff (held)."""
    fmt = lambda cents: money.format_money(cents, payment.currency)  # noqa: E731
    why = (f"Held for checking: the processor took {fmt(state.amount_cents)} without the portal's charge-time "
           f"check, and at most {fmt(problem.room.limit_cents(credit_chosen(payment)))} could be applied now.")
    if _transition(payment.id, HELD, failure_code=UNCHECKED, failure_message=why[:255]):
        accounts.audit(actor, "payment.held", "payment", payment.ref, reported_status=state.status,
                       reported_amount_cents=state.amount_cents, reported_currency=state.currency,
                       unchecked=True, limit_cents=problem.room.limit_cents(credit_chosen(payment)))


def _resolve_held(payment_id, target, **fields):
    """Move a held payment to ``target`` by a staff decision; True for the one caller that did."""
    assert target in STAFF_RESOLVES[HELD]
    fields["updated_at"] = utcnow()
    return bool(Payment.update(status=target, **fields)
                .where((Payment.id == payment_id) & (Payment.status == HELD)).execute())


HELD_REFUNDED = "held_refunded"  # Payment.failure_code of a held payment staff refunded and closed
HELD_NOT_CHARGED = "held_not_charged"  # ... of one the processor, asked again, had not charged after all


def accept_held(payment_id, state, reason, actor):
    """Staff accept a held payment as the processor reported it (``state``, re-read just now).

    The reported charge less the payment's fee becomes the payment's amount, and is applied by the usual
    ledger rules: the chosen invoice first, then oldest first, the rest to credit. Refused (FormErrors) when
    the processor took another currency, or when the credit it would leave is more than the prepayment
    allowance lets an account hold. Returns True for the one caller that accepted it, False if already resolved.
    """
    with write_tx():
        payment = Payment.get_by_id(payment_id)
        accounts.lock_customer(payment.customer_id)
        payment = Payment.get_by_id(payment_id)  # re-read under the lock
        if payment.status != HELD:
            return False
        if RefundRequest.select().where((RefundRequest.payment == payment.id)
                                        & (RefundRequest.status != "failed")).exists():
            # Checked under the lock: an owner refunding it at the same moment wins, or loses, whole.
            raise FormErrors({"form": "A refund of this payment was already asked for: use Refund and close."})
        cents = accepted_cents(payment, state)
        now_room = room(payment.customer_id, exclude_payment_id=payment.id)
        if cents > now_room.limit_cents():
            fmt = lambda c: money.format_money(c, payment.currency)  # noqa: E731
            raise FormErrors({"form": (
                f"Accepting {fmt(cents)} would leave the account holding more credit than the prepayment "
                f"allowance ({fmt(now_room.allowance_cents)}): at most {fmt(now_room.limit_cents())} can be "
                "applied now. Refund it instead.")})
        expected = expected_charge_cents(payment)
        if not _resolve_held(payment.id, SUCCEEDED, amount_cents=cents, settled_at=utcnow(), failure_code="",
                             failure_message="", method_brand=state.brand or payment.method_brand,
                             method_last4=state.last4 or payment.method_last4):
            return False
        payment = Payment.get_by_id(payment.id)
        plan = accounts.post_payment(payment)
        accounts.audit(actor, "payment.held_accepted", "payment", payment.ref, reason=reason,
                       expected_charge_cents=expected, amount_cents=cents, reported_amount_cents=state.amount_cents,
                       reported_currency=state.currency, allocations=plan.allocations, credit_cents=plan.credit_cents)
        _after_move(payment.id, SUCCEEDED)
    return True


def accepted_cents(payment, state):
    """Cents of a held payment that accepting the processor's ``state`` would apply, or FormErrors why not."""
    fmt = lambda c: money.format_money(c, payment.currency)  # noqa: E731
    if state.status != proc.SUCCEEDED:
        raise FormErrors({"form": not_settled(payment, state)})
    if (state.currency or "").upper() != (payment.currency or "").upper():
        took = (money.format_money(state.amount_cents, state.currency) if state.currency
                else f"{state.amount_cents} cents in a currency it did not report")
        raise FormErrors({"form": (f"The processor took {took}, and the account is kept in {payment.currency}: "
                                   "it cannot be applied. Refund it instead.")})
    cents = state.amount_cents - (payment.fee_cents or 0)
    if cents <= 0:
        raise FormErrors({"form": (f"The processor took {fmt(state.amount_cents)}, no more than the "
                                   f"{fmt(payment.fee_cents)} fee: nothing is left to apply. Refund it instead.")})
    return cents


def not_settled(payment, state):
    """Why a held payment cannot be resolved yet from the processor's ``state``."""
    if state.status == proc.PROCESSING:
        return ("The processor is still settling this bank payment. Accept or refund it once it has settled "
                "(come back to this page then).")
    return f"The processor reports this payment as {state.status.replace('_', ' ')}, not as charged."


def close_held(payment_id, code, reason, actor, refunded_cents=0):
    """Close a held payment that staff refunded (or that the processor never charged): its reservation ends.

    Nothing was allocated while it was held, so nothing in the ledger changes; the customer is emailed
    about a refund. Returns True for the one caller that closed it.
    """
    with write_tx():
        payment = Payment.get_by_id(payment_id)
        accounts.lock_customer(payment.customer_id)
        words = "Refunded by staff" if code == HELD_REFUNDED else "Not charged, closed by staff"
        if not _resolve_held(payment.id, CANCELED, failure_code=code, failure_message=f"{words}: {reason}"[:255]):
            return False
        PaymentInvoice.delete().where(PaymentInvoice.payment == payment.id).execute()
        accounts.audit(actor, f"payment.{code}", "payment", payment.ref, reason=reason,
                       refunded_cents=refunded_cents)
        if refunded_cents:
            _tell_customer(payment, f"held:{payment.ref}", lambda sp: (
                sp.say("Refund of %(amount)s", amount=sp.money(refunded_cents, payment.currency)),
                sp.say("We refunded %(amount)s for your payment %(ref)s, which we could not apply to your account "
                       "as charged. It reaches your account in 5-10 business days. Your invoices still show what "
                       "is due; please pay them again, or contact us.",
                       amount=sp.money(refunded_cents, payment.currency), ref=payment.ref)))
    return True


def apply_intent_state(payment_id, state, actor="processor", processor=None):
    """Move the payment to match what the processor reports; safe to call any number of times.

    Money is allocated only when the reported amount and currency are the payment's own; any other
    report holds the payment for staff (HELD), flagged, with an audit entry. An AUTHORIZED intent is
    captured only if the payment still fits (``capture_if_fits``, which needs the ``processor``).
    """
    if state.status == proc.AUTHORIZED:
        state = capture_if_fits(payment_id, state, processor, actor)
        if state is None:
            return Payment.get_by_id(payment_id)
    with write_tx():
        payment = Payment.get_by_id(payment_id)
        accounts.lock_customer(payment.customer_id)
        payment = Payment.get_by_id(payment_id)
        method = dict(method_brand=state.brand, method_last4=state.last4)
        moving = state.status in (proc.SUCCEEDED, proc.PROCESSING)
        mismatch = reported_mismatch(payment, state) if moving else ""
        unchecked = _unchecked_excess(payment, now=utcnow()) if moving and not mismatch else None
        if mismatch:
            _hold(payment, state, mismatch, actor)
        elif unchecked is not None:
            _hold_unchecked(payment, state, unchecked, actor)
        elif state.status == proc.SUCCEEDED:
            if _transition(payment.id, SUCCEEDED, settled_at=utcnow(), failure_code="", failure_message="",
                           **method):
                payment = Payment.get_by_id(payment.id)
                plan = accounts.post_payment(payment)
                _maybe_save_method(payment, state)
                accounts.audit(actor, "payment.succeeded", "payment", payment.ref,
                               amount_cents=payment.amount_cents, allocations=plan.allocations,
                               credit_cents=plan.credit_cents)
                _after_move(payment.id, SUCCEEDED)
        elif state.status == proc.PROCESSING:
            if _transition(payment.id, PROCESSING, **method):
                _plan(payment)
                accounts.audit(actor, "payment.processing", "payment", payment.ref)
                _after_move(payment.id, PROCESSING)
        elif state.status == proc.FAILED:
            if _transition(payment.id, FAILED, failure_code=state.failure_code,
                           failure_message=state.failure_message, **method):
                accounts.audit(actor, "payment.failed", "payment", payment.ref, code=state.failure_code)
                _after_move(payment.id, FAILED)
        elif state.status == proc.REQUIRES_VERIFICATION and state.verification is not None:
            _awaiting_verification(payment, state.verification, method, actor)
        elif state.status == proc.CANCELED:
            _transition(payment.id, CANCELED)
        elif state.failure_code and payment.status == AWAITING_VERIFICATION:
            # The account could not be verified (too many wrong tries, or too late): nothing was debited.
            if _transition(payment.id, FAILED, failure_code=state.failure_code,
                           failure_message=state.failure_message, **method):
                accounts.audit(actor, "payment.failed", "payment", payment.ref, code=state.failure_code)
                _after_move(payment.id, FAILED)
        elif state.failure_code:
            # A decline: nothing is paid, and the customer may try another card.
            if Payment.update(failure_code=state.failure_code, failure_message=state.failure_message,
                              updated_at=utcnow(), **method).where(
                    (Payment.id == payment.id) & (Payment.status == AWAITING_DETAILS)).execute():
                _unclaim(payment.id)
    return Payment.get_by_id(payment_id)


def _awaiting_verification(payment, verification, method, actor):
    """The processor waits for the customer to verify the bank account (inside apply_intent_state's transaction).

    The first report moves the payment and plans its invoices (they show as pending, and the amount stays
    reserved); a later one only keeps the page and expiry the processor gives now.
    """
    fields = dict(verify_url=(verification.url or "")[:2048], verify_type=(verification.microdeposit_type or "")[:255],
                  verify_expires_at=verification.expires_at, **method)
    if _transition(payment.id, AWAITING_VERIFICATION, failure_code="", failure_message="", **fields):
        _plan(payment)
        accounts.audit(actor, "payment.awaiting_verification", "payment", payment.ref,
                       microdeposit_type=verification.microdeposit_type, expires_at=verification.expires_at)
        _after_move(payment.id, AWAITING_VERIFICATION)
    elif payment.status == AWAITING_VERIFICATION and (payment.verify_url, payment.verify_expires_at) != (
            fields["verify_url"], fields["verify_expires_at"]):
        Payment.update(**fields).where((Payment.id == payment.id)
                                       & (Payment.status == AWAITING_VERIFICATION)).execute()


def verification_expires(payment):
    """When reconcile gives up a payment waiting for its bank account to be verified (UTC)."""
    if payment.verify_expires_at is not None:
        return payment.verify_expires_at
    return payment.updated_at + VERIFICATION_TTL


_DESCRIPTOR = re.compile(r"^SM[A-Z0-9]{4}$", re.ASCII)


def verification_input(payment, form):
    """What the customer typed to verify the bank account -> (verify_bank's keyword arguments, field errors)."""
    if payment.verify_type == proc.MICRODEPOSIT_DESCRIPTOR_CODE:
        code = (form.get("descriptor_code") or "").strip().upper()
        if not _DESCRIPTOR.match(code):
            return {}, {"descriptor_code": N_("Enter the 6-character code that starts with SM.")}
        return {"descriptor_code": code}, {}
    amounts = [money.deposit_cents(form.get("amount1")), money.deposit_cents(form.get("amount2"))]
    if None in amounts or 0 in amounts:
        return {}, {"amounts": N_("Enter the two deposits' amounts in cents, like 32 and 45.")}
    return {"amounts": amounts}, {}


def verify_bank(payment_id, processor, *, amounts=None, descriptor_code=None, actor="customer"):
    """The portal's own verification page: check the payment still fits, then verify, which starts the debit.

    The bank debit of a payment waiting for verification moves when its account is verified, days after Make
    Payment; so this is where the charge-time rule runs (``check_fits``, under the customer's lock). When the
    payment no longer fits, nothing is verified: the attempt is retired (canceled at the processor too) and the
    customer is told what changed. Otherwise the processor checks the deposits (``verify_microdeposits``).
    Returns (payment, field errors, NoLongerFits or None).
    """
    with write_tx():
        payment = Payment.get_by_id(payment_id)
        accounts.lock_customer(payment.customer_id)
        payment = Payment.get_by_id(payment_id)  # re-read under the lock
        if payment.status != AWAITING_VERIFICATION:
            return payment, {}, None
        try:
            check_fits(payment)
        except NoLongerFits as e:
            problem = e
        else:
            problem = None
            Payment.update(updated_at=utcnow()).where(Payment.id == payment_id).execute()
    if problem is not None:
        return retire(payment, processor, problem=problem, actor=actor), {}, problem
    state, errors = processor.verify_microdeposits(payment.processor_ref, amounts=amounts,
                                                   descriptor_code=descriptor_code)
    return apply_intent_state(payment_id, state, actor=actor, processor=processor), errors, None


def capture_if_fits(payment_id, state, processor, actor="processor"):
    """An authorization: the processor holds the money and takes it only when the portal captures it.

    The payment must still fit, checked under the customer's lock in the transaction that claims the
    capture, exactly as for any charge (``check_fits``); then the processor is asked to capture, and its
    answer (SUCCEEDED) is returned for apply_intent_state. When it no longer fits, the hold is released
    (the intent canceled there, the attempt here) and nothing is taken. This is what makes a card payment
    that a browser confirmed with the processor directly (Stripe.js holds the intent's client secret) go
    through the same check as one this server confirmed. Returns None when nothing more is to be applied:
    released, finished already, or no processor at hand (the claim then counts the payment as pending
    until a sync or reconcile captures or releases it).
    """
    now = utcnow()
    with write_tx():
        payment = Payment.get_by_id(payment_id)
        accounts.lock_customer(payment.customer_id)
        payment = Payment.get_by_id(payment_id)
        problem = None
        if payment.status == AWAITING_DETAILS:
            try:
                check_fits(payment, now=now)
            except NoLongerFits as e:
                problem = e
            else:
                if payment.charging_at is None:  # confirmed outside the portal's own Pay: claim it now
                    Payment.update(charging_at=now, updated_at=now).where(Payment.id == payment_id).execute()
                    _plan(payment)
                    accounts.audit(actor, "payment.authorized", "payment", payment.ref,
                                   amount_cents=state.amount_cents)
        elif payment.status not in (CREATED, CANCELED, FAILED):
            return None  # recorded already (a repeated report): never captured twice from here
    if processor is None:
        return None
    if payment.status in (CREATED, CANCELED, FAILED):
        processor.cancel_payment_intent(state.id)  # an attempt given up: its hold is released, nothing taken
        return None
    if problem is not None:
        retire(payment, processor, problem=problem, actor=actor)  # cancels the intent: the hold is released
        return None
    try:
        return processor.capture_payment_intent(state.id)
    except proc.ProcessorError:
        return None  # claimed, so it counts as pending; the next sync or reconcile captures it


def _maybe_save_method(payment, state):
    if not (may_save(payment) and state.method_token):
        return
    method, _ = PaymentMethod.get_or_create(
        processor_ref=state.method_token,
        defaults=dict(customer=payment.customer_id, processor=payment.processor, method_type=payment.method_type,
                      brand=state.brand, last4=state.last4, exp_month=state.exp_month, exp_year=state.exp_year),
    )
    Payment.update(payment_method=method.id).where(Payment.id == payment.id).execute()


SYNC_FIRST = dt.timedelta(seconds=2)  # a remote processor is asked at most this often about a fresh attempt,
SYNC_MOST = dt.timedelta(minutes=2)  # and at least this often however old it is, while a page asks


def sync_due(payment, now=None):
    """Whether a remote processor may be asked about ``payment`` now: the wait since the last question grows
    with the time since the payment last moved (an eighth of it, from SYNC_FIRST up to SYNC_MOST). Webhooks
    bring every change anyway; this is the page's fallback when one is late."""
    if payment.checked_at is None:
        return True
    now = now or utcnow()
    wait = min(max(SYNC_FIRST, (now - payment.updated_at) / 8), SYNC_MOST)
    return now - payment.checked_at >= wait


def sync(payment, processor, force=True):
    """Ask the processor about this payment and apply the answer.

    With ``force`` False (a page polling), a remote processor is asked only when ``sync_due`` says so, and
    the payment is returned as stored otherwise; the time of each question is kept on the row, so several
    workers and hosts share one backoff. An attempt whose charge was asked for but whose intent id was never
    recorded (the server stopped in between) is looked up by its idempotency key at once: reconcile's work,
    without waiting for cron.
    """
    if payment.status not in (AWAITING_DETAILS, AWAITING_VERIFICATION, PROCESSING):
        return payment
    if processor.remote:
        now = utcnow()
        if not force and not sync_due(payment, now):
            return payment
        with write_tx():
            Payment.update(checked_at=now).where(Payment.id == payment.id).execute()
    if not payment.processor_ref:
        if payment.charging_at is None:
            return payment
        state = processor.find_payment_intent(payment.idempotency_key, payment.ref)
        if state is None:
            return payment
        with write_tx():
            Payment.update(processor_ref=state.id).where(
                (Payment.id == payment.id) & Payment.processor_ref.is_null()).execute()
        return apply_intent_state(payment.id, state, actor="reconcile", processor=processor)
    return apply_intent_state(payment.id, processor.retrieve_payment_intent(payment.processor_ref),
                              processor=processor)



def sync_intent(intent_id, processor, actor="processor"):
    """Apply what the processor says now about the payment holding ``intent_id``; None when none of ours does."""
    payment = Payment.get_or_none(Payment.processor_ref == intent_id)
    if payment is None or payment.status not in IN_FLIGHT:
        return payment
    return apply_intent_state(payment.id, processor.retrieve_payment_intent(intent_id), actor=actor,
                              processor=processor)


def cancel(payment, actor="customer"):
    """Mark a payment canceled here only (the processor refused it); ``retire`` also cancels it there."""
    with write_tx():
        if _transition(payment.id, CANCELED):
            accounts.audit(actor, "payment.canceled", "payment", payment.ref)
    return Payment.get_by_id(payment.id)


# --- Reads. -------------------------------------------------------------------


def for_customer(customer_id, ref):
    """The customer's own payment with this reference, or None (also for other customers' refs)."""
    return Payment.get_or_none((Payment.ref == ref) & (Payment.customer == customer_id))


HISTORY_PER_PAGE = 20


def history(customer_id, page=1, per_page=HISTORY_PER_PAGE):
    """One page (db.pages.Page) of the customer's payments, newest first, without abandoned ones never confirmed."""
    return pages.paginate(
        Payment.select().where((Payment.customer == customer_id) & (Payment.status != CREATED))
        .order_by(Payment.created_at.desc(), Payment.id.desc()), page, per_page)


ABANDONED_AFTER = dt.timedelta(days=1)


_IN_FLIGHT = Compiled(lambda: (  # on every Home page
    Payment.select().where(
        (Payment.customer == Arg(0))
        & (Payment.status.in_([AWAITING_DETAILS, AWAITING_VERIFICATION, PROCESSING, HELD])
           | ((Payment.status == CREATED) & (Payment.created_at > Arg(1)))))
    .order_by(Payment.created_at.desc())))


def in_flight(customer_id):
    """Payments to resume, newest first: any handed to the processor, and amounts chosen in the last day."""
    return _IN_FLIGHT.rows(customer_id, utcnow() - ABANDONED_AFTER)


def resumable(customer_id):
    """[(payment, Stale or None)] for payments in progress: a stale one carries what changed."""
    return [(p, staleness(p)) for p in in_flight(customer_id)]


def credit_from(payment):
    """Cents of a payment that became account credit when it was applied (0 when none did)."""
    return int(CreditEntry.select(sum_cents(CreditEntry.amount_cents)).where(
        (CreditEntry.payment == payment.id) & (CreditEntry.amount_cents > 0)
        & CreditEntry.invoice.is_null()).scalar() or 0)


def applied_to(payment):
    """(invoice, cents) the payment was applied to, or is planned for while processing."""
    if payment.status == SUCCEEDED:
        rows = Allocation.select(Allocation, Invoice).join(Invoice).where(Allocation.payment == payment.id)
    else:
        rows = PaymentInvoice.select(PaymentInvoice, Invoice).join(Invoice).where(
            PaymentInvoice.payment == payment.id)
    return [(row.invoice, row.amount_cents) for row in rows]


def applied_numbers_many(payment_list):
    """{payment id: [(invoice number, cents)]} as ``applied_to`` gives for each, in two queries for the list.

    For long lists (the staff's CSV export): plain tuples, no model objects.
    """
    done = [p.id for p in payment_list if p.status == SUCCEEDED]
    other = [p.id for p in payment_list if p.status != SUCCEEDED]
    found = {p.id: [] for p in payment_list}
    for table, ids in ((Allocation, done), (PaymentInvoice, other)):
        if ids:
            for payment_id, number, cents in (table.select(table.payment, Invoice.number, table.amount_cents)
                                              .join(Invoice).where(table.payment.in_(ids)).order_by(table.id)
                                              .tuples()):
                found[payment_id].append((number, cents))
    return found


# --- Off-session charges with a saved method (autopay), and telling others a payment moved. ---------
# The autopay run (billing/autopay.py) records a payment here, charges the saved method without the
# customer present, and applies the processor's answer through the same guarded moves as every payment.


def _after_move(payment_id, status):
    """Announce a move to its listeners (receipts, autopay), inside the transaction that made it."""
    moves.announce(payment_id, status)


def create_off_session(customer_id, *, method, amount_cents, invoice_id, idempotency_key, processor_name,
                       actor="autopay", fee_cents=None):
    """Record a payment of a saved method that nobody is present for; call inside write_tx().

    ``fee_cents`` is the convenience fee the caller may charge (autopay: only one its authorization names);
    None applies the ISP's rule.
    """
    customer = Customer.get_by_id(customer_id)
    isp = Isp.current()
    if fee_cents is None:
        fee_cents = fees.fee_cents(isp, method.method_type, amount_cents)  # the same rule as on-session
    payment = Payment.create(
        ref=_new_ref(), customer=customer_id, idempotency_key=idempotency_key, amount_cents=amount_cents,
        fee_cents=fee_cents,
        currency=isp.currency, method_type=method.method_type, status=CREATED,
        target_invoice=invoice_id, processor=processor_name, payment_method=method.id, origin="autopay",
        billing_name=customer.name, billing_street=customer.street, billing_city=customer.city,
        billing_state=customer.state, billing_zip=customer.zip, billing_email=customer.email,
        billing_phone=customer.phone, owed_cents=amount_cents,
    )
    receipts.assign_code(payment.id)
    _transition(payment.id, AWAITING_DETAILS)
    problem = claim_charge(payment.id)  # the run charges it right after this transaction
    if problem is not None:
        raise problem
    accounts.audit(actor, "payment.created", "payment", payment.ref, amount_cents=amount_cents,
                   method_type=method.method_type, off_session=True)
    return Payment.get_by_id(payment.id)


def charge_off_session(payment, processor):
    """Ask the processor to charge the payment's saved method, nobody present; its answer, not yet applied.

    The processor creates and confirms the charge in one call (Stripe: ``confirm`` and ``off_session``).
    The payment row and its idempotency key exist before the call. An attempt whose intent is recorded is
    only read again; one left by a run that crashed before recording it is looked up by its key first,
    because the processor may have charged it and may have forgotten the key by the next day's run.
    """
    if payment.processor_ref:
        state = processor.retrieve_payment_intent(payment.processor_ref)
        if state.status == proc.REQUIRES_PAYMENT_METHOD and not state.failure_code and not state.failure_message:
            state = processor.charge_saved_method(state.id, payment.payment_method.processor_ref)  # never confirmed
        return state
    state = None
    if payment.created_at < utcnow() - dt.timedelta(minutes=2):  # resumed by a later run
        state = processor.find_payment_intent(payment.idempotency_key, payment.ref)
    if state is None:
        processor.require(proc.Capability.OFF_SESSION)
        state = processor.charge_off_session(
            amount_cents=expected_charge_cents(payment), currency=payment.currency, method_type=payment.method_type,
            method_token=payment.payment_method.processor_ref, customer_id=payment.customer_id,
            idempotency_key=payment.idempotency_key,
            metadata=_intent_metadata(payment))
    with write_tx():
        Payment.update(processor_ref=state.id, updated_at=utcnow()).where(
            (Payment.id == payment.id) & Payment.processor_ref.is_null()).execute()
    return state


def apply_off_session_state(payment_id, state, actor="autopay"):
    """As apply_intent_state, except that a decline ends the payment: nobody is there to try another card."""
    with write_tx():
        payment = apply_intent_state(payment_id, state, actor=actor)
        declined = state.status == proc.REQUIRES_PAYMENT_METHOD and state.failure_code
        if payment.status == AWAITING_DETAILS and declined:
            if _transition(payment_id, FAILED, failure_code=state.failure_code,
                           failure_message=state.failure_message):
                accounts.audit(actor, "payment.failed", "payment", payment.ref, code=state.failure_code)
                _after_move(payment_id, FAILED)
        return Payment.get_by_id(payment_id)


# --- After success: refunds, ACH returns and disputes; remote webhooks; reconcile. ----------------------
# Money already received is taken back by NEW rows only: a negative Allocation row that points at the
# row it reverses (plus a new positive row for any part that stays), and negative CreditEntry rows for
# unapplied credit. Each reversal is recorded once, UNIQUE by the processor's id for it (a refund or
# dispute id), in the same transaction as its ledger rows, and the customer is told by email.

import datetime as _dt  # noqa: E402

from billing import mail  # noqa: E402
from db.models import (CreditEntry, MethodSetup, PaymentDispute, PaymentMandate, PaymentReversal,  # noqa: E402
                       RefundRequest)

RECONCILE_AFTER = _dt.timedelta(minutes=5)
RECONCILE_WITHIN = _dt.timedelta(days=7)
# A claimed charge (the processor was asked to charge) whose answer never came: a 3-D Secure challenge the
# customer left, or a processor error after the claim. Its amount stays reserved, and its invoices pending,
# until reconcile asks the processor this long after the claim: far longer than any charge call can take
# (Stripe's client gives up after 80 s and a few retries) or a customer takes over a bank's challenge, so an
# answer on its way always wins, and short enough that a customer who gave up can pay again the same hour.
CLAIM_TTL = _dt.timedelta(hours=1)
# Autopay's claims wait longer: a charge whose bank asked for the customer is emailed to them ("confirm
# this payment"), and that link must keep working for a few days before the attempt is given up.
OFF_SESSION_CLAIM_TTL = _dt.timedelta(days=3)
# A payment waiting for its bank account to be verified, when the processor does not say until when it may be:
# Stripe's microdeposits take 1-2 business days to arrive (up to 4 calendar days over a weekend), and must
# then be verified within 10 days. Reconcile follows such payments this long, however old they are.
VERIFICATION_TTL = _dt.timedelta(days=14)
VERIFICATION_EXPIRED_MESSAGE = "The bank account was not verified in time, so nothing was debited."


def taken_back(payment_id):
    """Cents of a payment taken back so far (refunds, returns, open or lost disputes)."""
    return (PaymentReversal.select(sum_cents(PaymentReversal.amount_cents))
            .where(PaymentReversal.payment == payment_id).scalar())


def fee_taken_back(payment_id):
    """Cents of a payment's convenience fee taken back so far (refunds, returns, disputes; less won disputes)."""
    return (PaymentReversal.select(sum_cents(PaymentReversal.fee_cents))
            .where(PaymentReversal.payment == payment_id).scalar())


def refundable(payment):
    """Cents of a payment's amount that can still be refunded (its fee share goes with them: billing.fees)."""
    return payment.amount_cents - taken_back(payment.id) if payment.status == SUCCEEDED else 0


def _live_allocations(payment_id):
    reversed_ids = Allocation.select(Allocation.reverses).where(Allocation.reverses.is_null(False))
    return list(Allocation.select().where(
        (Allocation.payment == payment_id) & (Allocation.amount_cents > 0) & Allocation.id.not_in(reversed_ids))
        .order_by(Allocation.id.desc()))


def _take_back(payment, cents):
    """Ledger rows that take ``cents`` of a payment back: its unapplied credit first, then newest allocations."""
    need = cents
    credit = (CreditEntry.select(sum_cents(CreditEntry.amount_cents))
              .where(CreditEntry.payment == payment.id).scalar())
    take = min(need, max(credit, 0))
    if take:
        CreditEntry.create(customer=payment.customer_id, payment=payment.id, amount_cents=-take)
        need -= take
    reopened = []
    for row in _live_allocations(payment.id):
        if need == 0:
            break
        taken = min(need, row.amount_cents)
        Allocation.record(payment.id, row.invoice_id, -row.amount_cents, reverses=row.id)
        if row.amount_cents > taken:  # the rest of this allocation stays: re-add it as a new row
            Allocation.record(payment.id, row.invoice_id, row.amount_cents - taken)
        reopened.append(row.invoice_id)
        need -= taken
    if need:
        raise ValueError(f"cannot take back {cents} cents from payment {payment.ref}: only {cents - need} left")
    return reopened


def _give_back(payment, cents):
    """Ledger rows that apply ``cents`` of a payment again (a won dispute), by the usual rules."""
    plan = accounts.plan_payment(payment.customer_id, cents, payment.target_invoice_id)
    for invoice_id, part in plan.allocations:
        Allocation.record(payment.id, invoice_id, part)
    if plan.credit_cents:
        CreditEntry.create(customer=payment.customer_id, payment=payment.id, amount_cents=plan.credit_cents)


def _tell_customer(payment, key, words):
    """Email the customer about money taken back; ``words(sp)`` gives (subject, text) in their language."""
    customer = Customer.get_by_id(payment.customer_id)
    to = payment.billing_email or customer.email
    if to:
        sp = speaker_for(customer)
        subject, text = words(sp)
        mail.enqueue(to, subject, text, kind="payment.reversal", dedupe_key=f"reversal:{key}")


def _reversal(payment, kind, cents, processor_ref, reason, actor, fee_cents=0):
    """Record one reversal and its ledger rows; False when this processor_ref was already recorded.

    ``fee_cents`` is the convenience fee that goes back with a refund, a bank return or a dispute (negative when
    a won dispute gives it back): recorded on the reversal, never in the ledger.
    """
    if PaymentReversal.get_or_none(PaymentReversal.processor_ref == processor_ref) is not None:
        return False
    PaymentReversal.create(payment=payment.id, kind=kind, amount_cents=cents, fee_cents=fee_cents,
                           processor_ref=processor_ref, reason=reason[:255], actor=actor)
    if cents > 0:
        reopened = _take_back(payment, cents)
    elif cents < 0:
        _give_back(payment, -cents)
        reopened = []
    else:  # only fee went back
        reopened = []
    extra = {"fee_cents": fee_cents} if fee_cents else {}
    accounts.audit(actor, f"payment.{kind}", "payment", payment.ref, amount_cents=cents,
                   processor_ref=processor_ref, reopened=reopened, **extra)
    return True


def refund_split(payment, refund_id, cents):
    """(amount part, fee part) of a refund of ``cents`` of the charge: as staff confirmed it, else in proportion."""
    asked = RefundRequest.get_or_none(RefundRequest.processor_ref == refund_id)
    if asked is not None and asked.payment_id == payment.id and asked.amount_cents + asked.fee_cents == cents:
        return asked.amount_cents, asked.fee_cents
    return fees.split_refund(payment.amount_cents, payment.fee_cents or 0, taken_back(payment.id),
                             fee_taken_back(payment.id), cents)


def record_refunds(payment_id, refunds, actor="processor", reason=""):
    """Take back each refund (refund id, cents of the charge) not seen before; refunded in full moves to refunded.

    A refund of the charge returns the convenience fee in proportion (billing.fees.split_refund): its amount
    part comes off invoices and credit, its fee part is recorded on the reversal only. A refund larger than
    what is left of the whole charge (amount and fee) is refused.
    """
    with write_tx():
        payment = Payment.get_by_id(payment_id)
        accounts.lock_customer(payment.customer_id)
        if payment.status not in (SUCCEEDED, REFUNDED):
            return False
        applied = False
        for refund_id, cents in refunds:
            left = payment.amount_cents - taken_back(payment.id)
            fee_left = (payment.fee_cents or 0) - fee_taken_back(payment.id)
            if cents <= 0 or cents > left + fee_left:
                continue
            ledger_cents, fee_part = refund_split(payment, refund_id, cents)
            if ledger_cents > left or fee_part > fee_left or not _reversal(
                    payment, "refund", ledger_cents, refund_id, reason, actor, fee_cents=fee_part):
                continue
            applied = True
            _tell_customer(payment, refund_id, lambda sp, cents=cents, ledger_cents=ledger_cents, fee_part=fee_part: (
                sp.say("Refund of %(amount)s", amount=sp.money(cents, payment.currency)),
                sp.say("We refunded %(amount)s of your payment %(ref)s. That is %(paid)s of the payment and %(fee)s "
                       "of its %(label)s. It reaches your account in 5-10 business days. Any invoice it was applied "
                       "to shows the amount as due again.",
                       amount=sp.money(cents, payment.currency), ref=payment.ref,
                       paid=sp.money(ledger_cents, payment.currency), fee=sp.money(fee_part, payment.currency),
                       label=sp.text(fees.LABELS.get(payment.method_type, N_("fee"))).lower())
                if fee_part else
                sp.say("We refunded %(amount)s of your payment %(ref)s. It reaches your account in 5-10 business "
                       "days. Any invoice it was applied to shows the amount as due again.",
                       amount=sp.money(cents, payment.currency), ref=payment.ref)))
        if applied and taken_back(payment.id) >= payment.amount_cents:
            _transition(payment.id, REFUNDED)
        return applied


def record_failed_refunds(payment_id, refund_ids, actor="processor"):
    """Refunds the processor made that then failed or were canceled: what each took back is applied again.

    Each is given back once (its reversal ``failed:<refund id>`` is UNIQUE), by the usual rules (oldest open
    invoice first, then credit), with its fee part; a payment refunded in full is succeeded again. The staff
    request that asked for it, if any, says it failed, and the customer is told.
    """
    if not refund_ids:
        return False
    with write_tx():
        payment = Payment.get_by_id(payment_id)
        accounts.lock_customer(payment.customer_id)
        if payment.status not in (SUCCEEDED, REFUNDED):
            # Disputed or reversed since: the processor's dispute may already count this refund as the
            # customer's, so applying it again could credit money the ISP does not hold. Staff decide.
            accounts.audit(actor, "payment.refund_failed_unapplied", "payment", payment.ref,
                           refunds=list(refund_ids), status=payment.status)
            return False
        applied = False
        for refund_id in refund_ids:
            taken = PaymentReversal.get_or_none((PaymentReversal.processor_ref == refund_id)
                                                & (PaymentReversal.payment == payment.id)
                                                & (PaymentReversal.kind == "refund"))
            if taken is None or not _reversal(payment, "refund_failed", -taken.amount_cents, f"failed:{refund_id}",
                                              "the refund failed at the processor", actor,
                                              fee_cents=-(taken.fee_cents or 0)):
                continue
            applied = True
            RefundRequest.update(status="failed", error="The processor reported that the refund failed.",
                                 updated_at=utcnow()).where(RefundRequest.processor_ref == refund_id).execute()
            back = taken.amount_cents + (taken.fee_cents or 0)
            _tell_customer(payment, f"failed:{refund_id}", lambda sp, back=back: (
                sp.say("Refund of %(amount)s not made", amount=sp.money(back, payment.currency)),
                sp.say("The refund of %(amount)s of your payment %(ref)s could not be made, so the money was not "
                       "returned. It is applied to your account again. Please contact us if you still want it "
                       "back.", amount=sp.money(back, payment.currency), ref=payment.ref)))
        if applied and taken_back(payment.id) < payment.amount_cents:  # not when only a fee refund failed
            _reinstate(payment.id, REFUNDED)
        return applied


def _reinstate(payment_id, from_status):
    """Back to succeeded once what took the money back is undone: a dispute decided for the ISP (from disputed,
    or from reversed when a lost dispute is won on appeal), or a refund that failed (from refunded). Kept out of
    TRANSITIONS so that no 'succeeded' report can make these moves."""
    q = Payment.update(status=SUCCEEDED, failure_code="", failure_message="", updated_at=utcnow())
    if from_status == REVERSED:
        return bool(q.where((Payment.id == payment_id) & (Payment.status == REVERSED)
                            & (Payment.failure_code == DISPUTE_LOST)).execute())
    return bool(q.where((Payment.id == payment_id) & (Payment.status == from_status)).execute())


# Stripe's dispute statuses. An inquiry (warning_*) is the bank asking before any chargeback: it moves no
# money, and is shown to staff. A chargeback takes the disputed money back while it is open; won and prevented
# give it back; lost keeps it taken. The same dispute may go from an inquiry to a chargeback, and a lost one
# back under review on appeal, so each event is compared with the dispute's last status (PaymentDispute).
INQUIRY = ("warning_needs_response", "warning_under_review")
INQUIRY_CLOSED = "warning_closed"
CHARGEBACK = ("needs_response", "under_review")
DECIDED_FOR_ISP = ("won", "prevented")
DISPUTE_LOST = "dispute_lost"
DISPUTE_STATUSES = INQUIRY + (INQUIRY_CLOSED,) + CHARGEBACK + DECIDED_FOR_ISP + ("lost",)
DISPUTE_LABELS = {
    "warning_needs_response": "Inquiry: the bank asks for information (no money taken)",
    "warning_under_review": "Inquiry under review (no money taken)",
    "warning_closed": "Inquiry closed (no money taken)",
    "needs_response": "Chargeback: evidence needed",
    "under_review": "Chargeback under review",
    "won": "Won: the money came back",
    "prevented": "Prevented: the money came back",
    "lost": "Lost: the money stays taken back",
}


def _note_dispute(payment, dispute_id, status, cents, reason, actor):
    """Keep the dispute's latest status; (the row as it was before, or None; whether the status changed)."""
    before = PaymentDispute.get_or_none(PaymentDispute.processor_ref == dispute_id)
    if before is None:
        PaymentDispute.create(payment=payment.id, processor_ref=dispute_id, status=status, amount_cents=cents,
                              reason=reason[:255])
    elif (before.status, before.amount_cents) != (status, cents):
        PaymentDispute.update(status=status, amount_cents=cents, reason=reason[:255] or before.reason,
                              updated_at=utcnow()).where(PaymentDispute.id == before.id).execute()
    changed = before is None or before.status != status
    if changed:
        accounts.audit(actor, "payment.dispute_status", "payment", payment.ref, dispute=dispute_id, status=status,
                       was=before.status if before else "", amount_cents=cents)
    return before, changed


def _bank_account_disputed(payment, actor):
    """A bank debit disputed (an unauthorized return): the account is not used again and its autopay is off.

    Returns the method's last four digits when it was a saved account (for the customer's email), else ""."""
    from billing import methods  # methods builds on this module

    method = PaymentMethod.get_or_none(PaymentMethod.id == payment.payment_method_id) \
        if payment.method_type == "ach" and payment.payment_method_id else None
    if method is None or method.removed_at is not None:
        return ""
    methods.make_unusable(payment.customer_id, method.id, actor=actor,
                          reason=N_("Turned off because your bank disputed a payment from this account."))
    return method.last4


def record_dispute(payment_id, dispute_id, status, cents, reason="", actor="processor"):
    """Follow a dispute to its current status; each step happens once, whatever order the events came in.

    Returns True when something changed (the dispute's status, money, or the payment's state).
    """
    if status not in DISPUTE_STATUSES:
        return False
    with write_tx():
        payment = Payment.get_by_id(payment_id)
        accounts.lock_customer(payment.customer_id)
        mine = PaymentDispute.get_or_none(PaymentDispute.processor_ref == dispute_id)
        if mine is not None and mine.payment_id != payment.id:
            return False
        _, changed = _note_dispute(payment, dispute_id, status, cents, reason, actor)
        held = PaymentReversal.get_or_none(PaymentReversal.processor_ref == dispute_id)
        given_back = PaymentReversal.get_or_none(PaymentReversal.processor_ref == f"won:{dispute_id}")
        if status in INQUIRY or status == INQUIRY_CLOSED:
            return changed  # an inquiry moves no money; staff see it on the payment
        if status in DECIDED_FOR_ISP:
            if held is None or given_back is not None:
                return changed
            _reversal(payment, "dispute_won", -held.amount_cents, f"won:{dispute_id}", reason, actor,
                      fee_cents=-(held.fee_cents or 0))
            still_open = (PaymentDispute.select().where(
                (PaymentDispute.payment == payment.id) & (PaymentDispute.processor_ref != dispute_id)
                & PaymentDispute.status.in_(CHARGEBACK + ("lost",))).exists())
            if not still_open:
                _reinstate(payment.id, DISPUTED) or _reinstate(payment.id, REVERSED)
            return True
        if given_back is not None:
            return changed  # decided for the ISP and given back: a later word on it is for staff, on the payment
        moved = False
        if held is None:
            if payment.status not in (SUCCEEDED, DISPUTED):
                return changed
            # The processor disputes part or all of the charge, fee included: split it as a refund of the
            # charge would be, so the fee part is recorded apart and never reaches the ledger.
            before, fee_before = taken_back(payment.id), fee_taken_back(payment.id)
            fee = payment.fee_cents or 0
            charge_left = payment.amount_cents - before + fee - fee_before
            part, fee_part = fees.split_refund(payment.amount_cents, fee, before, fee_before, min(cents, charge_left))
            moved = _reversal(payment, "dispute", part, dispute_id, reason, actor, fee_cents=fee_part)
            _transition(payment.id, DISPUTED)
            last4 = _bank_account_disputed(payment, actor)
            _tell_customer(payment, dispute_id, lambda sp: (
                sp.say("Payment %(ref)s is disputed", ref=payment.ref),
                sp.say("Your bank told us you disputed payment %(ref)s of %(amount)s. Until the dispute is settled "
                       "the invoices it paid show as due again.", ref=payment.ref,
                       amount=sp.money(payment.amount_cents, payment.currency))
                + ("\n\n" + sp.say("We will not debit the bank account ending %(last4)s again, and autopay with it "
                                    "is off. To pay, add another payment method.", last4=last4) if last4 else "")))
        if status == "lost":
            moved = _transition(payment.id, REVERSED, failure_code=DISPUTE_LOST,
                                failure_message="The payment was disputed and taken back.") or moved
        elif held is not None:  # a lost dispute back under review (an appeal): disputed again, money still taken
            moved = bool(Payment.update(status=DISPUTED, failure_code="", failure_message="", updated_at=utcnow())
                         .where((Payment.id == payment.id) & (Payment.status == REVERSED)
                                & (Payment.failure_code == DISPUTE_LOST)).execute()) or moved
        return moved or changed


def disputes_of(payment_id):
    """A payment's disputes, newest first, for staff."""
    return list(PaymentDispute.select().where(PaymentDispute.payment == payment_id)
                .order_by(PaymentDispute.created_at.desc(), PaymentDispute.id.desc()))


def save_remote_method(processor_name, update, actor="processor"):
    """A method the customer saved at the processor (setup_intent.succeeded), remembered once."""
    customer = Customer.get_or_none(Customer.id == update.customer_id)
    if customer is None or not update.last4:
        return False
    method_type = update.method_type if update.method_type in METHOD_TYPES else "card"
    _, created = PaymentMethod.get_or_create(
        processor_ref=update.method_token,
        defaults=dict(customer=customer.id, processor=processor_name, method_type=method_type,
                      brand=update.brand, last4=update.last4, exp_month=update.exp_month, exp_year=update.exp_year))
    if created:
        accounts.audit(actor, "payment_method.saved", "customer", customer.id, last4=update.last4)
    if update.setup_id:  # the portal's own Add opened this SetupIntent: finish it, as its page's sync would
        from billing import methods  # methods builds on this module

        method = PaymentMethod.get(PaymentMethod.processor_ref == update.method_token)
        if MethodSetup.update(status=methods.SETUP_SAVED, payment_method=method.id, updated_at=utcnow()).where(
                (MethodSetup.processor_ref == update.setup_id) & (MethodSetup.customer == customer.id)
                & (MethodSetup.status == methods.SETUP_OPEN)).execute():
            methods.ensure_default(customer.id, method.id)
    return created


def apply_update(processor_name, update, actor="processor"):
    """Apply what the processor says now about a payment (or saved method); safe to repeat."""
    if isinstance(update, proc.MethodUpdate):
        return save_remote_method(processor_name, update, actor)
    if isinstance(update, proc.SetupUpdate):
        from billing import methods  # methods builds on this module

        return methods.setup_moved(update, actor)
    if isinstance(update, proc.MethodChanged):
        from billing import methods

        return methods.method_changed(update, actor)
    payment = Payment.get_or_none(Payment.processor_ref == update.intent_id)
    if payment is None:
        return False
    if isinstance(update, proc.IntentUpdate):
        if payment.status in IN_FLIGHT:
            return apply_intent_state(payment.id, update.state, actor=actor).status != payment.status
        return False  # Stripe never fails a succeeded intent: a late bank return comes as a dispute
    if isinstance(update, proc.RefundsUpdate):
        recorded = record_refunds(payment.id, update.refunds, actor)
        return record_failed_refunds(payment.id, update.failed, actor) or recorded
    if isinstance(update, proc.DisputeUpdate):
        return record_dispute(payment.id, update.dispute_id, update.status, update.amount_cents, update.reason,
                              actor)
    return False


def handle_remote_event(processor, event_id, event_type, update):
    """Apply one verified webhook event exactly once: its id is UNIQUE in the same transaction as its effects.

    ``update`` is what the processor says *now* about the event's object (re-read, not taken from the
    event), so duplicates and events out of order all end in the same state. Returns False for a
    repeat; True when recorded (whether or not it changed anything).
    """
    if update is not None and not isinstance(update, (proc.IntentUpdate, proc.MethodUpdate, proc.SetupUpdate,
                                                       proc.MethodChanged)):
        # A refund or dispute of a success we have not recorded yet: record the success first.
        payment = Payment.get_or_none(Payment.processor_ref == update.intent_id)
        if payment is not None and payment.status in IN_FLIGHT:
            sync(payment, processor)
    try:
        with write_tx():
            WebhookEvent.create(processor=processor.name, event_id=event_id, event_type=event_type)
            if update is not None:
                apply_update(processor.name, update, actor=f"webhook:{processor.name}")
    except IntegrityError:
        return False
    if isinstance(update, proc.IntentUpdate) and update.state.status == proc.AUTHORIZED:
        # Held, not taken: the capture is a processor call, so it is made after the event's transaction,
        # under the same charge-time check as every other charge.
        payment = Payment.get_or_none(Payment.processor_ref == update.intent_id)
        if payment is not None:
            sync(payment, processor)
    return True


def record_mandate(payment, mandate, ip, user_agent):
    """Record the customer's acceptance of the ACH mandate for this payment (the first one counts): the
    ``billing.legal.Agreement`` shown, word for word, with its version and language."""
    try:
        with write_tx():
            return PaymentMandate.create(payment=payment.id, text=mandate.text, text_version=mandate.version,
                                         language=mandate.language, ip=(ip or "")[:255],
                                         user_agent=(user_agent or "")[:512])
    except IntegrityError:
        return PaymentMandate.get(PaymentMandate.payment == payment.id)


def reconcile(processor, now=None, older_than=RECONCILE_AFTER, within=RECONCILE_WITHIN):
    """Ask the processor about attempts left waiting, and settle them once; safe to run from cron at any time.

    Attempts that held a reservation longer than RESERVATION_TTL without being paid are canceled at the
    processor (so their window can no longer pay them) and here. A charge claimed longer ago than its claim
    TTL (``claim_expired``) without an answer is settled by what the processor says: recorded (once) if it
    charged, otherwise canceled there and here, which releases its reservation; such claims are looked at
    however old they are, since they count against the customer until then. So are payments waiting for their
    bank account to be verified: followed until the processor says verified or failed, and canceled there and
    here once the verification has expired (``verification_expires``). Returns [(payment ref, status
    before, status after)] for the attempts it looked at.
    """
    now = now or utcnow()
    waiting = Payment.status.in_([AWAITING_DETAILS, PROCESSING]) & (Payment.updated_at < now - older_than)
    claimed = (Payment.status == AWAITING_DETAILS) & (Payment.charging_at < now - CLAIM_TTL)
    # Followed until verified, failed or expired, however old: each one holds its amount against the balance.
    verifying = (Payment.status == AWAITING_VERIFICATION) & (Payment.updated_at < now - older_than)
    q = (Payment.select().where(
        (Payment.processor == processor.name)
        & ((waiting & (Payment.created_at > now - within)) | claimed | verifying))
        .order_by(Payment.id))
    report = []
    for payment in q:
        if payment.processor_ref:
            state = processor.retrieve_payment_intent(payment.processor_ref)
        else:
            # The server stopped between creating the intent and saving its id: find it by our key.
            state = processor.find_payment_intent(payment.idempotency_key, payment.ref)
            if state is None:
                after = payment
                if claim_expired(payment, now):  # the processor never heard of it: nothing was charged
                    after = retire(payment, processor, code="claim_expired", actor="reconcile",
                                   message=CLAIM_EXPIRED_MESSAGE)
                report.append((payment.ref, payment.status, after.status))
                continue
            with write_tx():
                Payment.update(processor_ref=state.id).where(
                    (Payment.id == payment.id) & Payment.processor_ref.is_null()).execute()
        after = apply_intent_state(payment.id, state, actor="reconcile", processor=processor)
        if after.status == AWAITING_DETAILS and after.charging_at is None and after.updated_at < now - RESERVATION_TTL:
            after = retire(after, processor, code="expired", actor="reconcile",
                           message="This payment was left unfinished and has expired. Nothing was charged.")
        elif after.status == AWAITING_DETAILS and claim_expired(after, now):
            # retire asks the processor to cancel; one that charged meanwhile says so, and that is recorded.
            after = retire(after, processor, code="claim_expired", actor="reconcile", message=CLAIM_EXPIRED_MESSAGE)
        elif after.status == AWAITING_VERIFICATION and verification_expires(after) < now:
            after = retire(after, processor, code="verification_expired", actor="reconcile",
                           message=VERIFICATION_EXPIRED_MESSAGE)
        report.append((payment.ref, payment.status, after.status))
    return report


CLAIM_EXPIRED_MESSAGE = "This payment was never completed and has expired. Nothing was charged."


def claim_expired(payment, now=None):
    """True when a charge was claimed for this attempt longer ago than its claim TTL and is still unanswered."""
    if payment.status != AWAITING_DETAILS or payment.charging_at is None:
        return False
    ttl = OFF_SESSION_CLAIM_TTL if payment.origin == "autopay" else CLAIM_TTL
    return payment.charging_at < (now or utcnow()) - ttl


# --- Payments taken at the counter: cash, check, money order. --------------------------------------------
# No processor is involved: staff saw the money. The payment is recorded and succeeds in one transaction,
# through the same guarded move and the same ledger rules as every payment (the chosen invoice first, then
# oldest first, the rest to credit), and the receipt goes out through the outbox like any other. Taking it
# back (a bounced check, a mistake) is a reversal: new ledger rows, never edits.

OFFLINE = "offline"  # Payment.processor of a payment staff recorded
COUNTER = "counter"  # Payment.origin of one
OFFLINE_TYPES = {"cash": "Cash", "check": "Check", "money_order": "Money order"}
COUNTER_REVERSAL = "counter_reversal"  # PaymentReversal.kind


def record_offline(customer_id, *, amount_cents, kind, method_text, idempotency_key, invoice_id, details,
                   actor):
    """Record money received at the counter as a succeeded, allocated payment; the same key records it once.

    Returns (payment, created). ``details`` are the OfflinePayment fields (check number, date, note, who).
    """
    from db.models import OfflinePayment

    if kind not in OFFLINE_TYPES or amount_cents <= 0:
        raise ValueError("an offline payment needs a kind and a positive amount")
    with write_tx():
        accounts.lock_customer(customer_id)
        existing = Payment.get_or_none(Payment.idempotency_key == idempotency_key)
        if existing is not None:
            if existing.customer_id != customer_id or existing.processor != OFFLINE:
                raise FormErrors({"form": "This form has expired. Reload the page and try again."})
            return existing, False
        customer = Customer.get_by_id(customer_id)
        try:
            with write_tx():
                payment = Payment.create(
                    ref=_new_ref(), customer=customer_id, idempotency_key=idempotency_key, amount_cents=amount_cents,
                    currency=Isp.current().currency, method_type=kind, status=AWAITING_DETAILS,
                    target_invoice=invoice_id, processor=OFFLINE, origin=COUNTER, method_brand=method_text[:255],
                    billing_name=customer.name, billing_email=customer.email, billing_phone=customer.phone,
                    billing_street=customer.street, billing_city=customer.city, billing_state=customer.state,
                    billing_zip=customer.zip)
                OfflinePayment.create(payment=payment.id, kind=kind, **details)
                receipts.assign_code(payment.id)
        except IntegrityError:  # the same key recorded meanwhile by another worker
            return Payment.get(Payment.idempotency_key == idempotency_key), False
        accounts.audit(actor, "payment.created", "payment", payment.ref, amount_cents=amount_cents, method_type=kind,
                       counter=True)
        _transition(payment.id, SUCCEEDED, settled_at=utcnow())
        payment = Payment.get_by_id(payment.id)
        plan = accounts.post_payment(payment)
        accounts.audit(actor, "payment.succeeded", "payment", payment.ref, amount_cents=amount_cents,
                       allocations=plan.allocations, credit_cents=plan.credit_cents)
        _after_move(payment.id, SUCCEEDED)
    return Payment.get_by_id(payment.id), True


def reverse_offline(payment_id, reason, actor):
    """Take back a counter payment (a bounced check, a mistake) with new ledger rows; False if already done."""
    with write_tx():
        payment = Payment.get_by_id(payment_id)
        accounts.lock_customer(payment.customer_id)
        if payment.processor != OFFLINE:
            raise FormErrors({"reason": "Only a payment taken at the counter is reversed here."})
        if payment.status != SUCCEEDED:
            return False
        left = payment.amount_cents - taken_back(payment.id)
        ref = f"counter:{payment.ref}"  # UNIQUE: a second reversal of the same payment is refused by the table
        if left > 0:
            _reversal(payment, COUNTER_REVERSAL, left, ref, reason, actor)
        _transition(payment.id, REVERSED, failure_code="reversed", failure_message=reason[:255])
        _tell_customer(payment, ref, lambda sp: (
            sp.say("Payment %(ref)s was reversed", ref=payment.ref),
            sp.say("Your payment %(ref)s of %(amount)s (%(method)s) was reversed: %(reason)s", ref=payment.ref,
                   amount=sp.money(payment.amount_cents, payment.currency), method=payment.method_brand,
                   reason=reason)
            + "\n\n" + sp.say("The invoices it paid are open again. Please pay them, or contact us.")))
        return True
