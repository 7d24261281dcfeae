"""Stripe as the live processor: the only module that imports ``stripe``.

The portal keeps one PaymentIntent per payment attempt, created with our idempotency key and a body
that never changes for that key (amount, currency, payment method type, Customer, and our payment
reference as the only metadata). Card and bank details are collected by Stripe's Payment Element in
the payment window, which turns them into a ConfirmationToken; *this server* confirms the intent
with it ("Finalize payments on the server"), so the portal decides, at the moment money moves,
whether a payment goes ahead. Only PaymentMethods are used: no tokens, sources or card objects.

What a webhook says is never trusted on its own: ``read_event`` re-reads the object from Stripe and
reports what Stripe says *now*, so events may arrive in any order.
"""
import dataclasses
import datetime as dt
import re

import stripe
from peewee import IntegrityError

from billing.processors import (
    CANCELED,
    FAILED,
    PROCESSING,
    REQUIRES_ACTION,
    REQUIRES_PAYMENT_METHOD,
    SUCCEEDED,
    ConfigError,
    DisputeUpdate,
    IntentState,
    IntentUpdate,
    MethodUpdate,
    AUTHENTICATE,
    VERIFY_MICRODEPOSITS,
    CardUpdate,
    MandateUpdate,
    ProcessorError,
    RefundsUpdate,
)
from stripe.params import (
    PaymentIntentConfirmParams,
    PaymentIntentCreateParams,
    RefundCreateParams,
    SetupIntentConfirmParams,
    SetupIntentCreateParams,
)

from db import write_tx
from db.models import Customer, StripeCustomer

SIGNATURE_HEADER = "Stripe-Signature"
SIGNATURE_TOLERANCE = 300  # seconds: Stripe's own default, and what the issue asks for
# The Stripe.js release that matches the API version this SDK pins (stripe 16: 2026-10-28.endive). Stripe
# names each Stripe.js major release after its API release; v3 is the old unversioned line.
STRIPE_JS_RELEASE = "endive"
DEFAULT_JS_URL = f"https://js.stripe.com/{STRIPE_JS_RELEASE}/stripe.js"
API_VERSION = stripe.api_version
HANDLED_EVENTS = (
    "payment_intent.processing",
    "payment_intent.requires_action",
    "payment_intent.canceled",
    "payment_intent.succeeded",
    "payment_intent.payment_failed",
    "charge.refunded",
    "charge.refund.updated",
    "charge.dispute.created",
    "charge.dispute.updated",
    "charge.dispute.closed",
    "setup_intent.succeeded",
    "setup_intent.requires_action",
    "mandate.updated",
    "payment_method.updated",
    "payment_method.automatically_updated",
)
REQUIRED_SETTINGS = (
    ("STRIPE_SECRET_KEY", ("sk_", "rk_")),
    ("STRIPE_PUBLISHABLE_KEY", ("pk_",)),
    ("STRIPE_WEBHOOK_SECRET", ("whsec_",)),
)
METHOD_TYPES = {"card": "card", "ach": "us_bank_account"}
BRANDS = {"visa": "Visa", "mastercard": "Mastercard", "amex": "American Express", "discover": "Discover",
          "diners": "Diners Club", "jcb": "JCB", "unionpay": "UnionPay"}
# How far back reconcile looks when it must list intents because search is unavailable.
LIST_LOOKBACK = dt.timedelta(days=3)


class NotFound(ProcessorError):
    """Stripe has no such object (in this account and mode)."""


def _get(obj, *path, default=None):
    """obj[path[0]][path[1]]... for the plain dicts that ``to_dict()`` gives, or ``default``."""
    for key in path:
        if not isinstance(obj, dict) or obj.get(key) is None:
            return default
        obj = obj[key]
    return obj


def _id_of(value):
    return value.get("id") if isinstance(value, dict) else value


def _method_facts(pm, charge=None):
    """(method type, brand or bank, last 4, exp month, exp year) of a PaymentMethod (or a charge's details)."""
    pm = pm if isinstance(pm, dict) else {}
    if pm.get("type") == "us_bank_account" or _get(charge, "payment_method_details", "type") == "us_bank_account":
        bank = pm.get("us_bank_account") or _get(charge, "payment_method_details", "us_bank_account") or {}
        return "ach", bank.get("bank_name") or "Bank account", bank.get("last4") or "", None, None
    card = pm.get("card") or _get(charge, "payment_method_details", "card") or {}
    if not card:
        return "", "", "", None, None
    brand = str(card.get("brand") or "")
    return "card", BRANDS.get(brand.lower(), brand.title() or "Card"), card.get("last4") or "", \
        card.get("exp_month"), card.get("exp_year")


def intent_state(pi):
    """Our IntentState for a PaymentIntent (a plain dict), in the portal's terms."""
    status = pi.get("status")
    charge = pi.get("latest_charge") if isinstance(pi.get("latest_charge"), dict) else None
    kind, brand, last4, exp_month, exp_year = _method_facts(pi.get("payment_method"), charge)
    error = pi.get("last_payment_error") or {}
    code = error.get("decline_code") or error.get("code") or ""
    message = error.get("message") or ""
    ach = kind == "ach" or pi.get("payment_method_types") == ["us_bank_account"]
    if status == "succeeded":
        mapped = SUCCEEDED
    elif status in ("processing", "requires_capture"):
        mapped = PROCESSING
    elif status == "requires_action":
        mapped = REQUIRES_ACTION
    elif status == "canceled":
        mapped = CANCELED
    elif status == "requires_payment_method" and error and ach:
        # A bank debit that was processing and then failed (an ACH return): final for this attempt.
        mapped = FAILED
    else:  # requires_payment_method / requires_confirmation: still waiting for a (new) method
        mapped = REQUIRES_PAYMENT_METHOD
    if mapped in (SUCCEEDED, PROCESSING):
        code = message = ""
    next_action, verify_url = _next_action(pi) if mapped == REQUIRES_ACTION else ("", "")
    return IntentState(
        id=pi["id"], status=mapped, amount_cents=int(pi.get("amount") or 0),
        client_secret=pi.get("client_secret") or "", brand=brand, last4=last4,
        exp_month=exp_month, exp_year=exp_year, method_token=_id_of(pi.get("payment_method")) or "",
        failure_code=code, failure_message=message, currency=str(pi.get("currency") or "").upper(),
        next_action=next_action, verify_url=verify_url,
    )


def _next_action(intent):
    """(our next action, verification URL) of a PaymentIntent or SetupIntent in requires_action.

    ``verify_with_microdeposits`` (a bank account linked by its numbers) waits for the customer to enter the
    deposits on Stripe's hosted page; anything else (``use_stripe_sdk``, ``redirect_to_url``) is the bank's
    check that Stripe.js runs in the window (``stripe.handleNextAction``).
    """
    action = intent.get("next_action") or {}
    if action.get("type") == "verify_with_microdeposits":
        return VERIFY_MICRODEPOSITS, _get(action, "verify_with_microdeposits", "hosted_verification_url") or ""
    return AUTHENTICATE, ""


def setup_state(seti):
    """Our IntentState for a SetupIntent (a plain dict, its payment method expanded): a method saved, no money.

    ``method_token`` is given only once the SetupIntent has succeeded, so nobody saves a method Stripe has
    not finished setting up.
    """
    status = seti.get("status")
    mapped = {"succeeded": SUCCEEDED, "requires_action": REQUIRES_ACTION, "processing": PROCESSING,
              "canceled": CANCELED}.get(status, REQUIRES_PAYMENT_METHOD)
    pm = seti.get("payment_method")
    _, brand, last4, exp_month, exp_year = _method_facts(pm)
    error = seti.get("last_setup_error") or {}
    next_action, verify_url = _next_action(seti) if mapped == REQUIRES_ACTION else ("", "")
    return IntentState(
        id=seti["id"], status=mapped, amount_cents=0, client_secret=seti.get("client_secret") or "",
        brand=brand, last4=last4, exp_month=exp_month, exp_year=exp_year,
        method_token=(_id_of(pm) or "") if mapped == SUCCEEDED else "",
        failure_code="" if mapped == SUCCEEDED else (error.get("decline_code") or error.get("code") or ""),
        failure_message="" if mapped == SUCCEEDED else (error.get("message") or ""),
        next_action=next_action, verify_url=verify_url,
    )


def mandate_data(ip_address, user_agent, accepted_at):
    """Stripe's ``mandate_data`` for an online acceptance the portal recorded (time, IP address, browser)."""
    return {"customer_acceptance": {
        "type": "online", "accepted_at": int(accepted_at.replace(tzinfo=dt.timezone.utc).timestamp()),
        "online": {"ip_address": ip_address or "", "user_agent": user_agent or ""}}}



class StripeProcessor:
    """The processor interface (see billing.processors.sandbox) on top of the Stripe API."""

    name = "stripe"
    remote = True  # every question is a request to Stripe: pages poll the portal's row (billing.payments.poll)

    def __init__(self, secret_key, publishable_key, webhook_secret, api_base="", js_url=DEFAULT_JS_URL):
        self._client = stripe.StripeClient(
            secret_key, base_addresses={"api": api_base} if api_base else None, max_network_retries=2)
        self._webhook_secret = webhook_secret
        self.publishable_key = publishable_key
        self.js_url = js_url
        self.live = secret_key.startswith(("sk_live_", "rk_live_"))

    def __repr__(self):  # never show a key, even in a traceback's locals
        return f"<StripeProcessor {'live' if self.live else 'test'} mode>"

    @classmethod
    def from_config(cls, config):
        """Build from the app config, or raise ConfigError naming the setting that is missing or wrong."""
        for key, prefixes in REQUIRED_SETTINGS:
            value = (config.get(key) or "").strip()
            if not value:
                raise ConfigError(f"PAYMENT_PROCESSOR=stripe needs {key}; it is not set")
            if not value.startswith(prefixes):
                raise ConfigError(f"{key} does not look right: it should start with {' or '.join(prefixes)}")
        secret, public = config["STRIPE_SECRET_KEY"].strip(), config["STRIPE_PUBLISHABLE_KEY"].strip()
        if ("_live_" in secret) != ("_live_" in public):
            raise ConfigError("STRIPE_SECRET_KEY and STRIPE_PUBLISHABLE_KEY must both be test keys or both live keys")
        return cls(secret, public, config["STRIPE_WEBHOOK_SECRET"].strip(),
                   api_base=(config.get("STRIPE_API_BASE") or "").strip(),
                   js_url=(config.get("STRIPE_JS_URL") or DEFAULT_JS_URL).strip())

    # --- Calls to Stripe. Errors become ProcessorError with Stripe's user-facing message only. ---

    def _call(self, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except stripe.InvalidRequestError as e:
            error = NotFound if e.http_status == 404 else ProcessorError
            raise error(getattr(e, "user_message", None) or type(e).__name__) from None
        except stripe.StripeError as e:
            raise ProcessorError(getattr(e, "user_message", None) or type(e).__name__) from None

    def _intent(self, intent_id):
        """The PaymentIntent as a plain dict, with its payment method and latest charge expanded."""
        pi = self._call(self._client.v1.payment_intents.retrieve, intent_id,
                        params={"expand": ["payment_method", "latest_charge"]})
        return pi.to_dict()

    def customer_ref(self, customer_id):
        """The Stripe Customer for a portal customer, created once and remembered."""
        row = StripeCustomer.get_or_none(StripeCustomer.customer == customer_id)
        if row is not None:
            return row.stripe_id
        c = Customer.get_by_id(customer_id)
        obj = self._call(
            self._client.v1.customers.create,
            params={"name": c.name, "email": c.email or None,
                    "metadata": {"portal_customer_id": str(c.id), "account_number": c.account_number}},
            options={"idempotency_key": f"portal-customer-{c.id}-{c.account_number}"},
        )
        try:
            with write_tx():
                StripeCustomer.create(customer=c.id, stripe_id=obj.id)
        except IntegrityError:  # a concurrent request mapped this customer first; keep its mapping
            pass
        return StripeCustomer.get(StripeCustomer.customer == customer_id).stripe_id

    def create_intent(self, *, amount_cents, currency, method_type, idempotency_key, metadata=None,
                      customer_id=None):
        """Create (or, for a repeated key, return) the PaymentIntent for one payment attempt.

        The body is the same every time this key is used (Stripe refuses a retry with other parameters):
        nothing in it changes once the payment is handed to the processor. Whether the method is saved
        (``setup_future_usage``) is decided at confirmation, by the server.
        """
        params: PaymentIntentCreateParams = {
            "amount": amount_cents, "currency": currency.lower(),
            "allowed_payment_method_types": [METHOD_TYPES[method_type]],
            "metadata": {k: str(v) for k, v in (metadata or {}).items()}}
        if customer_id:
            params["customer"] = self.customer_ref(int(customer_id))
        if method_type == "ach":
            params["payment_method_options"] = {"us_bank_account": {
                "verification_method": "automatic", "financial_connections": {"permissions": ["payment_method"]}}}
        pi = self._call(self._client.v1.payment_intents.create, params=params,
                        options={"idempotency_key": f"pi-{idempotency_key}"})
        return intent_state(pi.to_dict())

    def retrieve(self, intent_id):
        """The intent's current state, as Stripe has it now (a SetupIntent's for a ``seti_`` id)."""
        if str(intent_id).startswith("seti_"):
            return self.retrieve_setup(intent_id)
        return intent_state(self._intent(intent_id))

    # --- Saving a method without a payment: a SetupIntent on the customer's Stripe Customer. ---

    def create_setup(self, *, method_type, idempotency_key, customer_id=None):
        """Create (or, for a repeated key, return) the SetupIntent that saves a card or bank account.

        The setup window's Payment Element makes a ConfirmationToken and this server confirms the
        SetupIntent with it (``confirm_setup``). Nothing is charged.
        """
        params: SetupIntentCreateParams = {
            "allowed_payment_method_types": [METHOD_TYPES[method_type]], "usage": "off_session",
            "metadata": {"setup_key": idempotency_key}}
        if customer_id:
            params["customer"] = self.customer_ref(int(customer_id))
        if method_type == "ach":
            params["payment_method_options"] = {"us_bank_account": {
                "verification_method": "automatic", "financial_connections": {"permissions": ["payment_method"]}}}
        seti = self._call(self._client.v1.setup_intents.create, params=params,
                          options={"idempotency_key": f"seti-{idempotency_key}"})
        return setup_state(seti.to_dict())

    def _setup(self, setup_id):
        seti = self._call(self._client.v1.setup_intents.retrieve, setup_id, params={"expand": ["payment_method"]})
        return seti.to_dict()

    def _attach(self, seti):
        """Make sure a succeeded SetupIntent's method is attached to its Customer (once; a repeat is harmless).

        Stripe attaches it by itself; localstripe does not, and an unattached method cannot be charged later.
        """
        pm, customer = seti.get("payment_method"), _id_of(seti.get("customer"))
        if seti.get("status") == "succeeded" and customer and isinstance(pm, dict) and not pm.get("customer"):
            self._call(self._client.v1.payment_methods.attach, pm["id"], params={"customer": customer})
            pm["customer"] = customer
        return seti

    def retrieve_setup(self, setup_id):
        """The SetupIntent's state now; once it succeeded, its method is attached to the Customer."""
        return setup_state(self._attach(self._setup(setup_id)))

    def confirm_setup(self, setup_id, confirmation_token, *, mandate=None):
        """Confirm a SetupIntent on this server with the Payment Element's ConfirmationToken.

        ``use_stripe_sdk`` lets Stripe.js run the bank's check (3-D Secure) in the window if it asks;
        ``mandate`` is the bank-debit authorization the customer accepted in the window (its ``ip``,
        ``user_agent`` and ``accepted_at``), sent as ``mandate_data``.
        """
        seti = self._setup(setup_id)
        if seti.get("status") not in ("requires_payment_method", "requires_confirmation"):
            return setup_state(self._attach(seti))
        params: SetupIntentConfirmParams = {"confirmation_token": confirmation_token, "use_stripe_sdk": True}
        if mandate is not None:
            params["mandate_data"] = mandate_data(mandate.ip, mandate.user_agent, mandate.accepted_at)
        try:
            self._client.v1.setup_intents.confirm(setup_id, params=params)
        except stripe.CardError as e:
            return self._refused(self.retrieve_setup(setup_id), e, "The card could not be saved.")
        except stripe.InvalidRequestError as e:
            return self._refused(self.retrieve_setup(setup_id), e, "The details could not be saved.")
        except stripe.StripeError as e:
            raise ProcessorError(getattr(e, "user_message", None) or type(e).__name__) from None
        return self.retrieve_setup(setup_id)

    @staticmethod
    def _refused(state, e, default):
        """A state still waiting for details, with Stripe's reason for refusing this attempt."""
        if state.status == REQUIRES_PAYMENT_METHOD and not state.failure_message:
            state = dataclasses.replace(state, failure_code=getattr(e, "code", None) or "refused",
                                        failure_message=getattr(e, "user_message", None) or default)
        return state

    def find_by_key(self, idempotency_key, payment_ref=None):
        """The intent made for this payment (found by its reference in the metadata), or None (reconcile)."""
        if not payment_ref:
            return None
        if not re.fullmatch(r"[A-Z0-9-]{1,40}", payment_ref):
            raise ProcessorError("not a payment reference")
        try:
            found = self._client.v1.payment_intents.search(
                params={"query": f"metadata['payment_ref']:'{payment_ref}'", "limit": 1})
            data = found.to_dict().get("data") or []
            return self.retrieve(data[0]["id"]) if data else None
        except stripe.InvalidRequestError:
            pass  # search is not offered everywhere (and not by every test server): list recent intents
        except stripe.StripeError as e:
            raise ProcessorError(getattr(e, "user_message", None) or type(e).__name__) from None
        since = int((dt.datetime.now(dt.timezone.utc) - LIST_LOOKBACK).timestamp())
        page = self._call(self._client.v1.payment_intents.list, params={"limit": 100})
        for pi in page.auto_paging_iter():
            pi = pi.to_dict()
            if (pi.get("metadata") or {}).get("payment_ref") == payment_ref:
                return self.retrieve(pi["id"])
            if int(pi.get("created") or since) < since:
                break
        return None

    def _confirm(self, intent_id, params, declined="Your card was declined."):
        """Confirm a waiting intent on this server; a paid intent is never confirmed again.

        Every confirm passes ``use_stripe_sdk``, so a bank's check comes back as a next action that
        Stripe.js runs in the window (``handleNextAction``) instead of a redirect.
        """
        pi = self._intent(intent_id)
        if pi.get("status") not in ("requires_payment_method", "requires_confirmation"):
            return intent_state(pi)
        params["use_stripe_sdk"] = True
        try:
            self._client.v1.payment_intents.confirm(intent_id, params=params)
        except stripe.CardError as e:  # a decline: the intent waits for another card
            return self._refused(self.retrieve(intent_id), e, declined)
        except stripe.InvalidRequestError:
            # Stripe refused this confirmation (an expired or used ConfirmationToken, or a concurrent Pay
            # already confirmed the intent): report where the intent is now, and never confirm it twice.
            state = self.retrieve(intent_id)
            if state.status == REQUIRES_PAYMENT_METHOD:
                state = dataclasses.replace(state, failure_code="confirmation_refused", failure_message=(
                    "This payment could not be completed. Check the details and try again."))
            return state
        except stripe.StripeError as e:
            raise ProcessorError(getattr(e, "user_message", None) or type(e).__name__) from None
        return self.retrieve(intent_id)

    def cancel(self, intent_id):
        """Cancel a PaymentIntent that has not been paid, so that it can never be confirmed; its state now.

        Stripe refuses to cancel an intent that succeeded or is processing: then its state says so.
        """
        try:
            self._client.v1.payment_intents.cancel(intent_id, params={"cancellation_reason": "abandoned"})
        except stripe.InvalidRequestError:
            pass  # not cancelable any more (paid, processing or already canceled): read where it is
        except stripe.StripeError as e:
            raise ProcessorError(getattr(e, "user_message", None) or type(e).__name__) from None
        return self.retrieve(intent_id)

    def confirm_with_token(self, intent_id, confirmation_token, *, save=False, mandate=None):
        """Confirm the intent on this server with the Payment Element's ConfirmationToken.

        ``save`` (the customer ticked the save box) sets ``setup_future_usage=off_session``: Stripe then
        attaches the method to the intent's Customer and sets it up for autopay. Without it nothing is
        attached. ``mandate`` is the bank-debit authorization the customer accepted in the window (its
        ``ip``, ``user_agent`` and ``accepted_at``), sent as ``mandate_data``.
        """
        params: PaymentIntentConfirmParams = {"confirmation_token": confirmation_token}
        if save:
            params["setup_future_usage"] = "off_session"
        if mandate is not None:
            params["mandate_data"] = mandate_data(mandate.ip, mandate.user_agent, mandate.accepted_at)
        return self._confirm(intent_id, params)

    def charge_saved(self, intent_id, method_token):
        """Confirm an intent on-session with a saved method (the billing step, or a customer called back by
        autopay): no details typed again; the bank's check, if asked, runs in the window."""
        params: PaymentIntentConfirmParams = {"payment_method": method_token}
        return self._confirm(intent_id, params)

    def create_off_session_charge(self, *, amount_cents, currency, method_type, method_token, customer_id,
                                  idempotency_key, metadata=None):
        """Charge a saved method with nobody present (autopay): Stripe's documented off-session charge.

        One call creates and confirms the PaymentIntent with ``confirm=true`` and ``off_session=true`` (Stripe
        then applies the customer's earlier authorization; localstripe accepts both parameters on create, but
        not ``off_session`` on a later confirm). The attempt's idempotency key makes a retried call one charge.
        A card that needs the customer's bank check comes back as REQUIRES_ACTION, to be paid on-session.
        """
        metadata = {k: str(v) for k, v in (metadata or {}).items()}
        params: PaymentIntentCreateParams = {
            "amount": amount_cents, "currency": currency.lower(),
            "allowed_payment_method_types": [METHOD_TYPES[method_type]], "metadata": metadata,
            "customer": self.customer_ref(int(customer_id)), "payment_method": method_token,
            "confirm": True, "off_session": True}
        try:
            pi = self._client.v1.payment_intents.create(params=params,
                                                        options={"idempotency_key": f"pi-off-{idempotency_key}"})
        except stripe.CardError as e:
            return self._declined_off_session(e, idempotency_key, metadata.get("payment_ref"))
        except stripe.StripeError as e:
            raise ProcessorError(getattr(e, "user_message", None) or type(e).__name__) from None
        return self.retrieve(pi.id)

    def _declined_off_session(self, e, idempotency_key, payment_ref):
        error = (getattr(e, "json_body", None) or {}).get("error") or {}
        intent_id = _id_of(error.get("payment_intent"))
        if not intent_id and error.get("charge"):  # localstripe names the charge, not the intent
            intent_id = _id_of(self._call(self._client.v1.charges.retrieve, _id_of(error["charge"]))
                               .to_dict().get("payment_intent"))
        state = self.retrieve(intent_id) if intent_id else self.find_by_key(idempotency_key, payment_ref)
        if state is None:
            raise ProcessorError(e.user_message or "The card was declined.")
        code = error.get("decline_code") or error.get("code") or e.code or "card_declined"
        if code == "authentication_required":
            return dataclasses.replace(state, status=REQUIRES_ACTION, failure_code=code, failure_message=(
                e.user_message or "Your bank asked you to confirm this payment."))
        if not state.failure_message:
            state = dataclasses.replace(state, failure_code=code,
                                        failure_message=e.user_message or "Your card was declined.")
        return state

    def refund(self, intent_id, amount_cents, idempotency_key):
        """Refund part or all of a paid intent; returns (refund id, cents)."""
        params: RefundCreateParams = {"payment_intent": intent_id, "amount": amount_cents}
        refund = self._call(self._client.v1.refunds.create, params=params,
                            options={"idempotency_key": idempotency_key})
        return refund.id, int(refund.amount)

    def refunds_of(self, intent_id):
        """The intent's refunds: (live ones as (refund id, cents), ids of those that failed or were canceled)."""
        page = self._call(self._client.v1.refunds.list, params={"payment_intent": intent_id, "limit": 100})
        live, failed = [], []
        for r in page.auto_paging_iter():
            r = r.to_dict()
            if r.get("status", "succeeded") in ("succeeded", "pending", "requires_action"):
                live.append((r["id"], int(r["amount"])))
            elif r.get("status") in ("failed", "canceled"):
                failed.append(r["id"])
        return tuple(live), tuple(failed)

    # --- Webhooks. ---------------------------------------------------------------------------

    def parse_event(self, body, header):
        """Verify a webhook's signature on the raw body and return the event as a dict, or raise ValueError."""
        try:
            event = stripe.Webhook.construct_event(body, header or "", self._webhook_secret,
                                                   tolerance=SIGNATURE_TOLERANCE)
        except stripe.SignatureVerificationError as e:
            raise ValueError(str(e).split("\n")[0] or "bad signature") from None
        except (ValueError, KeyError, TypeError, AttributeError):  # e.g. a signed body that is not an object
            raise ValueError("malformed event body") from None
        event = event.to_dict()
        ids = (_get(event, "data", "object", "id"), event.get("id"), event.get("type"))
        # Stripe's ids and types are short strings; anything else is not an event of Stripe's.
        if not all(isinstance(v, str) and 0 < len(v) <= 255 for v in ids):
            raise ValueError("malformed event body")
        return event

    def read_event(self, event):
        """What Stripe says now about the object an event is about; None for types we ignore."""
        try:
            return self._read_event(event)
        except NotFound:  # not an object of this account: nothing for us to do
            return None

    def _read_event(self, event):
        kind, obj = event["type"], event["data"]["object"]
        if kind.startswith("payment_intent."):
            return IntentUpdate(obj["id"], self.retrieve(obj["id"]))
        if kind in ("charge.refunded", "charge.refund.updated"):
            # charge.refunded carries the Charge; charge.refund.updated the Refund (both name the intent,
            # or the charge that does).
            intent_id = _id_of(obj.get("payment_intent"))
            if not intent_id:
                charge_id = obj["id"] if kind == "charge.refunded" else _id_of(obj.get("charge"))
                charge = self._call(self._client.v1.charges.retrieve, charge_id).to_dict() if charge_id else {}
                intent_id = _id_of(charge.get("payment_intent"))
            if not intent_id:
                return None
            live, failed = self.refunds_of(intent_id)
            return RefundsUpdate(intent_id, live, failed)
        if kind == "mandate.updated":
            m = self._call(self._client.v1.mandates.retrieve, obj["id"]).to_dict()
            token = _id_of(m.get("payment_method"))
            return MandateUpdate(token, m["id"], m.get("status") or "") if token else None
        if kind in ("payment_method.updated", "payment_method.automatically_updated"):
            pm = self._call(self._client.v1.payment_methods.retrieve, obj["id"]).to_dict()
            if pm.get("type") != "card":
                return None
            _, brand, last4, exp_month, exp_year = _method_facts(pm)
            return CardUpdate(pm["id"], brand, last4, exp_month, exp_year)
        if kind.startswith("charge.dispute."):
            d = self._call(self._client.v1.disputes.retrieve, obj["id"]).to_dict()
            intent_id = _id_of(d.get("payment_intent"))
            if not intent_id and d.get("charge"):
                charge = self._call(self._client.v1.charges.retrieve, _id_of(d["charge"])).to_dict()
                intent_id = _id_of(charge.get("payment_intent"))
            return DisputeUpdate(intent_id, d["id"], d.get("status") or "", int(d.get("amount") or 0),
                                 d.get("reason") or "") if intent_id else None
        if kind == "setup_intent.requires_action":
            return None  # the setup window shows what to do (verify microdeposits); saved on succeeded
        if kind == "setup_intent.succeeded":
            seti = self._call(self._client.v1.setup_intents.retrieve, obj["id"],
                              params={"expand": ["payment_method"]}).to_dict()
            if seti.get("status") != "succeeded" or not seti.get("customer") or not seti.get("payment_method"):
                return None
            pm = self._attach(seti)["payment_method"]  # Stripe attaches it to the customer; make sure of it
            method_type, brand, last4, exp_month, exp_year = _method_facts(pm)
            return MethodUpdate(_id_of(seti["customer"]), method_type or "card", _id_of(pm), brand, last4,
                                exp_month, exp_year, setup_id=seti["id"])
        return None
