"""Autopay: enrolment with a recorded authorization, the daily run, failures, retries and notices.

Rules:

- A customer is enrolled with one saved method. Turning autopay on records the
  authorization's words as shown (billing.legal, in the page's language), its
  version and language, the time, the IP address and the browser.
- The run (``flask --app app autopay``, daily from cron) charges each enrolled
  customer's open invoices off-session, oldest first, from ``days_before`` days
  before the due date (0: on the due date).
- Each attempt is an ``autopay_charge`` row, UNIQUE per (invoice, cycle,
  attempt), inserted before anything is charged: of two runs at once, one
  inserts it and charges, the other skips. The cycle is the invoice's due date.
- Invoices already paid, or with a payment pending (an ACH debit settling, or
  the customer paying in the portal right now), are skipped.
- A decline or an expired card is recorded with its reason and retried every
  ``retry_days`` up to ``max_attempts`` in all; never after the customer paid by
  hand. "Authentication required" waits for the customer: the email links to
  the payment, where the bank's check runs on-session.
- Each outcome's email is queued in the transaction that records it.
- A convenience fee is charged only when the authorization the customer accepted names the ISP's current
  fee for the method's type (``fee_authorized``). A fee turned on or changed after that acceptance is not
  charged: the invoice is still paid, without the fee, the Payment methods page asks the customer to accept
  the new terms, and they are emailed once per authorization and fee.
"""
import datetime as dt
import time
from dataclasses import dataclass, field

from peewee import JOIN, IntegrityError, fn

from billing import accounts, fees, ledger, legal, methods, money, notices, payments
from billing import processors as proc
from billing.words import N_
from db import database, write_tx
from db.compiled import Arg, Compiled
from db.models import (
    AutopayAuthorization,
    AutopayCharge,
    AutopayEnrolment,
    AutopayPolicy,
    Customer,
    Invoice,
    Isp,
    Outbox,
    Payment,
    PaymentInvoice,
    PaymentMethod,
    utcnow,
)

CHARGING = "charging"
PROCESSING = "processing"
CHARGED = "charged"
FAILED = "failed"
ACTION_REQUIRED = "action_required"
CANCELED = "canceled"
HANDLED = (CHARGING, PROCESSING, CHARGED, ACTION_REQUIRED)
# An on-session payment touched this recently means the customer is paying right now.
ON_SESSION_GRACE = dt.timedelta(minutes=30)

# --- The ISP's policy. --------------------------------------------------------------------------------


def policy():
    """The ISP's autopay policy (defaults until set)."""
    return AutopayPolicy.current()


def set_policy(**changes):
    """Change the ISP's autopay policy; returns it."""
    allowed = {"days_before", "max_attempts", "retry_days", "upcoming_notice_days", "expiry_notice_days"}
    changes = {k: v for k, v in changes.items() if v is not None}
    bad = set(changes) - allowed
    if bad:
        raise ValueError(f"unknown setting(s): {', '.join(sorted(bad))}")
    if changes.get("max_attempts", 1) < 1 or changes.get("retry_days", 1) < 1 or any(
            v < 0 for v in changes.values()):
        raise ValueError("max_attempts and retry_days must be at least 1; days cannot be negative")
    with write_tx():
        row = AutopayPolicy.select().order_by(AutopayPolicy.id).first()
        if row is None:
            row = AutopayPolicy.create(**changes)
        else:
            AutopayPolicy.update(updated_at=utcnow(), **changes).where(AutopayPolicy.id == row.id).execute()
        accounts.audit("staff", "autopay.policy", "autopay_policy", row.id, **changes)
    return policy()


def when_text(pol):
    """When autopay charges, in words."""
    if pol.days_before == 0:
        return N_("on its due date")
    if pol.days_before == 1:
        return N_("1 day before its due date")
    return N_("%(days)s days before its due date", days=pol.days_before)


def authorization(lang="en", pol=None):
    """The autopay authorization the customer accepts in ``lang`` (billing.legal), for the current policy and
    the ISP's convenience fees."""
    return legal.autopay(lang, pol or policy(), Isp.current() or Isp(name="the ISP"))


def authorization_text(pol=None, lang="en"):
    """The words of the autopay authorization in ``lang``, for the current policy and the ISP's convenience fees."""
    return authorization(lang, pol).text


def fee_authorized(auth, method_type, isp=None):
    """Whether the accepted authorization ``auth`` names the ISP's current fee for ``method_type`` (or none is due).

    The accepted text is kept word for word, so the fee sentence it carried is looked for in it, in any of the
    languages the authorization is written in, with any ISP name (a rename is not a new fee). A fee that is
    off needs no agreement.
    """
    isp = isp or Isp.current() or Isp(name="the ISP")
    rule = fees.rule_for(isp, method_type)
    if not rule.on:
        return True
    if auth is None:
        return False
    return legal.names_fee(auth.text, method_type, rule, isp.currency)


def autopay_fee(auth, method_type, amount_cents, isp=None):
    """The fee an autopay charge of ``amount_cents`` carries: the ISP's rule if ``auth`` agreed to it, else 0."""
    isp = isp or Isp.current()
    return fees.fee_cents(isp, method_type, amount_cents) if fee_authorized(auth, method_type, isp) else 0


def _unagreed_fee(enrol, method):
    """The fee rule (a ``fees.FeeRule``) that this enrolment's autopay runs on without the customer's
    agreement; None when there is none (the page writes it in the customer's language). ``enrol`` and ``method`` are already loaded (status reads them in one statement); the
    authorization is read only when a fee is on for the method's type."""
    if method is None or not enrol.enabled:
        return None
    isp = Isp.current()
    rule = fees.rule_for(isp, method.method_type)
    if not rule.on:
        return None
    auth = AutopayAuthorization.get_or_none(AutopayAuthorization.id == enrol.authorization_id)
    return None if fee_authorized(auth, method.method_type, isp) else rule


# --- Enrolment. --------------------------------------------------------------------------------------


def enrolment(customer_id):
    """The customer's enrolment row, or None."""
    return AutopayEnrolment.get_or_none(AutopayEnrolment.customer == customer_id)


def record_acceptance(customer_id, *, source, ip="", user_agent="", payment_id=None, method_id=None, lang="en"):
    """Record that the customer accepted the current authorization, word for word in the language it was shown
    in, with its version (call inside write_tx())."""
    accepted = authorization(lang)
    return AutopayAuthorization.create(
        customer=customer_id, payment=payment_id, payment_method=method_id, source=source,
        text_version=accepted.version, language=accepted.language, text=accepted.text, ip=(ip or "")[:255],
        user_agent=(user_agent or "")[:512])


def accept_at_billing(payment, *, ip, user_agent, lang="en"):
    """The save-for-autopay box was ticked at the billing step: keep the acceptance for when it succeeds."""
    if not payment.save_for_autopay:
        return None
    with write_tx():
        existing = AutopayAuthorization.get_or_none(AutopayAuthorization.payment == payment.id)
        if existing is not None:
            return existing
        try:
            with database.atomic():
                return record_acceptance(payment.customer_id, source="billing", ip=ip, user_agent=user_agent,
                                         payment_id=payment.id, lang=lang)
        except IntegrityError:  # the same form, submitted twice at once
            return AutopayAuthorization.get(AutopayAuthorization.payment == payment.id)


def _enable(customer_id, method_id, authorization_id, actor, text_version):
    now = utcnow()
    fields = dict(payment_method=method_id, authorization=authorization_id, enabled=True, enrolled_at=now,
                  disabled_at=None, disabled_reason="", updated_at=now)
    if not AutopayEnrolment.update(**fields).where(AutopayEnrolment.customer == customer_id).execute():
        AutopayEnrolment.create(customer=customer_id, **fields)
    methods.ensure_default(customer_id, method_id)
    accounts.audit(actor, "autopay.on", "customer", customer_id, payment_method=method_id,
                   authorization=authorization_id, text_version=text_version)


def turn_on(customer_id, method_id, *, accepted, ip="", user_agent="", actor="customer", lang="en"):
    """Turn autopay on with one of the customer's saved methods, recording the authorization (shown in ``lang``)."""
    errors = {}
    method = methods.own(customer_id, method_id)
    if method is None:
        errors["method"] = N_("Choose one of your saved payment methods.")
    elif methods.is_expired(method):
        errors["method"] = N_("That card has expired. Add a new card first.")
    if not accepted:
        errors["accepted"] = N_("Tick the box to accept the autopay authorization.")
    if errors:
        raise payments.FormErrors(errors)
    with write_tx():
        auth = record_acceptance(customer_id, source="methods", ip=ip, user_agent=user_agent, method_id=method.id,
                                 lang=lang)
        _enable(customer_id, method.id, auth.id, actor, auth.text_version)
    return enrolment(customer_id)


def turn_off(customer_id, reason=N_("Turned off by you."), actor="customer"):
    """Turn autopay off, at once; returns True if it was on."""
    with write_tx():
        changed = AutopayEnrolment.update(enabled=False, disabled_at=utcnow(), disabled_reason=reason,
                                          updated_at=utcnow()).where(
            (AutopayEnrolment.customer == customer_id) & AutopayEnrolment.enabled).execute()
        if changed:
            accounts.audit(actor, "autopay.off", "customer", customer_id, reason=reason)
    return bool(changed)


method_removed = methods.autopay_off_for  # kept importable under its old name


def _enrol_from_payment(payment):
    """A payment with the save-for-autopay box succeeded: autopay now uses its method."""
    if not (payment.save_for_autopay and payment.payment_method_id):
        return
    auth = AutopayAuthorization.get_or_none(AutopayAuthorization.payment == payment.id)
    if auth is None:
        return  # no recorded acceptance, so no autopay (the method is still saved)
    AutopayAuthorization.update(payment_method=payment.payment_method_id).where(
        AutopayAuthorization.id == auth.id).execute()
    _enable(payment.customer_id, payment.payment_method_id, auth.id, actor=f"payment:{payment.ref}",
            text_version=auth.text_version)


# --- What the customer sees. ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Status:
    """Autopay on the Home page: on or off, with which method, and the next charge."""

    enabled: bool
    method: object
    next_on: object
    next_cents: int
    next_invoices: list
    when: str
    disabled_reason: str = ""
    unagreed_fee: object = None  # the fees.FeeRule the customer's authorization does not name (charged without it)


def _cycle(invoice):
    return invoice.due_date.isoformat()


def _charges_by_invoice(invoice_ids):
    """{invoice id: [charges of its current cycle, by attempt]}."""
    found = {}
    if not invoice_ids:
        return found
    q = (AutopayCharge.select(AutopayCharge, Invoice.id, Invoice.due_date).join(Invoice)
         .where(AutopayCharge.invoice.in_(list(invoice_ids))).order_by(AutopayCharge.attempt))
    for row in q:
        if row.cycle == row.invoice.due_date.isoformat():
            found.setdefault(row.invoice.id, []).append(row)
    return found


def _pending(invoice_ids):
    return accounts.pending_by_invoice(invoice_ids)


# The policy, the customer's enrolment and its method, in one statement (the Home page asks on every load).
_FIRST_POLICY = AutopayPolicy.alias()
_STATUS = Compiled(lambda: (
    Customer.select(Customer.id, AutopayEnrolment, PaymentMethod, AutopayPolicy)
    .join(AutopayEnrolment, JOIN.LEFT_OUTER, on=(AutopayEnrolment.customer == Customer.id), attr="enrol")
    .join(PaymentMethod, JOIN.LEFT_OUTER, on=(AutopayEnrolment.payment_method == PaymentMethod.id), attr="method")
    .switch(Customer)
    .join(AutopayPolicy, JOIN.LEFT_OUTER, attr="pol",
          on=(AutopayPolicy.id == _FIRST_POLICY.select(fn.MIN(_FIRST_POLICY.id))))
    .where(Customer.id == Arg(0)).limit(1)))


def status(customer_id, on=None):
    """Whether autopay is on, its method, and the next date and amount it will charge."""
    on = on or accounts.today()
    row = _STATUS.first(customer_id)
    pol = getattr(row, "pol", None) or AutopayPolicy()
    enrol = getattr(row, "enrol", None)
    if enrol is None or not enrol.enabled:
        return Status(False, None, None, 0, [], when_text(pol), enrol.disabled_reason if enrol else "")
    method = getattr(enrol, "method", None)
    invoices = list(Invoice.open_for(customer_id))
    charges = _charges_by_invoice([i.id for i in invoices])
    pending = _pending([i.id for i in invoices])
    plan = []
    for inv in invoices:
        cents = ledger.balance_of(inv.total_cents, inv.paid_cents) - pending.get(inv.id, 0)
        if cents <= 0:
            continue
        tries = charges.get(inv.id, [])
        last = tries[-1] if tries else None
        if last is None:
            charge_on = max(inv.due_date - dt.timedelta(days=pol.days_before), on)
        elif last.status == FAILED and last.retry_on and last.attempt < pol.max_attempts:
            charge_on = max(last.retry_on, on)
        else:
            continue
        plan.append((charge_on, inv, cents))
    unagreed = _unagreed_fee(enrol, method)
    if not plan:
        return Status(True, method, None, 0, [], when_text(pol), unagreed_fee=unagreed)
    first = min(p[0] for p in plan)
    chosen = [(inv, cents) for day, inv, cents in plan if day == first]
    return Status(True, method, first, sum(c for _, c in chosen), [inv for inv, _ in chosen], when_text(pol),
                  unagreed_fee=unagreed)


@dataclass(frozen=True)
class Alert:
    """An autopay charge that failed and is still unpaid: shown as a banner with a link to pay."""

    invoice: Invoice
    amount_cents: int
    reason: str
    needs_action: bool
    pay_path: str
    retry_on: object


_ALERTS = Compiled(lambda: (
    AutopayCharge.select().where((AutopayCharge.customer == Arg(0)) & AutopayCharge.status.in_([FAILED, ACTION_REQUIRED]))
    .order_by(AutopayCharge.id.desc()).limit(20)))


def alerts(customer_id):
    """Failed or waiting autopay charges whose invoice is still unpaid, for the portal's banner."""
    rows = _ALERTS.rows(customer_id)
    if not rows:
        return []
    open_ids = {inv.id: inv for inv in Invoice.open_for(customer_id)}
    latest = _charges_by_invoice(open_ids)
    found = []
    for row in rows:
        tries = latest.get(row.invoice_id)
        if row.invoice_id not in open_ids or not tries or tries[-1].id != row.id:
            continue
        path = _pay_path(row)
        found.append(Alert(open_ids[row.invoice_id], row.amount_cents, row.reason_message,
                           row.status == ACTION_REQUIRED, path, row.retry_on))
    return found


def _pay_path(charge):
    # Once reconcile has given the waiting charge up (payments.OFF_SESSION_CLAIM_TTL), the invoice is paid afresh.
    if charge.status == ACTION_REQUIRED and charge.payment_id and charge.payment.status == payments.AWAITING_DETAILS:
        return f"/payments/{charge.payment.ref}"
    return f"/invoices/{charge.invoice_id}/pay"


# --- Outcomes, from the payment state machine (inside its transaction). --------------------------------


def payment_moved(payment_id, status_):
    """A payment moved (called by billing.payments in the same transaction): emails and autopay records."""
    payment = Payment.get_by_id(payment_id)
    charge = AutopayCharge.get_or_none(AutopayCharge.payment == payment_id)
    if charge is None:
        applied = payments.applied_to(payment)
        if status_ == payments.SUCCEEDED:
            receipt = notices.ach_settled if payment.method_type == "ach" else notices.payment_receipt
            receipt(payment, applied, credit_cents=payments.credit_from(payment))
            _enrol_from_payment(payment)
        elif status_ == payments.PROCESSING:
            notices.ach_pending(payment, applied)
        elif status_ == payments.AWAITING_VERIFICATION:
            notices.bank_verification(payment, applied)
        elif status_ == payments.FAILED and payment.method_type == "ach":
            notices.ach_failed(payment)
        return
    customer = Customer.get_by_id(payment.customer_id)
    if status_ == payments.SUCCEEDED:
        _set(charge, CHARGED)
        notices.autopay_charged(customer, payment, charge.invoice, charge.id)
    elif status_ == payments.PROCESSING:
        _set(charge, PROCESSING)
        notices.ach_pending(payment, payments.applied_to(payment))
    elif status_ == payments.FAILED:
        _fail(charge, payment.failure_code or "failed", payment.failure_message or "The payment failed.")


def _set(charge, status_, **fields):
    AutopayCharge.update(status=status_, updated_at=utcnow(), **fields).where(
        AutopayCharge.id == charge.id).execute()


def _fail(charge, code, message, on=None):
    """Record a failed attempt with its reason, plan the retry, and email the customer."""
    pol = policy()
    on = on or max(charge.run_on, accounts.today())
    retry_on = on + dt.timedelta(days=pol.retry_days) if charge.attempt < pol.max_attempts else None
    _set(charge, FAILED, reason_code=code[:255], reason_message=message[:255], retry_on=retry_on)
    customer = Customer.get_by_id(charge.customer_id)
    charge = AutopayCharge.get_by_id(charge.id)
    notices.autopay_failed(customer, charge.invoice, charge.amount_cents, message,
                           notices.link(_pay_path(charge)), retry_on, charge.id)


def _needs_action(charge, payment):
    message = "Your bank asked you to confirm this payment."
    _set(charge, ACTION_REQUIRED, reason_code="authentication_required", reason_message=message, retry_on=None)
    charge = AutopayCharge.get_by_id(charge.id)
    notices.autopay_failed(Customer.get_by_id(charge.customer_id), charge.invoice, charge.amount_cents, message,
                           notices.link(f"/payments/{payment.ref}"), None, charge.id, needs_action=True)


# --- The run. -------------------------------------------------------------------------------------------


@dataclass
class RunSummary:
    """What one run did."""

    considered: int = 0
    charged: int = 0
    processing: int = 0
    failed: int = 0
    skipped: int = 0
    errors: int = 0
    total_cents: int = 0
    upcoming_notices: int = 0
    reauthorize_notices: int = 0
    expiry_notices: int = 0
    dry_run: bool = False
    seconds: float = 0.0
    skip_reasons: dict = field(default_factory=dict)

    def skip(self, reason):
        self.skipped += 1
        self.skip_reasons[reason] = self.skip_reasons.get(reason, 0) + 1

    def line(self, currency="USD"):
        verb = "would charge" if self.dry_run else "charged"
        text = (f"{verb} {self.charged}, failed {self.failed}, skipped {self.skipped}, "
                f"total {money.format_money(self.total_cents, currency)}")
        if self.processing:
            text += f" ({self.processing} bank debit(s) processing, counted in the total)"
        if self.errors:
            text += f"; {self.errors} error(s), left to finish on the next run"
        return text


@dataclass(frozen=True)
class _Candidate:
    invoice: Invoice
    method: PaymentMethod
    balance_cents: int
    authorization_id: int = None


def _candidates(horizon):
    """Open invoices of enrolled customers due by ``horizon``, oldest first per customer."""
    q = (Invoice.select(Invoice, AutopayEnrolment.payment_method.alias("autopay_method_id"),
                    AutopayEnrolment.authorization.alias("autopay_authorization_id"))
         .join(AutopayEnrolment, on=(AutopayEnrolment.customer == Invoice.customer))
         .where(AutopayEnrolment.enabled & (Invoice.void == False)  # noqa: E712
                & (Invoice.due_date <= horizon) & (Invoice.total_cents > Invoice.paid_cents))
         .order_by(Invoice.customer, Invoice.due_date, Invoice.number))
    rows = list(q.objects())
    method_ids = {r.autopay_method_id for r in rows if r.autopay_method_id}
    by_id = {m.id: m for m in PaymentMethod.select().where(PaymentMethod.id.in_(list(method_ids))
                                                           & PaymentMethod.removed_at.is_null())}
    return [_Candidate(r, by_id.get(r.autopay_method_id), r.total_cents - r.paid_cents, r.autopay_authorization_id)
            for r in rows]


def _busy_customers(now):
    """Customers paying in the portal right now (an on-session payment touched recently)."""
    q = (Payment.select(Payment.customer).distinct().join(AutopayCharge, join_type=JOIN.LEFT_OUTER,
                                                           on=(AutopayCharge.payment == Payment.id))
         .where(Payment.status.in_([payments.CREATED, payments.AWAITING_DETAILS])
                & (Payment.updated_at >= now - ON_SESSION_GRACE) & AutopayCharge.id.is_null()))
    return {p.customer_id for p in q}


def _paid_by_hand_since(customer_id, since):
    return (Payment.select().join(AutopayCharge, join_type=JOIN.LEFT_OUTER, on=(AutopayCharge.payment == Payment.id))
            .where((Payment.customer == customer_id) & (Payment.status.in_([payments.SUCCEEDED, payments.PROCESSING]))
                   & (Payment.updated_at > since) & AutopayCharge.id.is_null()).exists())


def _decide(c, tries, pending_cents, busy, on, pol):
    """(attempt number to make, or None, and the reason to skip)."""
    if c.method is None:
        return None, "no usable method"
    if pending_cents:
        return None, "payment pending"
    if c.invoice.customer_id in busy:
        return None, "customer is paying in the portal"
    if c.balance_cents - pending_cents <= 0:
        return None, "nothing to pay"
    last = tries[-1] if tries else None
    if last is None:
        return 1, ""
    if last.status in HANDLED:
        return None, "already charged this cycle" if last.status in (CHARGED, PROCESSING) else f"{last.status}"
    if last.attempt >= pol.max_attempts:
        return None, "no attempts left"
    if last.retry_on and last.retry_on > on:
        return None, "retry not due yet"
    if _paid_by_hand_since(c.invoice.customer_id, last.updated_at):
        return None, "paid by hand after a failure"
    return last.attempt + 1, ""


def _charge(c, attempt, on, processor, summary, echo, actor):
    """Insert the attempt's UNIQUE row, then charge; a concurrent run that lost the insert skips."""
    try:
        payment, charge = _record_attempt(c, attempt, on, processor, summary, echo, actor)
    except payments.NoLongerFits:
        summary.skip("more than is owed now")  # the portal's one rule (payments.check_fits) said no
        return
    if payment is not None:
        _finish(charge.id, payment, processor, summary, echo, actor)


def _record_attempt(c, attempt, on, processor, summary, echo, actor):
    """The attempt's row and its payment, claimed for charging; (None, None) when skipped or failed."""
    inv, method = c.invoice, c.method
    cycle = _cycle(inv)
    with write_tx():
        view = accounts.invoice_view(inv.customer_id, inv.id, on=on)
        cents = view.balance_cents - view.pending_cents if view else 0
        if cents <= 0:
            summary.skip("paid meanwhile")
            return None, None
        try:
            with database.atomic():
                charge = AutopayCharge.create(
                    customer=inv.customer_id, invoice=inv.id, cycle=cycle, attempt=attempt,
                    payment_method=method.id, amount_cents=cents, currency=inv.currency, status=CHARGING,
                    run_on=on)
        except IntegrityError:
            summary.skip("charged by another run")
            return None, None
        if methods.is_expired(method, on):
            end = methods.expires_on(method)
            _fail(charge, "expired_card", f"Your saved card expired at the end of {end:%B %Y}.", on=on)
            summary.failed += 1
            echo(f"  failed  {inv.number}: card ending {method.last4} expired")
            return None, None
        auth = AutopayAuthorization.get_or_none(AutopayAuthorization.id == c.authorization_id)
        isp = Isp.current()
        fee = autopay_fee(auth, method.method_type, cents, isp)
        if not fee and fees.fee_cents(isp, method.method_type, cents):
            _ask_to_reauthorize(inv.customer_id, auth, method.method_type, isp)
        payment = payments.create_off_session(
            inv.customer_id, method=method, amount_cents=cents, invoice_id=inv.id,
            idempotency_key=f"autopay-{inv.id}-{cycle}-{attempt}", processor_name=processor.name, actor=actor,
            fee_cents=fee)
        _set(charge, CHARGING, payment=payment.id)
    return payment, charge


def _finish(charge_id, payment, processor, summary, echo, actor):
    """Charge the recorded payment and apply the processor's answer with its record and email."""
    try:
        state = payments.charge_off_session(payment, processor)
    except proc.ProcessorError as e:
        with write_tx():
            payments.cancel(payment, actor=actor)
            _fail(AutopayCharge.get_by_id(charge_id), "processor_error", f"The payment processor refused: {e}")
        summary.failed += 1
        echo(f"  failed  {payment.ref}: processor error: {e}")
        return
    with write_tx():
        payment = payments.apply_off_session_state(payment.id, state, actor=actor)
        if payment.status == payments.AWAITING_DETAILS and state.status == proc.REQUIRES_ACTION:
            _needs_action(AutopayCharge.get_by_id(charge_id), payment)
        charge = AutopayCharge.get_by_id(charge_id)
    if charge.status in (CHARGED, PROCESSING):
        summary.charged += 1
        summary.processing += charge.status == PROCESSING
        summary.total_cents += charge.amount_cents
    else:
        summary.failed += 1
        echo(f"  {'waiting' if charge.status == ACTION_REQUIRED else 'failed '} {payment.ref} "
             f"({money.format_money(charge.amount_cents, charge.currency)}): {charge.reason_message}")


def resume_interrupted(processor, summary, echo, actor="autopay", older_than=dt.timedelta(minutes=10)):
    """Finish attempts a crashed run left in 'charging' (the processor's idempotency key makes this safe)."""
    stuck = list(AutopayCharge.select().where((AutopayCharge.status == CHARGING)
                                              & (AutopayCharge.updated_at < utcnow() - older_than)))
    for charge in stuck:
        if charge.payment_id is None:
            with write_tx():
                _set(charge, CANCELED, reason_message="Interrupted before charging.")
            continue
        echo(f"  resuming {charge.payment.ref}")
        _finish(charge.id, Payment.get_by_id(charge.payment_id), processor, summary, echo, actor)


def _ask_to_reauthorize(customer_id, auth, method_type, isp):
    """Email the customer once (per authorization and fee rule) that a fee awaits their agreement; audited."""
    rule = fees.rule_for(isp, method_type)
    key = (f"autopay-reauthorize-{customer_id}-{auth.id if auth else 0}-{method_type}-"
           f"{rule.percent_bp}-{rule.fixed_cents}")
    if Outbox.select().where(Outbox.dedupe_key == key).exists():
        return False
    notices.autopay_reauthorize(Customer.get_by_id(customer_id), method_type, rule, key)
    accounts.audit("autopay", "autopay.fee_not_agreed", "customer", customer_id, method_type=method_type,
                   authorization=auth.id if auth else None, rule=rule.describe(isp.currency))
    return True


def send_reauthorize_notices():
    """Email, once, each enrolled customer whose authorization does not name the fee now due; returns how many."""
    isp = Isp.current()
    if not fees.rules(isp, legal.FEE_TYPES):
        return 0
    q = (AutopayEnrolment.select(AutopayEnrolment, PaymentMethod, AutopayAuthorization)
         .join(PaymentMethod, on=(AutopayEnrolment.payment_method == PaymentMethod.id))
         .switch(AutopayEnrolment)
         .join(AutopayAuthorization, JOIN.LEFT_OUTER, on=(AutopayEnrolment.authorization == AutopayAuthorization.id))
         .where(AutopayEnrolment.enabled & PaymentMethod.removed_at.is_null()))
    sent = 0
    for enrol in q:
        method = enrol.payment_method
        auth = enrol.authorization if enrol.authorization_id else None
        if fee_authorized(auth, method.method_type, isp):
            continue
        with write_tx():
            sent += _ask_to_reauthorize(enrol.customer_id, auth, method.method_type, isp)
    return sent


def send_upcoming_notices(on, pol):
    """Email customers whose autopay charge is due within the notice period (once per invoice and cycle)."""
    if pol.upcoming_notice_days <= 0:
        return 0
    start = on + dt.timedelta(days=pol.days_before + 1)
    end = on + dt.timedelta(days=pol.days_before + pol.upcoming_notice_days)
    candidates = [c for c in _candidates(end) if c.invoice.due_date >= start and c.method is not None]
    keys = {f"autopay-upcoming-{c.invoice.id}-{_cycle(c.invoice)}" for c in candidates}
    done = {o.dedupe_key for o in Outbox.select(Outbox.dedupe_key).where(Outbox.dedupe_key.in_(list(keys)))} \
        if keys else set()
    sent = 0
    for c in candidates:
        if f"autopay-upcoming-{c.invoice.id}-{_cycle(c.invoice)}" in done or c.balance_cents <= 0:
            continue
        charge_on = c.invoice.due_date - dt.timedelta(days=pol.days_before)
        auth = AutopayAuthorization.get_or_none(AutopayAuthorization.id == c.authorization_id)
        with write_tx():
            notices.autopay_upcoming(Customer.get_by_id(c.invoice.customer_id), c.invoice, c.balance_cents,
                                     charge_on, c.method, _cycle(c.invoice),
                                     fee=autopay_fee(auth, c.method.method_type, c.balance_cents))
        sent += 1
    return sent


def run(processor, on=None, dry_run=False, echo=print, progress_every=1000, actor="autopay"):
    """Charge every due autopay invoice once; returns a RunSummary. ``dry_run`` changes nothing."""
    started = time.perf_counter()
    on = on or accounts.today()
    pol = policy()
    summary = RunSummary(dry_run=dry_run)
    if not dry_run:
        resume_interrupted(processor, summary, echo, actor)
    candidates = _candidates(on + dt.timedelta(days=pol.days_before))
    ids = [c.invoice.id for c in candidates]
    tries, pending = {}, {}
    for i in range(0, len(ids), 500):  # stay under SQLite's bound-parameter limit
        tries.update(_charges_by_invoice(ids[i:i + 500]))
        pending.update(_pending(ids[i:i + 500]))
    busy = _busy_customers(utcnow())
    total = len(candidates)
    echo(f"autopay {on.isoformat()}: {total} open invoice(s) of enrolled customers due by "
         f"{(on + dt.timedelta(days=pol.days_before)).isoformat()}{' (dry run)' if dry_run else ''}")
    for n, c in enumerate(candidates, 1):
        summary.considered += 1
        attempt, reason = _decide(c, tries.get(c.invoice.id, []), pending.get(c.invoice.id, 0), busy, on, pol)
        if attempt is None:
            summary.skip(reason)
        elif dry_run:
            summary.charged += 1
            summary.total_cents += c.balance_cents
            echo(f"  would charge {c.invoice.number} {money.format_money(c.balance_cents, c.invoice.currency)} "
                 f"(attempt {attempt}) to {c.method.brand} ending {c.method.last4}")
        else:
            try:
                _charge(c, attempt, on, processor, summary, echo, actor)
            except Exception as e:  # one customer's trouble must not stop everyone else's autopay
                summary.errors += 1
                echo(f"  error   {c.invoice.number}: {e!r}; the next run finishes it")
        if progress_every and n % progress_every == 0:
            echo(f"  {n}/{total} … charged {summary.charged}, failed {summary.failed}, skipped {summary.skipped}")
    if not dry_run:
        summary.upcoming_notices = send_upcoming_notices(on, pol)
        summary.reauthorize_notices = send_reauthorize_notices()
        autopay_ids = {e.payment_method_id for e in AutopayEnrolment.select(AutopayEnrolment.payment_method)
                       .where(AutopayEnrolment.enabled)}
        summary.expiry_notices = methods.send_expiry_notices(on, pol.expiry_notice_days, autopay_ids)
        with write_tx():
            accounts.audit(actor, "autopay.run", "autopay", on.isoformat(), charged=summary.charged,
                           failed=summary.failed, skipped=summary.skipped, total_cents=summary.total_cents)
    summary.seconds = time.perf_counter() - started
    return summary
