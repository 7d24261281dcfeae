"""The built-in sandbox processor: behaves like a real one, with Stripe's test values.

It keeps its own tables (``sandbox_*``), serves its own entry page (see
``views/sandbox.py``), and tells the portal about outcomes through HMAC-signed
webhooks, exactly as a remote processor would. Card and account numbers are
checked here and then dropped: only brand, last 4 and expiry are kept.
"""
import datetime as dt
import hashlib
import hmac
import json
import re
import secrets
import time

from billing.processors import (
    CANCELED,
    FAILED,
    PROCESSING,
    REQUIRES_ACTION,
    REQUIRES_PAYMENT_METHOD,
    SUCCEEDED,
    IntentState,
    ProcessorError,
)
from db import write_tx
from db.models import SandboxEvent, SandboxIntent, SandboxMethod, utcnow

SIGNATURE_HEADER = "Sandbox-Signature"
SIGNATURE_TOLERANCE = 300

# Test numbers and what they do (documented in the README).
CARD_BEHAVIOUR = {
    "4242424242424242": "ok",
    "4000000000000002": "declined",
    "4000000000009995": "insufficient_funds",
    "4000002760003184": "authenticate",
}
ACH_BEHAVIOUR = {"000111111116": "R03", "000222222227": "R01"}
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
ACH_AUTHORIZATION = (
    "By clicking Pay, you authorize {isp} to debit the bank account above for the amount shown, "
    "as a one-time ACH debit. You can revoke this authorization by contacting {isp} before the "
    "debit settles."
)

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


def _state(intent):
    return IntentState(
        id=intent.id, status=intent.status, amount_cents=intent.amount_cents,
        client_secret=intent.client_secret, brand=intent.brand, last4=intent.last4,
        exp_month=intent.exp_month, exp_year=intent.exp_year, method_token=intent.method_token,
        failure_code=intent.failure_code, failure_message=intent.failure_message,
        currency=(intent.currency or "").upper(),
    )


def _emit(event_type, intent_id):
    SandboxEvent.create(id=_id("evt_sbx"), event_type=event_type, intent_id=intent_id)


def _move(intent_id, from_statuses, **fields):
    """Guarded update: True only for the one caller that made the change."""
    fields["updated_at"] = utcnow()
    return bool(
        SandboxIntent.update(**fields)
        .where((SandboxIntent.id == intent_id) & SandboxIntent.status.in_(from_statuses))
        .execute()
    )


class SandboxProcessor:
    """The embedded default processor."""

    name = "sandbox"
    remote = False  # its intents are rows in our own database: asking it costs nothing

    def __init__(self, webhook_secret, settle_seconds=0):
        self.webhook_secret = webhook_secret
        self.settle_seconds = settle_seconds

    # --- The processor API the portal calls. ---------------------------------

    def create_intent(self, *, amount_cents, currency, method_type, idempotency_key, metadata=None,
                      customer_id=None):
        """Create (or, for a repeated key, return) the intent for one payment attempt."""
        with write_tx():
            existing = SandboxIntent.get_or_none(SandboxIntent.idempotency_key == idempotency_key)
            if existing is None:
                existing = SandboxIntent.create(
                    id=_id("pi_sbx"), client_secret=secrets.token_urlsafe(24), idempotency_key=idempotency_key,
                    amount_cents=amount_cents, currency=currency, method_type=method_type,
                    status=REQUIRES_PAYMENT_METHOD,
                )
            elif existing.amount_cents != amount_cents or existing.method_type != method_type:
                raise ProcessorError("idempotency key reused with different parameters")
            return _state(existing)

    def retrieve(self, intent_id):
        """The intent's current state."""
        intent = SandboxIntent.get_or_none(SandboxIntent.id == intent_id)
        if intent is None:
            raise ProcessorError(f"no such intent {intent_id}")
        return _state(intent)

    def find_by_key(self, idempotency_key, payment_ref=None):
        """The intent created with this idempotency key, or None (used by reconcile)."""
        intent = SandboxIntent.get_or_none(SandboxIntent.idempotency_key == idempotency_key)
        return _state(intent) if intent else None

    def cancel(self, intent_id):
        """Cancel an intent that has not been paid (as Stripe's, it can never be confirmed after); its state."""
        with write_tx():
            _move(intent_id, [REQUIRES_PAYMENT_METHOD, REQUIRES_ACTION], status=CANCELED)
        return self.retrieve(intent_id)

    def charge_saved(self, intent_id, method_token):
        """Confirm an intent with a saved method's token."""
        method = SandboxMethod.get_or_none(SandboxMethod.id == method_token)
        if method is None:
            raise ProcessorError("unknown payment method")
        return self._confirm(intent_id, method)

    # --- The processor's own entry page uses these. ---------------------------

    def intent_for_page(self, intent_id, client_secret):
        """The intent, if the client secret matches; otherwise None."""
        intent = SandboxIntent.get_or_none(SandboxIntent.id == intent_id)
        if intent is None or not hmac.compare_digest(intent.client_secret, client_secret or ""):
            return None
        return intent

    def confirm_card(self, intent_id, number, expiry, cvc, zip_code):
        """Pay an intent by card; returns (IntentState, field errors)."""
        facts, errors = check_card(number, expiry, cvc, zip_code)
        if errors:
            return self.retrieve(intent_id), errors
        return self._confirm(intent_id, self._tokenize("card", facts)), {}

    def confirm_ach(self, intent_id, holder, routing, account, account_type, accepted):
        """Pay an intent by bank account; returns (IntentState, field errors)."""
        facts, errors = check_ach(holder, routing, account, account_type, accepted)
        if errors:
            return self.retrieve(intent_id), errors
        return self._confirm(intent_id, self._tokenize("ach", facts)), {}

    def complete_challenge(self, intent_id, approve):
        """Finish the 3-D Secure step: approve succeeds, anything else fails authentication."""
        with write_tx():
            if approve:
                if _move(intent_id, [REQUIRES_ACTION], status=SUCCEEDED, failure_code="", failure_message=""):
                    _emit("payment_intent.succeeded", intent_id)
            else:
                code, message = DECLINES["authentication_failed"]
                if _move(intent_id, [REQUIRES_ACTION], status=REQUIRES_PAYMENT_METHOD,
                         failure_code=code, failure_message=message):
                    _emit("payment_intent.payment_failed", intent_id)
        return self.retrieve(intent_id)

    def _tokenize(self, method_type, facts):
        return SandboxMethod.create(
            id=_id("pm_sbx"), method_type=method_type, brand=facts["brand"], last4=facts["last4"],
            exp_month=facts.get("exp_month"), exp_year=facts.get("exp_year"), behaviour=facts["behaviour"],
        )

    def _confirm(self, intent_id, method):
        """Attempt the charge once; a second Pay on a paid intent changes nothing."""
        card_fields = dict(brand=method.brand, last4=method.last4, exp_month=method.exp_month,
                           exp_year=method.exp_year, method_token=method.id)
        with write_tx():
            intent = SandboxIntent.get_by_id(intent_id)
            if intent.method_type != method.method_type:
                raise ProcessorError("payment method type does not match the intent")
            ready = [REQUIRES_PAYMENT_METHOD]
            if method.method_type == "ach":
                settle = utcnow() + dt.timedelta(seconds=self.settle_seconds) if self.settle_seconds else None
                if _move(intent_id, ready, status=PROCESSING, settle_after=settle,
                         failure_code="", failure_message="", **card_fields):
                    _emit("payment_intent.processing", intent_id)
            elif method.behaviour == "ok":
                if _move(intent_id, ready, status=SUCCEEDED, failure_code="", failure_message="", **card_fields):
                    _emit("payment_intent.succeeded", intent_id)
            elif method.behaviour == "authenticate":
                _move(intent_id, ready, status=REQUIRES_ACTION, failure_code="", failure_message="", **card_fields)
            else:
                code, message = DECLINES[method.behaviour]
                if _move(intent_id, ready, failure_code=code, failure_message=message, **card_fields):
                    _emit("payment_intent.payment_failed", intent_id)
        return self.retrieve(intent_id)

    # --- ACH settlement and webhooks. -----------------------------------------

    def settle(self, force=False, now=None):
        """Settle processing ACH debits that are due (all of them with force); return how many."""
        now = now or utcnow()
        q = SandboxIntent.select().where(SandboxIntent.status == PROCESSING)
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

    def sign(self, body, timestamp=None):
        """The signature header value for a webhook body (bytes)."""
        t = int(timestamp if timestamp is not None else time.time())
        mac = hmac.new(self.webhook_secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
        return f"t={t},v1={mac}"

    def verify(self, body, header, now=None):
        """Parse a signed webhook body; raise ValueError when the signature is bad or stale."""
        parts = dict(p.split("=", 1) for p in (header or "").split(",") if "=" in p)
        try:
            t = int(parts["t"])
        except (KeyError, ValueError):
            raise ValueError("missing or malformed signature") from None
        expected = self.sign(body, t).split("v1=", 1)[1]
        if not hmac.compare_digest(expected, parts.get("v1", "")):
            raise ValueError("signature does not match")
        if abs((now or time.time()) - t) > SIGNATURE_TOLERANCE:
            raise ValueError("signature timestamp is outside the tolerance")
        try:
            event = json.loads(body)
            found = {"id": event["id"], "type": event["type"], "intent_id": event["data"]["object"]["id"]}
        except (ValueError, KeyError, TypeError):
            raise ValueError("malformed event body") from None
        if not all(isinstance(v, str) and 0 < len(v) <= 255 for v in found.values()):
            raise ValueError("malformed event body")
        return found

    def undelivered_events(self, limit=100):
        """Events still owed to the portal, oldest first."""
        return list(SandboxEvent.select().where(SandboxEvent.delivered_at.is_null())
                    .order_by(SandboxEvent.created_at).limit(limit))

    def event_body(self, event):
        """The JSON body for one event, in Stripe's shape."""
        return json.dumps({
            "id": event.id, "type": event.event_type, "created": int(time.time()),
            "data": {"object": {"id": event.intent_id, "object": "payment_intent"}},
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

    # --- Saving a method without a payment (a "setup", like Stripe's SetupIntent). ----

    def create_setup(self, *, method_type, idempotency_key, customer_id=None):
        """Create (or, for a repeated key, return) a setup: the entry page only tokenizes (``customer_id`` unused)."""
        with write_tx():
            existing = SandboxIntent.get_or_none(SandboxIntent.idempotency_key == idempotency_key)
            if existing is None:
                existing = SandboxIntent.create(
                    id=_id("seti_sbx"), client_secret=secrets.token_urlsafe(24), idempotency_key=idempotency_key,
                    amount_cents=0, currency="", method_type=method_type, status=REQUIRES_PAYMENT_METHOD,
                )
            return _state(existing)

    @staticmethod
    def is_setup(intent_id):
        """True for a setup's id (it saves a method and never charges)."""
        return str(intent_id).startswith("seti_")

    def confirm_setup_card(self, setup_id, number, expiry, cvc, zip_code):
        """Save a card for later; returns (IntentState, field errors). Nothing is charged."""
        facts, errors = check_card(number, expiry, cvc, zip_code)
        if errors:
            return self.retrieve(setup_id), errors
        if facts["behaviour"] == "declined":  # the issuer refuses the card outright, as Stripe's 0002 does
            code, message = DECLINES["declined"]
            with write_tx():
                _move(setup_id, [REQUIRES_PAYMENT_METHOD], failure_code=code, failure_message=message)
            return self.retrieve(setup_id), {}
        return self._finish_setup(setup_id, self._tokenize("card", facts)), {}

    def confirm_setup_ach(self, setup_id, holder, routing, account, account_type, accepted):
        """Save a bank account for later debits; returns (IntentState, field errors)."""
        facts, errors = check_ach(holder, routing, account, account_type, accepted)
        if errors:
            return self.retrieve(setup_id), errors
        return self._finish_setup(setup_id, self._tokenize("ach", facts)), {}

    def _finish_setup(self, setup_id, method):
        if not self.is_setup(setup_id):
            raise ProcessorError("not a setup")
        with write_tx():
            _move(setup_id, [REQUIRES_PAYMENT_METHOD], status=SUCCEEDED, failure_code="", failure_message="",
                  brand=method.brand, last4=method.last4, exp_month=method.exp_month, exp_year=method.exp_year,
                  method_token=method.id)
        return self.retrieve(setup_id)
