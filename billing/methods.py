"""Saved payment methods: listing, adding through the processor (a setup), default, removal, expiry.

Only the processor's token and display facts (brand or bank, last 4, expiry)
are ever stored. A method is removed by stamping ``removed_at``; old payments
keep pointing at it.
"""
import calendar
import datetime as dt
import secrets
from dataclasses import dataclass

from peewee import IntegrityError

from billing import accounts, bounds, identity, notices, throttle
from billing.errors import FormErrors
from billing.processors import Capability, ProcessorError
from billing.words import N_, Text
from db import database, write_tx
from db.models import (
    AutopayEnrolment,
    Customer,
    DefaultPaymentMethod,
    MethodSetup,
    PaymentMethod,
    User,
    utcnow,
)

SETUP_OPEN = "open"
SETUP_SAVED = "saved"
SETUP_CANCELED = "canceled"
METHOD_TYPES = {"card": "Credit / Debit Card", "ach": "Bank account (ACH)"}


def expires_on(method):
    """The last day a card can be used, or None (bank accounts do not expire)."""
    if method.method_type != "card" or not method.exp_year or not method.exp_month:
        return None
    return dt.date(method.exp_year, method.exp_month, calendar.monthrange(method.exp_year, method.exp_month)[1])


def is_expired(method, on=None):
    """True for a card past its expiry month."""
    end = expires_on(method)
    return end is not None and end < (on or accounts.today())


@dataclass(frozen=True)
class MethodView:
    """A saved method as the payment methods page shows it."""

    method: PaymentMethod
    is_default: bool
    is_autopay: bool
    expires_on: object
    expiring: bool
    expired: bool

    @property
    def label(self):
        kind = self.method.brand or Text(N_("Card") if self.method.method_type == "card" else N_("Bank account"))
        return N_("%(brand)s ending %(last4)s", brand=kind, last4=self.method.last4)


def default_id(customer_id):
    """The id of the customer's default method, or None."""
    row = DefaultPaymentMethod.get_or_none(DefaultPaymentMethod.customer == customer_id)
    return row.payment_method_id if row else None


def saved(customer_id, on=None, notice_days=30):
    """The customer's saved methods, default first, with expiry warnings."""
    on = on or accounts.today()
    enrol = AutopayEnrolment.get_or_none(AutopayEnrolment.customer == customer_id)
    autopay_id = enrol.payment_method_id if enrol and enrol.enabled else None
    default = default_id(customer_id)
    views = []
    for m in PaymentMethod.active_for(customer_id):
        end = expires_on(m)
        views.append(MethodView(
            method=m, is_default=m.id == default, is_autopay=m.id == autopay_id, expires_on=end,
            expired=end is not None and end < on,
            expiring=end is not None and on <= end <= on + dt.timedelta(days=notice_days),
        ))
    return sorted(views, key=lambda v: (not v.is_default, -v.method.id))


def own(customer_id, method_id):
    """The customer's own active method with this id, or None (also for others' ids)."""
    method_id = bounds.parse_id(method_id)
    if method_id is None:
        return None
    return PaymentMethod.active_for(customer_id).where(PaymentMethod.id == method_id).first()


def set_default(customer_id, method_id, actor="customer"):
    """Mark one of the customer's methods as the default."""
    with write_tx():
        method = own(customer_id, method_id)
        if method is None:
            raise FormErrors({"form": N_("That payment method is not on your account.")})
        _make_default(customer_id, method.id)
        accounts.audit(actor, "method.default", "payment_method", method.id)
    return method


def _make_default(customer_id, method_id):
    updated = (DefaultPaymentMethod.update(payment_method=method_id, updated_at=utcnow())
               .where(DefaultPaymentMethod.customer == customer_id).execute())
    if not updated:
        DefaultPaymentMethod.create(customer=customer_id, payment_method=method_id)


def ensure_default(customer_id, method_id):
    """Make this the default when the customer has none yet (inside the caller's transaction)."""
    if default_id(customer_id) is None:
        _make_default(customer_id, method_id)


@dataclass(frozen=True)
class Removed:
    method: PaymentMethod
    autopay_turned_off: bool


def remove(customer_id, method_id, *, user_id, password, actor="customer", ip=""):
    """Remove a saved method once the password is given again; turns autopay off if it used it."""
    user = User.get_by_id(user_id)
    try:
        right = user.customer_id == customer_id and identity.check_password(user, password, ip)
    except throttle.Throttled as e:
        raise FormErrors({"password": e.message()}) from None
    if not right:
        raise FormErrors({"password": N_("That password is not right. Enter the password you log in with.")})
    with write_tx():
        method = own(customer_id, method_id)
        if method is None:
            raise FormErrors({"form": N_("That payment method is not on your account.")})
        PaymentMethod.update(removed_at=utcnow()).where(PaymentMethod.id == method.id).execute()
        DefaultPaymentMethod.delete().where((DefaultPaymentMethod.customer == customer_id)
                                            & (DefaultPaymentMethod.payment_method == method.id)).execute()
        turned_off = autopay_off_for(customer_id, method.id, actor=actor)
        accounts.audit(actor, "method.removed", "payment_method", method.id, autopay_turned_off=turned_off)
    return Removed(method, turned_off)


def make_unusable(customer_id, method_id, *, reason, actor="processor"):
    """The processor says a saved method can no longer be used (a disputed bank debit): inside the caller's
    transaction it is removed as if the customer had, and autopay that used it turns off, saying ``reason``."""
    PaymentMethod.update(removed_at=utcnow()).where(
        (PaymentMethod.id == method_id) & PaymentMethod.removed_at.is_null()).execute()
    DefaultPaymentMethod.delete().where((DefaultPaymentMethod.customer == customer_id)
                                        & (DefaultPaymentMethod.payment_method == method_id)).execute()
    turned_off = autopay_off_for(customer_id, method_id, actor=actor, reason=reason)
    accounts.audit(actor, "method.unusable", "payment_method", method_id, autopay_turned_off=turned_off)
    return turned_off


def method_changed(update, actor="processor"):
    """The processor changed a saved method (``MethodChanged``): a renewed card keeps its place, autopay and
    default with its new expiry and number; a bank account whose mandate ended is not used again, its autopay
    turns off and the customer is told. Safe to repeat; False when nothing changed."""
    with write_tx():
        method = PaymentMethod.get_or_none((PaymentMethod.processor_ref == update.method_token)
                                           & PaymentMethod.removed_at.is_null())
        if method is None:
            return False
        accounts.lock_customer(method.customer_id)
        if not update.usable:
            make_unusable(method.customer_id, method.id, actor=actor,
                          reason=N_("Turned off because the bank account's authorization to debit it ended."))
            notices.method_unusable(method)
            return True
        facts = {k: v for k, v in dict(brand=update.brand, last4=update.last4, exp_month=update.exp_month,
                                       exp_year=update.exp_year).items() if v}
        if not facts or all(getattr(method, k) == v for k, v in facts.items()):
            return False
        PaymentMethod.update(**facts).where(PaymentMethod.id == method.id).execute()
        accounts.audit(actor, "method.updated", "payment_method", method.id,
                       was=f"{method.last4} {method.exp_month}/{method.exp_year}",
                       now=f"{facts.get('last4', method.last4)} {facts.get('exp_month', method.exp_month)}/"
                           f"{facts.get('exp_year', method.exp_year)}")
        return True


def autopay_off_for(customer_id, method_id, actor="customer",
                    reason=N_("Turned off because its payment method was removed.")):
    """A saved method was removed (inside its transaction): autopay that used it turns off; True if it did."""
    changed = AutopayEnrolment.update(
        enabled=False, disabled_at=utcnow(), updated_at=utcnow(), disabled_reason=reason).where(
        (AutopayEnrolment.customer == customer_id) & AutopayEnrolment.enabled
        & (AutopayEnrolment.payment_method == method_id)).execute()
    if changed:
        accounts.audit(actor, "autopay.off", "customer", customer_id, reason="method removed")
    return bool(changed)


# --- Adding a method through the processor's window (no payment). ------------------


def start_setup(customer_id, method_type, processor):
    """Open a setup at the processor for a new card or bank account; returns the MethodSetup."""
    if method_type not in METHOD_TYPES:
        raise FormErrors({"method_type": N_("Choose a card or a bank account.")})
    if not processor.can(Capability.SAVED_METHODS):
        raise FormErrors({"form": N_("To save a method with this processor, tick the box to save it when you "
                                     "make a payment.")})
    with write_tx():
        setup = MethodSetup.create(ref="SET-" + secrets.token_hex(6).upper(), customer=customer_id,
                                   processor=processor.name, method_type=method_type, status=SETUP_OPEN)
    try:
        state = processor.create_setup_intent(method_type=method_type, idempotency_key=f"setup-{setup.ref}",
                                       customer_id=customer_id)
    except ProcessorError:
        with write_tx():
            MethodSetup.update(status=SETUP_CANCELED, updated_at=utcnow()).where(MethodSetup.id == setup.id).execute()
        raise
    with write_tx():
        MethodSetup.update(processor_ref=state.id, updated_at=utcnow()).where(MethodSetup.id == setup.id).execute()
    return MethodSetup.get_by_id(setup.id)


def setup_for(customer_id, ref):
    """The customer's own setup with this reference, or None."""
    return MethodSetup.get_or_none((MethodSetup.ref == ref) & (MethodSetup.customer == customer_id))


def sync_setup(setup, processor, actor="customer"):
    """Ask the processor whether the method was saved; if so, keep it (once) and return the setup."""
    if setup.status != SETUP_OPEN or not setup.processor_ref:
        return setup
    state = processor.retrieve_setup_intent(setup.processor_ref)
    if state.status != "succeeded" or not state.method_token:
        return setup
    with write_tx():
        method = PaymentMethod.get_or_none(PaymentMethod.processor_ref == state.method_token)
        if method is None:
            try:
                with database.atomic():
                    method = PaymentMethod.create(
                        customer=setup.customer_id, processor=setup.processor, processor_ref=state.method_token,
                        method_type=setup.method_type, brand=state.brand, last4=state.last4,
                        exp_month=state.exp_month, exp_year=state.exp_year)
            except IntegrityError:
                method = PaymentMethod.get(PaymentMethod.processor_ref == state.method_token)
        if MethodSetup.update(status=SETUP_SAVED, payment_method=method.id, updated_at=utcnow()).where(
                (MethodSetup.id == setup.id) & (MethodSetup.status == SETUP_OPEN)).execute():
            ensure_default(setup.customer_id, method.id)
            accounts.audit(actor, "method.saved", "payment_method", method.id, setup=setup.ref)
    return MethodSetup.get_by_id(setup.id)


def setup_moved(update, actor="processor"):
    """The processor reports a setup's state (a webhook): one waiting for its bank account to be verified
    emails the customer the way to verify it, once; True when it did. Inside the event's transaction."""
    setup = MethodSetup.get_or_none(MethodSetup.processor_ref == update.setup_id)
    verification = update.state.verification
    if setup is None or setup.status != SETUP_OPEN or verification is None:
        return False
    accounts.audit(actor, "method.awaiting_verification", "method_setup", setup.ref,
                   microdeposit_type=verification.microdeposit_type)
    return notices.setup_verification(setup.customer, setup, update.state) is not None


def sync_setup_of_intent(setup_id, processor, actor="processor"):
    """sync_setup for the setup holding the processor's setup intent ``setup_id``; None when none of ours does."""
    setup = MethodSetup.get_or_none(MethodSetup.processor_ref == setup_id)
    return sync_setup(setup, processor, actor=actor) if setup is not None else None


# --- Expiring cards. --------------------------------------------------------------------------------


def send_expiry_notices(on, notice_days, autopay_ids=frozenset()):
    """Queue one email per saved card that expires within ``notice_days`` of ``on``; returns how many."""
    months, day = set(), on
    while day <= on + dt.timedelta(days=notice_days):
        months.add((day.year, day.month))
        day = (day.replace(day=1) + dt.timedelta(days=32)).replace(day=1)
    if not months:
        return 0
    cond = None
    for year, month in months:
        c = (PaymentMethod.exp_year == year) & (PaymentMethod.exp_month == month)
        cond = c if cond is None else cond | c
    q = (PaymentMethod.select(PaymentMethod, Customer).join(Customer)
         .where(PaymentMethod.removed_at.is_null() & (PaymentMethod.method_type == "card") & cond))
    sent = 0
    for method in q:
        end = expires_on(method)
        if on <= end <= on + dt.timedelta(days=notice_days):
            with write_tx():
                notices.card_expiring(method.customer, method, end, method.id in autopay_ids)
            sent += 1
    return sent
