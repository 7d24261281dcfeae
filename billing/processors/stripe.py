"""Stripe as the live processor: the only module that imports ``stripe``.

The portal keeps one PaymentIntent per payment attempt, created with our
idempotency key and a body that never changes for that key (amount, currency,
method type, Customer, and our payment reference as the only metadata: Stripe
refuses a retried key with other parameters). Card and bank details go from the
customer's browser straight to Stripe (Stripe.js); this module only ever sees
Stripe's ids. Cards are PaymentMethods only (no tokens, sources or Card
objects): the window's Card Element makes a PaymentMethod and *this server*
confirms the intent with it (``use_stripe_sdk``, so Stripe.js can run the bank's
check at once), saving it on the Customer (``setup_future_usage``) only when the
customer asked. What a webhook says is never trusted on its own: ``read_event``
re-reads the object from Stripe and reports what Stripe says *now*, so events
may arrive in any order.
"""
import dataclasses
import datetime as dt

import stripe
from stripe.params import (
    PaymentIntentConfirmParams,
    PaymentIntentConfirmParamsMandateData,
    PaymentIntentCreateParams,
    PaymentIntentVerifyMicrodepositsParams,
    SetupIntentConfirmParamsMandateData,
    SetupIntentCreateParams,
)
from peewee import IntegrityError

from billing.processors.interface import (
    AUTHORIZED,
    CANCELED,
    FAILED,
    MICRODEPOSIT_AMOUNTS,
    MICRODEPOSIT_DESCRIPTOR_CODE,
    PROCESSING,
    REQUIRES_ACTION,
    REQUIRES_PAYMENT_METHOD,
    REQUIRES_VERIFICATION,
    SUCCEEDED,
    BadWebhook,
    BankVerification,
    Capability,
    ConfigError,
    DisputeUpdate,
    IntentState,
    IntentUpdate,
    MethodChanged,
    MethodUpdate,
    Processor,
    ProcessorError,
    ProcessorEvent,
    Refund,
    RefundsUpdate,
    SetupUpdate,
)
from billing.words import N_
from db import write_tx
from db.models import Customer, StripeCustomer

SIGNATURE_HEADER = "Stripe-Signature"
SIGNATURE_TOLERANCE = 300  # seconds: Stripe's own default, and what the issue asks for
# Stripe.js is pinned to the release named by the API version this SDK pins (stripe 16: 2026-10-28.endive):
# Stripe names each Stripe.js major release after its API release; /v3/ is the old unversioned line.
STRIPE_JS_RELEASE = stripe.api_version.rsplit(".", 1)[-1]
DEFAULT_JS_URL = f"https://js.stripe.com/{STRIPE_JS_RELEASE}/stripe.js"
HANDLED_EVENTS = (
    "payment_intent.processing",
    "payment_intent.succeeded",
    "payment_intent.payment_failed",
    "payment_intent.amount_capturable_updated",  # a card payment confirmed and held: captured if it still fits
    "payment_intent.requires_action",  # a bank account to verify with microdeposits (or a card's 3-D Secure)
    "charge.refunded",
    "charge.refund.updated",  # a refund that failed or was canceled after it was made (ACH refunds can)
    "charge.dispute.created",
    "charge.dispute.updated",  # an inquiry becoming a chargeback, evidence under review, an appeal
    "charge.dispute.closed",
    "setup_intent.succeeded",
    "setup_intent.requires_action",
    "payment_method.updated",  # a saved card's details changed (its expiry, say)
    "payment_method.automatically_updated",  # the card network's updater renewed or replaced a saved card
    "mandate.updated",  # a bank account's mandate went inactive: it may not be debited again  # a bank account to save once verified with microdeposits
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
LIVE_REFUND = ("succeeded", "pending", "requires_action")  # a refund in these states is (or will be) money back
DEAD_REFUND = ("failed", "canceled")  # a refund that never reached the customer: its money is theirs again
# Stripe: microdeposits arrive in 1-2 business days (``arrival_date``) and must be verified within 10 days.
VERIFY_WITHIN = dt.timedelta(days=10)


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


def _timestamp(value):
    """A UTC datetime (naive, as the portal stores them) for a Unix timestamp, or None."""
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
        return None
    return dt.datetime.fromtimestamp(value, dt.timezone.utc).replace(tzinfo=None)


# Stripe's codes for a verification try that did not match (the intent still waits), in words for the customer.
VERIFY_MISMATCH = {
    "payment_method_microdeposit_verification_amounts_mismatch":
        N_("Those amounts do not match the deposits. Check your bank statement and try again."),
    "payment_method_microdeposit_verification_amounts_invalid":
        N_("Enter the two deposits' amounts in cents, like 32 and 45."),
    "payment_method_microdeposit_verification_descriptor_code_mismatch":
        N_("That code does not match the deposit. Check your bank statement and try again."),
}


def verification_of(obj):
    """The BankVerification of a PaymentIntent or SetupIntent waiting for microdeposits, or None.

    Stripe's shape: ``status: requires_action`` with ``next_action.type: verify_with_microdeposits`` and
    ``next_action.verify_with_microdeposits`` holding ``hosted_verification_url``, ``microdeposit_type``
    (``amounts`` or ``descriptor_code``) and ``arrival_date``.
    """
    action = obj.get("next_action") or {}
    if obj.get("status") != "requires_action" or action.get("type") != "verify_with_microdeposits":
        return None
    details = action.get("verify_with_microdeposits") or {}
    url = details.get("hosted_verification_url") or ""
    if not isinstance(url, str) or not url.startswith("https://"):
        return None  # without Stripe's page the customer has nowhere to verify: treated as any requires_action
    arrives = _timestamp(details.get("arrival_date"))
    kind = (MICRODEPOSIT_DESCRIPTOR_CODE if details.get("microdeposit_type") == MICRODEPOSIT_DESCRIPTOR_CODE
            else MICRODEPOSIT_AMOUNTS)  # Stripe's default, and its only other value
    return BankVerification(url=url, microdeposit_type=kind, arrives_at=arrives,
                            expires_at=arrives + VERIFY_WITHIN if arrives else None)


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
    elif status == "requires_capture":
        mapped = AUTHORIZED
    elif status == "processing":
        mapped = PROCESSING
    elif status == "requires_action":
        mapped = REQUIRES_VERIFICATION if verification_of(pi) else REQUIRES_ACTION
    elif status == "canceled":
        mapped = CANCELED
    elif status == "requires_payment_method" and error and ach:
        # A bank debit that was processing and then failed (an ACH return): final for this attempt.
        mapped = FAILED
    else:  # requires_payment_method / requires_confirmation: still waiting for a (new) method
        mapped = REQUIRES_PAYMENT_METHOD
    if mapped in (SUCCEEDED, PROCESSING):
        code = message = ""
    return IntentState(
        id=pi["id"], status=mapped, amount_cents=int(pi.get("amount") or 0),
        client_secret=pi.get("client_secret") or "", brand=brand, last4=last4,
        exp_month=exp_month, exp_year=exp_year, method_token=_id_of(pi.get("payment_method")) or "",
        failure_code=code, failure_message=message, currency=str(pi.get("currency") or "").upper(),
        verification=verification_of(pi),
    )


def setup_state(seti):
    """Our IntentState for a SetupIntent (a plain dict, its payment method expanded): a method saved, no money.

    ``method_token`` is given only once the SetupIntent has succeeded, so nobody saves a method Stripe has
    not finished setting up.
    """
    status = seti.get("status")
    mapped = {"succeeded": SUCCEEDED, "requires_action": REQUIRES_ACTION, "processing": PROCESSING,
              "canceled": CANCELED}.get(status, REQUIRES_PAYMENT_METHOD)
    verification = verification_of(seti)
    if verification is not None:
        mapped = REQUIRES_VERIFICATION
    pm = seti.get("payment_method")
    _, brand, last4, exp_month, exp_year = _method_facts(pm)
    error = seti.get("last_setup_error") or {}
    return IntentState(
        id=seti["id"], status=mapped, amount_cents=0, client_secret=seti.get("client_secret") or "",
        brand=brand, last4=last4, exp_month=exp_month, exp_year=exp_year,
        method_token=(_id_of(pm) or "") if mapped == SUCCEEDED else "",
        failure_code="" if mapped == SUCCEEDED else (error.get("decline_code") or error.get("code") or ""),
        failure_message="" if mapped == SUCCEEDED else (error.get("message") or ""),
        verification=verification,
    )


def _metadata(metadata):
    """What Stripe keeps in an intent's metadata: our payment reference only, which never changes for a key."""
    return {"payment_ref": str((metadata or {}).get("payment_ref") or "")}


class StripeProcessor(Processor):
    """The processor interface (billing.processors.interface) on top of the Stripe API."""

    name = "stripe"
    capabilities = frozenset(Capability)  # BANK_VERIFICATION: us_bank_account's microdeposits
    pages = "views.stripe_pay"
    remote = True  # every read is an API call: payment pages poll our own row, and sync asks Stripe with backoff
    page_fields = {"ach": ("name", "email")}  # the us_bank_account mandate names the holder and their email

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

    def create_payment_intent(self, *, amount_cents, currency, method_type, idempotency_key, metadata=None):
        """Create (or, for a repeated key, return) the PaymentIntent for one payment attempt.

        The body is the same every time this key is used, because Stripe refuses a retried key with other
        parameters: its metadata is our payment reference only (never the invoices, which change over time).
        Whether the card is saved (``setup_future_usage``) is decided at confirmation, by this server.
        """
        params: PaymentIntentCreateParams = {
            "amount": amount_cents, "currency": currency.lower(),
            "allowed_payment_method_types": [METHOD_TYPES[method_type]], "metadata": _metadata(metadata)}
        if (metadata or {}).get("customer_id"):
            params["customer"] = self.customer_ref(int(metadata["customer_id"]))
        if method_type == "card":
            # The window's Stripe.js holds this intent's client secret, so a browser could confirm it with Stripe
            # directly and skip the portal's charge-time check. With a manual capture, a confirmation only holds
            # the money: the portal takes it (capture_payment_intent) after checking that the payment still fits,
            # and releases it otherwise. Bank debits (us_bank_account) cannot be captured manually at Stripe.
            params["capture_method"] = "manual"
        pi = self._call(self._client.v1.payment_intents.create, params=params,
                        options={"idempotency_key": f"pi-{idempotency_key}"})
        return intent_state(pi.to_dict())

    def capture_payment_intent(self, intent_id):
        """Take the money a confirmed card intent holds (requires_capture); a repeat takes it once."""
        pi = self._intent(intent_id)
        if pi.get("status") != "requires_capture":
            return intent_state(pi)
        try:
            self._client.v1.payment_intents.capture(intent_id, options={"idempotency_key": f"capture-{intent_id}"})
        except stripe.InvalidRequestError:
            pass  # captured meanwhile (a concurrent sync), or canceled: read where it is
        except stripe.StripeError as e:
            raise ProcessorError(getattr(e, "user_message", None) or type(e).__name__) from None
        return self.retrieve_payment_intent(intent_id)

    def retrieve_payment_intent(self, intent_id):
        """The PaymentIntent's current state, as Stripe has it now."""
        return intent_state(self._intent(intent_id))

    def cancel_payment_intent(self, intent_id):
        """Cancel a PaymentIntent that has not been paid, so that it can never be confirmed; its state now.

        Stripe refuses to cancel an intent that succeeded or is processing: then its state says so.
        """
        try:
            self._client.v1.payment_intents.cancel(intent_id, params={"cancellation_reason": "abandoned"})
        except stripe.InvalidRequestError:
            pass  # not cancelable any more (paid, processing or already canceled): read where it is
        except stripe.StripeError as e:
            raise ProcessorError(getattr(e, "user_message", None) or type(e).__name__) from None
        return self.retrieve_payment_intent(intent_id)

    # --- Saving a method without a payment: a SetupIntent on the customer's Stripe Customer. ---

    def create_setup_intent(self, *, method_type, idempotency_key, customer_id):
        """Create (or, for a repeated key, return) the SetupIntent that saves a card or bank account.

        Stripe.js confirms it in the setup window (card), or this server confirms it with the mandate
        the customer accepted there (bank account). Nothing is charged.
        """
        params: SetupIntentCreateParams = {"allowed_payment_method_types": [METHOD_TYPES[method_type]],
                                           "usage": "off_session",
                                           "metadata": {"idempotency_key": idempotency_key, "customer_id": str(customer_id or "")}}
        if customer_id:
            params["customer"] = self.customer_ref(int(customer_id))
        if method_type == "ach":
            # Real Stripe: link the account through Financial Connections (instant), or by micro-deposits.
            # Not tested against localstripe, which has no us_bank_account.
            params["payment_method_options"] = {"us_bank_account": {
                "verification_method": "automatic",
                "financial_connections": {"permissions": ["payment_method"]}}}
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

    def retrieve_setup_intent(self, setup_id):
        """The SetupIntent's state now; once it succeeded, its method is attached to the Customer."""
        return setup_state(self._attach(self._setup(setup_id)))

    def cancel_setup_intent(self, setup_id):
        """Cancel a SetupIntent that has not succeeded."""
        seti = self._setup(setup_id)
        if seti.get("status") in ("requires_payment_method", "requires_confirmation", "requires_action"):
            self._call(self._client.v1.setup_intents.cancel, setup_id)
            seti = self._setup(setup_id)
        return setup_state(seti)

    def confirm_setup_bank(self, setup_id, *, ip_address, user_agent, accepted_at):
        """Confirm a bank-account SetupIntent (the account linked by Stripe.js) with the mandate we recorded.

        Written for real Stripe (us_bank_account with ``mandate_data``); localstripe has no ACH, so this is
        not tested against it.
        """
        seti = self._setup(setup_id)
        if seti.get("status") not in ("requires_payment_method", "requires_confirmation"):
            return setup_state(self._attach(seti))
        mandate: SetupIntentConfirmParamsMandateData = {"customer_acceptance": {
            "type": "online", "accepted_at": int(accepted_at.replace(tzinfo=dt.timezone.utc).timestamp()),
            "online": {"ip_address": ip_address, "user_agent": user_agent}}}
        try:
            self._client.v1.setup_intents.confirm(setup_id, params={"mandate_data": mandate})
        except stripe.InvalidRequestError as e:
            state = self.retrieve_setup_intent(setup_id)
            if state.status == REQUIRES_PAYMENT_METHOD and not state.failure_message:
                state = dataclasses.replace(state, failure_code=e.code or "setup_refused",
                                            failure_message=e.user_message or "The bank account could not be saved.")
            return state
        except stripe.StripeError as e:
            raise ProcessorError(getattr(e, "user_message", None) or type(e).__name__) from None
        return self.retrieve_setup_intent(setup_id)

    def find_payment_intent(self, idempotency_key, payment_ref=""):
        """The intent of the payment with this reference (in its metadata), or None (reconcile uses this)."""
        if not payment_ref:
            return None
        try:
            found = self._client.v1.payment_intents.search(
                params={"query": f"metadata['payment_ref']:'{payment_ref}'", "limit": 1})
            data = found.to_dict().get("data") or []
            return self.retrieve_payment_intent(data[0]["id"]) if data else None
        except stripe.InvalidRequestError:
            pass  # search is not offered everywhere (and not by every test server): list recent intents
        except stripe.StripeError as e:
            raise ProcessorError(getattr(e, "user_message", None) or type(e).__name__) from None
        since = int((dt.datetime.now(dt.timezone.utc) - LIST_LOOKBACK).timestamp())
        page = self._call(self._client.v1.payment_intents.list, params={"limit": 100})
        for pi in page.auto_paging_iter():
            pi = pi.to_dict()
            if (pi.get("metadata") or {}).get("payment_ref") == payment_ref:
                return self.retrieve_payment_intent(pi["id"])
            if int(pi.get("created") or since) < since:
                break
        return None

    def _confirm(self, intent_id, payment_method, confirm_params: PaymentIntentConfirmParams | None = None):
        """Attach a method to a waiting intent and confirm it; a paid intent is never confirmed again."""
        pi = self._intent(intent_id)
        if pi.get("status") not in ("requires_payment_method", "requires_confirmation"):
            return intent_state(pi)
        try:
            if payment_method:
                self._client.v1.payment_intents.update(intent_id, params={"payment_method": payment_method})
            self._client.v1.payment_intents.confirm(intent_id, params=confirm_params or None)
        except stripe.CardError as e:  # a decline: the intent waits for another card
            state = self.retrieve_payment_intent(intent_id)
            if not state.failure_message:
                state = dataclasses.replace(state, failure_code=e.code or "card_declined",
                                            failure_message=e.user_message or "Your card was declined.")
            return state
        except stripe.InvalidRequestError:
            # Stripe refused this confirmation (e.g. a concurrent Pay already confirmed the intent):
            # report where the intent is now, and never confirm it a second time.
            state = self.retrieve_payment_intent(intent_id)
            if state.status == REQUIRES_PAYMENT_METHOD:
                state = dataclasses.replace(state, failure_code="confirmation_refused", failure_message=(
                    "This payment could not be completed. Please start a new payment."))
            return state
        except stripe.StripeError as e:
            raise ProcessorError(getattr(e, "user_message", None) or type(e).__name__) from None
        return self.retrieve_payment_intent(intent_id)

    def verify_microdeposits(self, intent_id, *, amounts=None, descriptor_code=None):
        """Verify a waiting ACH intent's bank account with what the customer typed on the portal's own page.

        Stripe's ``POST /v1/payment_intents/{id}/verify_microdeposits``: right values start the debit
        (``processing``); a mismatch is a 400 with a ``payment_method_microdeposit_verification_*`` code and the
        intent still waits; too many tries or too late fail the intent (``requires_payment_method``, reported by
        intent_state as FAILED for a bank debit whose verification failed). localstripe has no microdeposits, so
        this is checked against Stripe's documented shapes (tests/test_stripe_bank_verification.py).
        """
        params: PaymentIntentVerifyMicrodepositsParams = (
            {"amounts": [int(a) for a in amounts]} if amounts is not None else {"descriptor_code": descriptor_code or ""})
        field = "amounts" if amounts is not None else "descriptor_code"
        try:
            self._client.v1.payment_intents.verify_microdeposits(intent_id, params=params)
        except stripe.InvalidRequestError as e:
            code = getattr(e, "code", "") or ""
            if code in VERIFY_MISMATCH:
                return self.retrieve_payment_intent(intent_id), {field: VERIFY_MISMATCH[code]}
            if not code.startswith("payment_method_microdeposit_verification"):
                raise ProcessorError(getattr(e, "user_message", None) or type(e).__name__) from None
            # attempts exceeded or timed out: the intent reports the failure itself
        except stripe.StripeError as e:
            raise ProcessorError(getattr(e, "user_message", None) or type(e).__name__) from None
        return self.retrieve_payment_intent(intent_id), {}

    def charge_saved_method(self, intent_id, method_token):
        """Confirm an intent with a saved method's id, the customer present (the billing step): with
        ``use_stripe_sdk``, so that a bank's check (3-D Secure) comes back as a next action for Stripe.js to run
        in the window at once."""
        return self._confirm(intent_id, method_token, {"use_stripe_sdk": True})

    def confirm_card(self, intent_id, payment_method, *, save):
        """Pay an intent with the PaymentMethod the window's Card Element made (only its id comes here).

        This server confirms, after the portal's own checks, with ``use_stripe_sdk`` (a bank's check comes back
        for Stripe.js to run in the window). ``save`` (the customer ticked the box) asks Stripe to attach the card
        to the intent's Customer for later payments (``setup_future_usage=off_session``); without it, the card
        is used for this payment only and never attached.
        """
        params: PaymentIntentConfirmParams = {"use_stripe_sdk": True}
        if save:
            params["setup_future_usage"] = "off_session"
        return self._confirm(intent_id, payment_method, params)

    def charge_off_session(self, *, amount_cents, currency, method_type, method_token, customer_id,
                                  idempotency_key, metadata=None):
        """Charge a saved method with nobody present (autopay): Stripe's documented off-session charge.

        One call creates and confirms the PaymentIntent with ``confirm=true`` and ``off_session=true`` (Stripe
        then applies the customer's earlier authorization; localstripe accepts both parameters on create, but
        not ``off_session`` on a later confirm). The attempt's idempotency key makes a retried call one charge.
        A card that needs the customer's bank check comes back as REQUIRES_ACTION, to be paid on-session.
        """
        params: PaymentIntentCreateParams = {
                  "amount": amount_cents, "currency": currency.lower(),
                  "allowed_payment_method_types": [METHOD_TYPES[method_type]], "metadata": _metadata(metadata),
                  "customer": self.customer_ref(int(customer_id)), "payment_method": method_token,
                  "confirm": True, "off_session": True}
        try:
            pi = self._client.v1.payment_intents.create(params=params,
                                                        options={"idempotency_key": f"pi-off-{idempotency_key}"})
        except stripe.CardError as e:
            return self._declined_off_session(e, idempotency_key, _metadata(metadata)["payment_ref"])
        except stripe.StripeError as e:
            raise ProcessorError(getattr(e, "user_message", None) or type(e).__name__) from None
        return self.retrieve_payment_intent(pi.id)

    def _declined_off_session(self, e, idempotency_key, payment_ref):
        error = (getattr(e, "json_body", None) or {}).get("error") or {}
        intent_id = _id_of(error.get("payment_intent"))
        if not intent_id and error.get("charge"):  # localstripe names the charge, not the intent
            intent_id = _id_of(self._call(self._client.v1.charges.retrieve, _id_of(error["charge"]))
                               .to_dict().get("payment_intent"))
        state = self.retrieve_payment_intent(intent_id) if intent_id else self.find_payment_intent(idempotency_key, payment_ref)
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

    def confirm_bank(self, intent_id, *, ip_address, user_agent, accepted_at):
        """Confirm an ACH intent whose bank account Stripe.js collected, with the mandate we recorded."""
        mandate: PaymentIntentConfirmParamsMandateData = {"customer_acceptance": {
            "type": "online", "accepted_at": int(accepted_at.replace(tzinfo=dt.timezone.utc).timestamp()),
            "online": {"ip_address": ip_address, "user_agent": user_agent}}}
        return self._confirm(intent_id, None, {"mandate_data": mandate})

    def refund(self, intent_id, amount_cents, idempotency_key):
        """Refund part or all of a paid intent -> Refund(id, cents)."""
        # The key goes in the metadata too: find_refund looks for it there (idempotency keys are not listed).
        refund = self._call(self._client.v1.refunds.create,
                            params={"payment_intent": intent_id, "amount": amount_cents,
                                    "metadata": {"idempotency_key": idempotency_key}},
                            options={"idempotency_key": idempotency_key})
        status = refund.to_dict().get("status")
        if status in DEAD_REFUND:  # never money back: not recorded as a refund at all
            raise ProcessorError(f"Stripe did not make the refund: it is {status}")
        return Refund(refund.id, int(refund.amount))

    def find_refund(self, intent_id, idempotency_key):
        """The intent's live refund whose metadata carries this key, or None (nothing is created)."""
        page = self._call(self._client.v1.refunds.list, params={"payment_intent": intent_id, "limit": 100})
        for r in page.auto_paging_iter():
            r = r.to_dict()
            if ((r.get("metadata") or {}).get("idempotency_key") == idempotency_key
                    and r.get("status", "succeeded") in LIVE_REFUND):
                return Refund(r["id"], int(r["amount"]))
        return None

    def refunds_of(self, intent_id):
        """Every refund of the intent that has not failed or been canceled, as (refund id, cents)."""
        return self._refunds(intent_id)[0]

    def _refunds(self, intent_id):
        """(live refunds as (refund id, cents), ids of refunds that failed or were canceled)."""
        page = self._call(self._client.v1.refunds.list, params={"payment_intent": intent_id, "limit": 100})
        live, dead = [], []
        for r in page.auto_paging_iter():
            r = r.to_dict()
            status = r.get("status", "succeeded")
            if status in LIVE_REFUND:
                live.append((r["id"], int(r["amount"])))
            elif status in DEAD_REFUND:
                dead.append(r["id"])
        return tuple(live), tuple(dead)

    # --- Webhooks. ---------------------------------------------------------------------------

    def parse_webhook(self, body, headers):
        """Verify Stripe's signature on the raw body, then re-read the event's object -> ProcessorEvent."""
        event = self.parse_event(body, headers.get(SIGNATURE_HEADER))
        if event["type"] not in HANDLED_EVENTS:
            return ProcessorEvent(event["id"], event["type"], None, handled=False)
        return ProcessorEvent(event["id"], event["type"], self.read_event(event))

    def parse_event(self, body, header):
        """Verify a webhook's signature on the raw body and return the event as a dict, or raise BadWebhook."""
        try:
            event = stripe.Webhook.construct_event(body, header or "", self._webhook_secret,
                                                   tolerance=SIGNATURE_TOLERANCE)
        except stripe.SignatureVerificationError as e:
            raise BadWebhook(str(e).split("\n")[0] or "bad signature") from None
        except (ValueError, KeyError, TypeError, AttributeError):  # e.g. a signed body that is not an object
            raise BadWebhook("malformed event body") from None
        event = event.to_dict()
        ids = (_get(event, "data", "object", "id"), event.get("id"), event.get("type"))
        # Stripe's ids and types are short strings; anything else is not an event of Stripe's.
        if not all(isinstance(v, str) and 0 < len(v) <= 255 for v in ids):
            raise BadWebhook("malformed event body")
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
            return IntentUpdate(obj["id"], self.retrieve_payment_intent(obj["id"]))
        if kind in ("charge.refunded", "charge.refund.updated"):  # a charge, or one refund of it
            intent_id = _id_of(obj.get("payment_intent"))
            if not intent_id:
                charge_id = obj["id"] if kind == "charge.refunded" else _id_of(obj.get("charge"))
                charge = self._call(self._client.v1.charges.retrieve, charge_id).to_dict() if charge_id else {}
                intent_id = _id_of(charge.get("payment_intent"))
            return RefundsUpdate(intent_id, *self._refunds(intent_id)) if intent_id else None
        if kind.startswith("charge.dispute."):
            d = self._call(self._client.v1.disputes.retrieve, obj["id"]).to_dict()
            intent_id = _id_of(d.get("payment_intent"))
            if not intent_id and d.get("charge"):
                charge = self._call(self._client.v1.charges.retrieve, _id_of(d["charge"])).to_dict()
                intent_id = _id_of(charge.get("payment_intent"))
            return DisputeUpdate(intent_id, d["id"], d.get("status") or "", int(d.get("amount") or 0),
                                 d.get("reason") or "") if intent_id else None
        if kind.startswith("payment_method."):
            pm = self._call(self._client.v1.payment_methods.retrieve, obj["id"]).to_dict()
            method_type, brand, last4, exp_month, exp_year = _method_facts(pm)
            return MethodChanged(pm["id"], brand, last4, exp_month, exp_year) if method_type == "card" else None
        if kind == "mandate.updated":
            mandate = self._call(self._client.v1.mandates.retrieve, obj["id"]).to_dict()
            token = _id_of(mandate.get("payment_method"))
            # A single-use mandate (one bank payment) goes inactive once used: only the saved account's
            # multi-use mandate ending means the account may not be debited again.
            ended = mandate.get("status") == "inactive" and mandate.get("type") == "multi_use"
            return MethodChanged(token, usable=False) if token and ended else None
        if kind == "setup_intent.requires_action":
            return SetupUpdate(obj["id"], self.retrieve_setup_intent(obj["id"]))
        if kind == "setup_intent.succeeded":
            seti = self._call(self._client.v1.setup_intents.retrieve, obj["id"],
                              params={"expand": ["payment_method"]}).to_dict()
            if seti.get("status") != "succeeded" or not seti.get("customer") or not seti.get("payment_method"):
                return None
            link = StripeCustomer.get_or_none(StripeCustomer.stripe_id == _id_of(seti["customer"]))
            if link is None:  # not a customer of this portal
                return None
            pm = self._attach(seti)["payment_method"]  # Stripe attaches it to the customer; make sure of it
            method_type, brand, last4, exp_month, exp_year = _method_facts(pm)
            return MethodUpdate(link.customer_id, method_type or "card", _id_of(pm), brand, last4,
                                exp_month, exp_year, setup_id=seti["id"])
        return None
