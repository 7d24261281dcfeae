"""The built-in sandbox processor: the whole processor interface, with Stripe's test values.

It keeps its own tables (``sandbox_*``), serves its own entry page (see
``views/sandbox.py``), and tells the portal about outcomes through HMAC-signed
webhooks, exactly as a remote processor would: payments, 3-D Secure, ACH that
settles or is returned later, saved methods charged on and off session, refunds
(full and partial) and disputes with their outcomes. Card and account numbers are
checked here and then dropped: only brand, last 4 and expiry are kept.
"""
import datetime as dt
import hashlib
import hmac
import json
import re
import secrets
import time

from billing.processors.interface import (
    CANCELED,
    FAILED,
    PROCESSING,
    REQUIRES_ACTION,
    MICRODEPOSIT_AMOUNTS,
    MICRODEPOSIT_DESCRIPTOR_CODE,
    REQUIRES_PAYMENT_METHOD,
    REQUIRES_VERIFICATION,
    SUCCEEDED,
    BadWebhook,
    BankVerification,
    Capability,
    DisputeUpdate,
    IntentState,
    IntentUpdate,
    Processor,
    ProcessorError,
    ProcessorEvent,
    Refund,
    RefundsUpdate,
    SetupUpdate,
)
from billing.words import N_
from db import write_tx
from db.models import SandboxDispute, SandboxEvent, SandboxIntent, SandboxMethod, SandboxRefund, utcnow

SIGNATURE_HEADER = "Sandbox-Signature"
SIGNATURE_TOLERANCE = 300

# Test numbers and what they do (documented in the README).
CARD_BEHAVIOUR = {
    "4242424242424242": "ok",
    "4000000000000259": "dispute",  # succeeds, then the cardholder disputes it (Stripe's "fraudulent" card)
    "4000000000000002": "declined",
    "4000000000009995": "insufficient_funds",
    "4000002760003184": "authenticate",
}
ACH_BEHAVIOUR = {"000111111116": "R03", "000222222227": "R01",
                 # The account must be verified first, by the two deposits' amounts or by the one deposit's code.
                 "000555555559": MICRODEPOSIT_AMOUNTS, "000666666664": MICRODEPOSIT_DESCRIPTOR_CODE}
VERIFY_BEHAVIOURS = (MICRODEPOSIT_AMOUNTS, MICRODEPOSIT_DESCRIPTOR_CODE)
# What the customer types on the verification page, and what it does: Stripe's test values. In test mode the
# deposits are there at once; the right ones verify, the others stand for a customer out of tries or too late.
MICRODEPOSIT_TEST_VALUES = {
    MICRODEPOSIT_AMOUNTS: {(32, 45): "verified", (10, 11): "attempts_exceeded", (40, 41): "timeout"},
    MICRODEPOSIT_DESCRIPTOR_CODE: {"SM11AA": "verified", "SM33CC": "attempts_exceeded", "SM44DD": "timeout"},
}
VERIFY_ATTEMPTS = {MICRODEPOSIT_AMOUNTS: 3, MICRODEPOSIT_DESCRIPTOR_CODE: 10}  # Stripe's limits
VERIFY_WITHIN = dt.timedelta(days=10)  # Stripe: the account must be verified within 10 days
VERIFY_FAILURES = {
    "attempts_exceeded": ("payment_method_microdeposit_verification_attempts_exceeded",
                          N_("The bank account could not be verified: too many wrong tries.")),
    "timeout": ("payment_method_microdeposit_verification_timeout",
                N_("The bank account was not verified in time.")),
}
DECLINES = {
    "declined": ("card_declined", "Your card was declined."),
    "insufficient_funds": ("insufficient_funds", "Your card has insufficient funds."),
    "authentication_failed": ("authentication_failed", "We could not authenticate this payment. "
                              "Try again or use another card."),
}
ACH_RETURNS = {
    "R01": "The bank returned the debit: insufficient funds (R01).",
    "R03": "The bank returned the debit: no account or unable to locate the account (R03).",
}
# The sandbox names its own test bank: a portal not using Stripe must not show "STRIPE TEST BANK".
BANK_NAMES = {"110000000": "Sandbox Test Bank"}

_DIGITS = re.compile(r"^[0-9]+$", re.ASCII)


def _id(prefix):
    return f"{prefix}_{secrets.token_hex(12)}"


def luhn_ok(number):
    """True when a digit string passes the Luhn checksum."""
    total = 0
    for i, ch in enumerate(reversed(number)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def routing_ok(routing):
    """True when a 9-digit ABA routing number passes its checksum."""
    if len(routing) != 9 or not _DIGITS.match(routing):
        return False
    d = [int(c) for c in routing]
    return (3 * (d[0] + d[3] + d[6]) + 7 * (d[1] + d[4] + d[7]) + d[2] + d[5] + d[8]) % 10 == 0


def card_brand(number):
    """The card network, from the number's prefix."""
    if number.startswith("4"):
        return "Visa"
    if number[:2] in {"34", "37"}:
        return "American Express"
    if number[:2] in {"51", "52", "53", "54", "55"} or 2221 <= int(number[:4] or 0) <= 2720:
        return "Mastercard"
    if number.startswith("6011") or number.startswith("65"):
        return "Discover"
    return "Card"


def check_card(number, expiry, cvc, zip_code, today=None):
    """Validate card fields; return (facts, errors by field). Never logs the number."""
    today = today or dt.date.today()
    errors = {}
    number = re.sub(r"[ -]", "", number or "")
    if not number:
        errors["number"] = "Enter the card number."
    elif not _DIGITS.match(number) or not 12 <= len(number) <= 19 or not luhn_ok(number):
        errors["number"] = "That card number is not valid. Check it and try again."
    m = re.match(r"^\s*([0-9]{1,2})\s*/\s*([0-9]{2}|[0-9]{4})\s*$", expiry or "", re.ASCII)
    month = year = None
    if not m:
        errors["expiry"] = "Enter the expiry date as MM / YY."
    else:
        month, year = int(m.group(1)), int(m.group(2))
        year += 2000 if year < 100 else 0
        if not 1 <= month <= 12:
            errors["expiry"] = "The expiry month must be 01 to 12."
        elif (year, month) < (today.year, today.month):
            errors["expiry"] = "This card has expired."
        elif year > today.year + 25:
            errors["expiry"] = "The expiry year is too far ahead."
    brand = card_brand(number) if "number" not in errors else ""
    cvc_len = 4 if brand == "American Express" else 3
    if not re.match(rf"^[0-9]{{{cvc_len}}}$", (cvc or "").strip(), re.ASCII):
        errors["cvc"] = f"Enter the {cvc_len}-digit security code."
    if not re.match(r"^[0-9]{5}(-[0-9]{4})?$", (zip_code or "").strip(), re.ASCII):
        errors["zip"] = "Enter a 5-digit ZIP code."
    if errors:
        return None, errors
    facts = {
        "brand": brand, "last4": number[-4:], "exp_month": month, "exp_year": year,
        "behaviour": CARD_BEHAVIOUR.get(number, "ok"),
    }
    return facts, {}


def check_ach(holder, routing, account, account_type, accepted):
    """Validate bank-account fields; return (facts, errors by field)."""
    errors = {}
    routing = (routing or "").strip()
    account = (account or "").strip()
    if not (holder or "").strip():
        errors["holder"] = "Enter the account holder's name."
    if not routing:
        errors["routing"] = "Enter the 9-digit routing number."
    elif not routing_ok(routing):
        errors["routing"] = "That routing number is not valid. It is the 9 digits at the bottom left of a check."
    if not account:
        errors["account"] = "Enter the account number."
    elif not _DIGITS.match(account) or not 4 <= len(account) <= 17:
        errors["account"] = "An account number is 4 to 17 digits."
    if account_type not in ("checking", "savings"):
        errors["account_type"] = "Choose checking or savings."
    if not accepted:
        errors["accepted"] = "Accept the authorization to pay by bank account."
    if errors:
        return None, errors
    facts = {
        "brand": BANK_NAMES.get(routing, "Bank account"), "last4": account[-4:],
        "behaviour": ACH_BEHAVIOUR.get(account, "ach_ok"),
    }
    return facts, {}




def _state(intent, public_url=""):
    status, verification = intent.status, None
    if status == REQUIRES_ACTION and intent.next_action == "microdeposits":
        status = REQUIRES_VERIFICATION
        expires = intent.verify_expires_at
        verification = BankVerification(
            url=f"{public_url}/sandbox/verify/{intent.id}?secret={intent.client_secret}",
            microdeposit_type=intent.microdeposit_type,
            arrives_at=expires - VERIFY_WITHIN if expires else None, expires_at=expires)
    return IntentState(
        id=intent.id, status=status, amount_cents=intent.amount_cents, verification=verification,
        client_secret=intent.client_secret, brand=intent.brand, last4=intent.last4,
        exp_month=intent.exp_month, exp_year=intent.exp_year, method_token=intent.method_token,
        failure_code=intent.failure_code, failure_message=intent.failure_message,
        currency=(intent.currency or "").upper(),
    )


def _emit(event_type, object_id):
    """Queue a webhook about one object (an intent, or a dispute for charge.dispute.*)."""
    SandboxEvent.create(id=_id("evt_sbx"), event_type=event_type, intent_id=object_id)


def _move(intent_id, from_statuses, **fields):
    """Guarded update: True only for the one caller that made the change."""
    fields["updated_at"] = utcnow()
    return bool(
        SandboxIntent.update(**fields)
        .where((SandboxIntent.id == intent_id) & SandboxIntent.status.in_(from_statuses))
        .execute()
    )


def _intent(intent_id, kind):
    intent = SandboxIntent.get_or_none((SandboxIntent.id == intent_id) & (SandboxIntent.kind == kind))
    if intent is None:
        raise ProcessorError(f"no such {kind} intent {intent_id}")
    return intent


DISPUTE_OPEN = ("needs_response", "under_review")
INQUIRY_OPEN = ("warning_needs_response", "warning_under_review")  # the bank asks first; no money moves
AUTHENTICATION_REQUIRED = ("authentication_required", "Your bank asked you to confirm this payment.")
LATE_RETURN_REASON = "debit_not_authorized"


class SandboxProcessor(Processor):
    """The embedded default processor: no keys, no network; every capability, microdeposits included."""

    name = "sandbox"
    capabilities = frozenset(Capability)
    pages = "views.sandbox"

    def __init__(self, webhook_secret, settle_seconds=0, public_url="http://127.0.0.1:5000"):
        self.webhook_secret = webhook_secret
        self.settle_seconds = settle_seconds
        self.public_url = (public_url or "").rstrip("/")  # the verification page's address is absolute (emails)

    @classmethod
    def from_config(cls, config):
        """Build from the app config."""
        return cls(webhook_secret=config["SANDBOX_WEBHOOK_SECRET"],
                   settle_seconds=int(config.get("SANDBOX_ACH_SETTLE_SECONDS") or 0),
                   public_url=config.get("PUBLIC_URL") or "http://127.0.0.1:5000")

    def _state(self, intent):
        return _state(intent, self.public_url)

    # --- Payment intents. ----------------------------------------------------------------------

    def _create(self, kind, prefix, *, amount_cents, currency, method_type, idempotency_key):
        with write_tx():
            existing = SandboxIntent.get_or_none(SandboxIntent.idempotency_key == idempotency_key)
            if existing is None:
                existing = SandboxIntent.create(
                    id=_id(prefix), kind=kind, client_secret=secrets.token_urlsafe(24),
                    idempotency_key=idempotency_key, amount_cents=amount_cents, currency=currency,
                    method_type=method_type, status=REQUIRES_PAYMENT_METHOD,
                )
            elif (existing.kind, existing.amount_cents, existing.method_type) != (kind, amount_cents, method_type):
                raise ProcessorError("idempotency key reused with different parameters")
            return self._state(existing)

    def create_payment_intent(self, *, amount_cents, currency, method_type, idempotency_key, metadata=None):
        """Create (or, for a repeated key, return) the intent for one payment attempt."""
        return self._create("payment", "pi_sbx", amount_cents=amount_cents, currency=currency,
                            method_type=method_type, idempotency_key=idempotency_key)

    def retrieve_payment_intent(self, intent_id):
        """The payment intent's current state."""
        return self._state(_intent(intent_id, "payment"))

    def cancel_payment_intent(self, intent_id):
        """Cancel an intent nobody has paid; it can never be confirmed afterwards (no webhook: as with
        Stripe's payment_intent.canceled, the portal does not subscribe to it)."""
        _intent(intent_id, "payment")
        with write_tx():
            _move(intent_id, [REQUIRES_PAYMENT_METHOD, REQUIRES_ACTION], status=CANCELED, next_action="")
        return self.retrieve_payment_intent(intent_id)

    def capture_payment_intent(self, intent_id):
        """The sandbox charges at Pay, in the same transaction in which the portal checks that the payment
        still fits (billing.payments.charging), so none of its intents waits for capture: the state as it is."""
        return self.retrieve_payment_intent(intent_id)

    def find_payment_intent(self, idempotency_key, payment_ref=""):
        """The payment intent created with this idempotency key, or None (used by reconcile)."""
        intent = SandboxIntent.get_or_none((SandboxIntent.idempotency_key == idempotency_key)
                                           & (SandboxIntent.kind == "payment"))
        return self._state(intent) if intent else None

    def charge_saved_method(self, intent_id, method_token):
        """Confirm a waiting intent with a saved method's token (the customer is present)."""
        return self._confirm(intent_id, self._saved(method_token))

    def charge_off_session(self, *, amount_cents, currency, method_type, method_token, customer_id,
                           idempotency_key, metadata=None):
        """Create and confirm an intent with a saved method, nobody present; a repeated key is one charge."""
        method = self._saved(method_token)
        state = self.create_payment_intent(amount_cents=amount_cents, currency=currency, method_type=method_type,
                                           idempotency_key=idempotency_key)
        if state.status != REQUIRES_PAYMENT_METHOD or state.failure_code:
            return state  # already tried with this key
        return self._confirm(state.id, method, off_session=True)

    def _saved(self, method_token):
        method = SandboxMethod.get_or_none(SandboxMethod.id == method_token)
        if method is None:
            raise ProcessorError("unknown payment method")
        return method

    # --- The processor's own entry page uses these. ---------------------------

    def intent_for_page(self, intent_id, client_secret):
        """The intent (payment or setup), if the client secret matches; otherwise None."""
        intent = SandboxIntent.get_or_none(SandboxIntent.id == intent_id)
        if intent is None or not hmac.compare_digest(intent.client_secret, client_secret or ""):
            return None
        return intent

    def confirm_card(self, intent_id, number, expiry, cvc, zip_code):
        """Pay an intent by card; returns (IntentState, field errors)."""
        facts, errors = check_card(number, expiry, cvc, zip_code)
        if errors:
            return self.retrieve_payment_intent(intent_id), errors
        return self._confirm(intent_id, self._tokenize("card", facts)), {}

    def confirm_ach(self, intent_id, holder, routing, account, account_type, accepted):
        """Pay an intent by bank account; returns (IntentState, field errors)."""
        facts, errors = check_ach(holder, routing, account, account_type, accepted)
        if errors:
            return self.retrieve_payment_intent(intent_id), errors
        return self._confirm(intent_id, self._tokenize("ach", facts)), {}

    def complete_challenge(self, intent_id, approve):
        """Finish the 3-D Secure step: approve succeeds, anything else fails authentication."""
        with write_tx():
            if approve:
                if _move(intent_id, [REQUIRES_ACTION], status=SUCCEEDED, next_action="", failure_code="",
                         failure_message=""):
                    _emit("payment_intent.succeeded", intent_id)
                    self._after_success(intent_id)
            else:
                code, message = DECLINES["authentication_failed"]
                if _move(intent_id, [REQUIRES_ACTION], status=REQUIRES_PAYMENT_METHOD, next_action="",
                         failure_code=code, failure_message=message):
                    _emit("payment_intent.payment_failed", intent_id)
        return self.retrieve_payment_intent(intent_id)

    def _tokenize(self, method_type, facts):
        return SandboxMethod.create(
            id=_id("pm_sbx"), method_type=method_type, brand=facts["brand"], last4=facts["last4"],
            exp_month=facts.get("exp_month"), exp_year=facts.get("exp_year"), behaviour=facts["behaviour"],
        )

    def _confirm(self, intent_id, method, off_session=False):
        """Attempt the charge once; a second Pay on a paid intent changes nothing."""
        card_fields = dict(brand=method.brand, last4=method.last4, exp_month=method.exp_month,
                           exp_year=method.exp_year, method_token=method.id)
        with write_tx():
            intent = _intent(intent_id, "payment")
            if intent.method_type != method.method_type:
                raise ProcessorError("payment method type does not match the intent")
            ready = [REQUIRES_PAYMENT_METHOD]
            if method.method_type == "ach" and method.behaviour in VERIFY_BEHAVIOURS:
                # Not debited yet: the account is verified first (Stripe's requires_action, verify_with_microdeposits).
                if self._await_verification(intent_id, ready, method, card_fields):
                    _emit("payment_intent.requires_action", intent_id)
            elif method.method_type == "ach":
                settle = utcnow() + dt.timedelta(seconds=self.settle_seconds) if self.settle_seconds else None
                if _move(intent_id, ready, status=PROCESSING, settle_after=settle,
                         failure_code="", failure_message="", **card_fields):
                    _emit("payment_intent.processing", intent_id)
            elif method.behaviour in ("ok", "dispute"):
                if _move(intent_id, ready, status=SUCCEEDED, failure_code="", failure_message="", **card_fields):
                    _emit("payment_intent.succeeded", intent_id)
                    self._after_success(intent_id)
            elif method.behaviour == "authenticate":
                # Nobody is there to answer the bank: say so, and wait for the customer (as Stripe does).
                code, message = AUTHENTICATION_REQUIRED if off_session else ("", "")
                _move(intent_id, ready, status=REQUIRES_ACTION, next_action="challenge", failure_code=code,
                      failure_message=message, **card_fields)
            else:
                code, message = DECLINES[method.behaviour]
                if _move(intent_id, ready, failure_code=code, failure_message=message, **card_fields):
                    _emit("payment_intent.payment_failed", intent_id)
        return self.retrieve_payment_intent(intent_id)

    def _await_verification(self, intent_id, ready, method, fields):
        """Send the test deposits (in test mode they are there at once) and wait for the customer to verify."""
        return _move(intent_id, ready, status=REQUIRES_ACTION, next_action="microdeposits",
                     microdeposit_type=method.behaviour, verify_attempts=0,
                     verify_expires_at=utcnow() + VERIFY_WITHIN, failure_code="", failure_message="", **fields)

    # --- Verifying a bank account with microdeposits: the sandbox's own page calls this. ----------------

    def verify_microdeposits(self, intent_id, amounts=None, descriptor_code=None, now=None):
        """Check what the customer typed against the deposits -> (IntentState, field errors).

        Right: a payment's debit is made (processing, then it settles as any sandbox ACH debit), a setup saves
        the account. Wrong: an error for the field, with the tries left; the last wrong try, or a try after the
        deadline, fails the verification (Stripe's codes), and nothing is debited.
        """
        now = now or utcnow()
        intent = SandboxIntent.get_or_none(SandboxIntent.id == intent_id)
        if intent is None:
            raise ProcessorError(f"no such intent {intent_id}")
        if intent.status != REQUIRES_ACTION or intent.next_action != "microdeposits":
            return self._state(intent), {}
        kind = intent.microdeposit_type
        if kind == MICRODEPOSIT_AMOUNTS:
            typed = tuple(amounts or ())
            if len(typed) != 2 or not all(isinstance(a, int) and 0 < a < 100 for a in typed):
                return self._state(intent), {"amounts": N_("Enter the two deposits' amounts in cents, like 32 and 45.")}
        else:
            typed = (descriptor_code or "").strip().upper()
            if not re.match(r"^SM[A-Z0-9]{4}$", typed, re.ASCII):
                return self._state(intent), {"descriptor_code": N_("Enter the 6-character code that starts with SM.")}
        outcome = MICRODEPOSIT_TEST_VALUES[kind].get(typed)
        if intent.verify_expires_at is not None and now > intent.verify_expires_at:
            outcome = "timeout"
        errors = {}
        with write_tx():
            if outcome == "verified":
                self._verified(intent)
            elif outcome in VERIFY_FAILURES:
                self._verify_failed(intent, outcome)
            else:
                SandboxIntent.update(verify_attempts=SandboxIntent.verify_attempts + 1, updated_at=now).where(
                    (SandboxIntent.id == intent.id) & (SandboxIntent.status == REQUIRES_ACTION)).execute()
                left = VERIFY_ATTEMPTS[kind] - SandboxIntent.get_by_id(intent.id).verify_attempts
                if left <= 0:
                    self._verify_failed(intent, "attempts_exceeded")
                elif kind == MICRODEPOSIT_AMOUNTS:
                    errors["amounts"] = N_("Those amounts do not match the deposits. Tries left: %(left)s.", left=left)
                else:
                    errors["descriptor_code"] = N_("That code does not match the deposit. Tries left: %(left)s.",
                                                   left=left)
        return self._state(SandboxIntent.get_by_id(intent.id)), errors

    def _verified(self, intent):
        SandboxMethod.update(behaviour="ach_ok").where(SandboxMethod.id == intent.method_token).execute()
        if intent.kind == "setup":
            _move(intent.id, [REQUIRES_ACTION], status=SUCCEEDED, next_action="")
            return
        settle = utcnow() + dt.timedelta(seconds=self.settle_seconds) if self.settle_seconds else None
        if _move(intent.id, [REQUIRES_ACTION], status=PROCESSING, next_action="", settle_after=settle):
            _emit("payment_intent.processing", intent.id)

    def _verify_failed(self, intent, outcome):
        code, message = VERIFY_FAILURES[outcome]
        if intent.kind == "setup":  # as Stripe: the setup waits for another account
            _move(intent.id, [REQUIRES_ACTION], status=REQUIRES_PAYMENT_METHOD, next_action="", method_token="",
                  failure_code=code, failure_message=message)
            return
        if _move(intent.id, [REQUIRES_ACTION], status=FAILED, next_action="", failure_code=code,
                 failure_message=message):
            _emit("payment_intent.payment_failed", intent.id)

    def _after_success(self, intent_id):
        """A test card that is disputed right after it succeeds (inside the caller's transaction)."""
        method = SandboxMethod.get_or_none(SandboxMethod.id == SandboxIntent.get_by_id(intent_id).method_token)
        if method is not None and method.behaviour == "dispute":
            self._open_dispute(SandboxIntent.get_by_id(intent_id), None, "fraudulent", "needs_response")

    # --- ACH settlement. -------------------------------------------------------------------------

    def settle(self, force=False, now=None):
        """Settle processing ACH debits that are due (all of them with force); return how many."""
        now = now or utcnow()
        q = SandboxIntent.select().where((SandboxIntent.status == PROCESSING) & (SandboxIntent.kind == "payment"))
        if not force:
            q = q.where(SandboxIntent.settle_after.is_null(False) & (SandboxIntent.settle_after <= now))
        settled = 0
        for intent in q:
            method = SandboxMethod.get_or_none(SandboxMethod.id == intent.method_token)
            behaviour = method.behaviour if method else "ach_ok"
            with write_tx():
                if behaviour in ACH_RETURNS:
                    moved = _move(intent.id, [PROCESSING], status=FAILED, failure_code=behaviour,
                                  failure_message=ACH_RETURNS[behaviour])
                    event = "payment_intent.payment_failed"
                else:
                    moved = _move(intent.id, [PROCESSING], status=SUCCEEDED)
                    event = "payment_intent.succeeded"
                if moved:
                    _emit(event, intent.id)
                    settled += 1
        return settled

    # --- Refunds. ------------------------------------------------------------------------------------

    def refund(self, intent_id, amount_cents, idempotency_key):
        """Refund part or all of a succeeded intent; a repeated key returns the same refund."""
        with write_tx():
            intent = _intent(intent_id, "payment")
            existing = SandboxRefund.get_or_none(SandboxRefund.idempotency_key == idempotency_key)
            if existing is not None:
                if (existing.intent_id, existing.amount_cents) != (intent_id, amount_cents):
                    raise ProcessorError("idempotency key reused with different parameters")
                return Refund(existing.id, existing.amount_cents)
            if intent.status != SUCCEEDED:
                raise ProcessorError("only a succeeded payment can be refunded")
            if SandboxDispute.select().where((SandboxDispute.intent == intent_id)
                                             & SandboxDispute.status.in_(DISPUTE_OPEN + ("lost",))).exists():
                raise ProcessorError("this payment is disputed and cannot be refunded")
            left = intent.amount_cents - self._refunded(intent_id)
            if not 0 < amount_cents <= left:
                raise ProcessorError(f"the refund must be between 1 and {left} cents")
            row = SandboxRefund.create(id=_id("re_sbx"), intent=intent_id, idempotency_key=idempotency_key,
                                       amount_cents=amount_cents, status="succeeded")
            _emit("charge.refunded", intent_id)
            return Refund(row.id, row.amount_cents)

    def find_refund(self, intent_id, idempotency_key):
        """The refund of the intent made with this key, or None (nothing is created)."""
        row = SandboxRefund.get_or_none((SandboxRefund.idempotency_key == idempotency_key)
                                        & (SandboxRefund.intent == intent_id))
        return Refund(row.id, row.amount_cents) if row is not None else None

    def _refunded(self, intent_id):
        return sum(r.amount_cents for r in SandboxRefund.select().where(SandboxRefund.intent == intent_id))

    def refunds_of(self, intent_id):
        """Every refund of the intent, as (refund id, cents), oldest first."""
        return tuple((r.id, r.amount_cents) for r in
                     SandboxRefund.select().where(SandboxRefund.intent == intent_id).order_by(SandboxRefund.created_at))

    # --- Disputes: opened by a test card, ``flask sandbox-dispute``, or a late ACH return. -------------

    def open_dispute(self, intent_id, amount_cents=None, reason="fraudulent", inquiry=False):
        """The cardholder's bank disputes a succeeded payment (all of it by default); returns the dispute id.

        With ``inquiry`` the card's bank only asks first (Stripe's ``warning_needs_response``): no money moves
        until it becomes a chargeback (``escalate_dispute``) or closes. A bank debit's late return
        (unauthorized, after it settled) is a dispute too, as with Stripe, and it is lost at once: an ACH
        dispute cannot be answered.
        """
        with write_tx():
            intent = _intent(intent_id, "payment")
            if intent.status != SUCCEEDED:
                raise ProcessorError("only a succeeded payment can be disputed")
            if intent.method_type == "ach":
                if inquiry:
                    raise ProcessorError("a bank debit is returned, never asked about: open a dispute instead")
                return self._open_dispute(intent, amount_cents, LATE_RETURN_REASON, "lost")
            return self._open_dispute(intent, amount_cents, reason,
                                      "warning_needs_response" if inquiry else "needs_response")

    def _open_dispute(self, intent, amount_cents, reason, status):
        if SandboxDispute.select().where(SandboxDispute.intent == intent.id).exists():
            raise ProcessorError("this payment is already disputed")
        cents = intent.amount_cents - self._refunded(intent.id) if amount_cents is None else amount_cents
        if not 0 < cents <= intent.amount_cents - self._refunded(intent.id):
            raise ProcessorError("the disputed amount is more than the payment holds")
        dispute = SandboxDispute.create(id=_id("dp_sbx"), intent=intent.id, amount_cents=cents, status=status,
                                        reason=reason)
        _emit("charge.dispute.created", dispute.id)
        return dispute.id

    def close_dispute(self, dispute_id, won):
        """The bank decides an open dispute: won returns the money, lost keeps it taken back. An open inquiry
        closes (``warning_closed``) when ``won``; when not, it becomes a chargeback (``escalate_dispute``)."""
        with write_tx():
            dispute = SandboxDispute.get_or_none(SandboxDispute.id == dispute_id)
            if dispute is not None and dispute.status in INQUIRY_OPEN and not won:
                return self.escalate_dispute(dispute_id)
            closed = "warning_closed" if dispute is not None and dispute.status in INQUIRY_OPEN else (
                "won" if won else "lost")
            moved = (SandboxDispute.update(status=closed, updated_at=utcnow())
                     .where((SandboxDispute.id == dispute_id)
                            & SandboxDispute.status.in_(DISPUTE_OPEN + INQUIRY_OPEN)).execute())
            if not moved:
                raise ProcessorError(f"no open dispute {dispute_id}")
            _emit("charge.dispute.closed", dispute_id)
        return dispute_id

    def escalate_dispute(self, dispute_id):
        """An open inquiry becomes a chargeback (``needs_response``), as Stripe moves the same dispute."""
        with write_tx():
            moved = (SandboxDispute.update(status="needs_response", updated_at=utcnow())
                     .where((SandboxDispute.id == dispute_id) & SandboxDispute.status.in_(INQUIRY_OPEN)).execute())
            if not moved:
                raise ProcessorError(f"no open inquiry {dispute_id}")
            _emit("charge.dispute.updated", dispute_id)
        return dispute_id

    def disputes_of(self, intent_id):
        """The intent's disputes as (dispute id, status), oldest first."""
        return [(d.id, d.status) for d in
                SandboxDispute.select().where(SandboxDispute.intent == intent_id).order_by(SandboxDispute.created_at)]

    # --- Webhooks. ----------------------------------------------------------------------------------

    def sign(self, body, timestamp=None):
        """The signature header value for a webhook body (bytes)."""
        t = int(timestamp if timestamp is not None else time.time())
        mac = hmac.new(self.webhook_secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
        return f"t={t},v1={mac}"

    def verify(self, body, header, now=None):
        """The event's (id, type, object id) from a signed body; BadWebhook when the signature is bad or stale."""
        parts = dict(p.split("=", 1) for p in (header or "").split(",") if "=" in p)
        try:
            t = int(parts["t"])
        except (KeyError, ValueError):
            raise BadWebhook("missing or malformed signature") from None
        expected = self.sign(body, t).split("v1=", 1)[1]
        if not hmac.compare_digest(expected, parts.get("v1", "")):
            raise BadWebhook("signature does not match")
        if abs((now or time.time()) - t) > SIGNATURE_TOLERANCE:
            raise BadWebhook("signature timestamp is outside the tolerance")
        try:
            event = json.loads(body)
            found = (event["id"], event["type"], event["data"]["object"]["id"])
        except (ValueError, KeyError, TypeError):
            raise BadWebhook("malformed event body") from None
        if not all(isinstance(v, str) and 0 < len(v) <= 255 for v in found):
            raise BadWebhook("malformed event body")
        return found

    def parse_webhook(self, body, headers):
        """A verified sandbox event, with what the sandbox's tables say now about its object."""
        event_id, event_type, object_id = self.verify(body, headers.get(SIGNATURE_HEADER))
        return ProcessorEvent(event_id, event_type, self._read(event_type, object_id))

    def _read(self, event_type, object_id):
        if event_type.startswith("payment_intent."):
            intent = SandboxIntent.get_or_none((SandboxIntent.id == object_id) & (SandboxIntent.kind == "payment"))
            return IntentUpdate(intent.id, self._state(intent)) if intent else None
        if event_type.startswith("setup_intent."):
            intent = SandboxIntent.get_or_none((SandboxIntent.id == object_id) & (SandboxIntent.kind == "setup"))
            return SetupUpdate(intent.id, self._state(intent)) if intent else None
        if event_type == "charge.refunded":
            return RefundsUpdate(object_id, self.refunds_of(object_id))
        if event_type.startswith("charge.dispute."):
            d = SandboxDispute.get_or_none(SandboxDispute.id == object_id)
            return DisputeUpdate(d.intent_id, d.id, d.status, d.amount_cents, d.reason) if d else None
        return None

    def undelivered_events(self, limit=100):
        """Events still owed to the portal, oldest first."""
        return list(SandboxEvent.select().where(SandboxEvent.delivered_at.is_null())
                    .order_by(SandboxEvent.created_at).limit(limit))

    def event_body(self, event):
        """The JSON body for one event, in Stripe's shape."""
        kind = ("dispute" if event.event_type.startswith("charge.dispute.") else
                "setup_intent" if event.event_type.startswith("setup_intent.") else "payment_intent")
        return json.dumps({
            "id": event.id, "type": event.event_type, "created": int(time.time()),
            "data": {"object": {"id": event.intent_id, "object": kind}},
        }).encode()

    def deliver(self, post):
        """Send undelivered events through ``post(body, headers) -> status``; return how many landed."""
        delivered = 0
        for event in self.undelivered_events():
            body = self.event_body(event)
            try:
                status = post(body, {SIGNATURE_HEADER: self.sign(body), "Content-Type": "application/json"})
            except Exception:  # the portal may be down: keep the event and retry next time
                status = 0
            fields = {SandboxEvent.attempts: SandboxEvent.attempts + 1}
            if 200 <= status < 300:
                fields[SandboxEvent.delivered_at] = utcnow()
                delivered += 1
            SandboxEvent.update(fields).where(SandboxEvent.id == event.id).execute()
        return delivered

    # --- Setup intents: saving a method without a payment. ---------------------------------------------

    def create_setup_intent(self, *, method_type, idempotency_key, customer_id):
        """Create (or, for a repeated key, return) a setup: the entry page only tokenizes."""
        return self._create("setup", "seti_sbx", amount_cents=0, currency="", method_type=method_type,
                            idempotency_key=idempotency_key)

    def retrieve_setup_intent(self, setup_id):
        """The setup intent's current state."""
        return self._state(_intent(setup_id, "setup"))

    def cancel_setup_intent(self, setup_id):
        """Cancel a setup that has not saved anything."""
        _intent(setup_id, "setup")
        with write_tx():
            _move(setup_id, [REQUIRES_PAYMENT_METHOD, REQUIRES_ACTION], status=CANCELED, next_action="")
        return self.retrieve_setup_intent(setup_id)

    def confirm_setup_card(self, setup_id, number, expiry, cvc, zip_code):
        """Save a card for later; returns (IntentState, field errors). Nothing is charged."""
        facts, errors = check_card(number, expiry, cvc, zip_code)
        if errors:
            return self.retrieve_setup_intent(setup_id), errors
        if facts["behaviour"] == "declined":  # the issuer refuses the card outright, as Stripe's 0002 does
            code, message = DECLINES["declined"]
            with write_tx():
                _move(setup_id, [REQUIRES_PAYMENT_METHOD], failure_code=code, failure_message=message)
            return self.retrieve_setup_intent(setup_id), {}
        return self._finish_setup(setup_id, self._tokenize("card", facts)), {}

    def confirm_setup_ach(self, setup_id, holder, routing, account, account_type, accepted):
        """Save a bank account for later debits; returns (IntentState, field errors)."""
        facts, errors = check_ach(holder, routing, account, account_type, accepted)
        if errors:
            return self.retrieve_setup_intent(setup_id), errors
        method = self._tokenize("ach", facts)
        if method.behaviour in VERIFY_BEHAVIOURS:  # saved once the customer verifies it
            _intent(setup_id, "setup")
            with write_tx():
                if self._await_verification(setup_id, [REQUIRES_PAYMENT_METHOD], method, dict(
                        brand=method.brand, last4=method.last4, method_token=method.id)):
                    _emit("setup_intent.requires_action", setup_id)
            return self.retrieve_setup_intent(setup_id), {}
        return self._finish_setup(setup_id, method), {}

    def _finish_setup(self, setup_id, method):
        _intent(setup_id, "setup")
        with write_tx():
            _move(setup_id, [REQUIRES_PAYMENT_METHOD], status=SUCCEEDED, failure_code="", failure_message="",
                  brand=method.brand, last4=method.last4, exp_month=method.exp_month, exp_year=method.exp_year,
                  method_token=method.id)
        return self.retrieve_setup_intent(setup_id)
