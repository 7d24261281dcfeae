"""The interface every payment processor implements in full, and the values it hands back.

The portal keeps one *payment intent* per payment attempt and one *setup intent* per "save this method"
at the processor, each created with our idempotency key. It never learns an outcome from the browser:
it asks the processor (``retrieve_*``) or hears from it (a verified webhook, parsed into one
``ProcessorEvent``), and moves its own state from that answer (billing.payments).

Every IntentState carries the amount and currency the processor holds, and the portal checks both
against the payment before it allocates anything.

A processor declares what it can do in ``capabilities``; code above it checks a capability, never the
processor's name or the presence of a method. Its own pages (the card and bank entry window) live in
the views module named by ``pages``, which the app factory registers; this package stays free of Flask.
"""
import abc
import enum
from dataclasses import dataclass
from typing import NamedTuple, Optional, Union

# Intent statuses, as the processor reports them (Stripe's names).
REQUIRES_PAYMENT_METHOD = "requires_payment_method"
REQUIRES_ACTION = "requires_action"
PROCESSING = "processing"
SUCCEEDED = "succeeded"
FAILED = "failed"  # settled and failed (an ACH return before success); terminal
CANCELED = "canceled"
# The processor holds the money (a card authorization) and takes it only when the portal captures it: the
# portal checks the payment still fits, under the customer's lock, before it captures, and releases it if not.
AUTHORIZED = "authorized"
# The bank account must be verified before it can be debited (Stripe: ``requires_action`` with the next action
# ``verify_with_microdeposits``): small deposits reach the account, the customer types them on the processor's
# page (``IntentState.verification.url``), and only then is the account debited (PROCESSING) or saved. Only a
# processor that declares Capability.BANK_VERIFICATION reports it.
REQUIRES_VERIFICATION = "requires_verification"
# What the customer types on the verification page: the two deposits' amounts, or the one deposit's code.
MICRODEPOSIT_AMOUNTS = "amounts"
MICRODEPOSIT_DESCRIPTOR_CODE = "descriptor_code"

# Where the entry window opens: a pop-up, inside the portal page (pop-ups blocked), or this tab (no JS).
WINDOW_MODES = ("popup", "inline", "page")


class Capability(enum.Enum):
    """Something a processor can do beyond taking a payment with the customer present."""

    SAVED_METHODS = "saved_methods"  # setup intents: save a card or bank account without paying
    OFF_SESSION = "off_session"  # charge a saved method with nobody present (autopay)
    REFUNDS = "refunds"  # full and partial refunds of a succeeded payment
    DISPUTES = "disputes"  # reports chargebacks and their outcomes (as DisputeUpdate events)
    BANK_VERIFICATION = "bank_verification"  # a bank account can wait for verification (microdeposits)


@dataclass(frozen=True)
class BankVerification:
    """How a customer verifies the bank account of a REQUIRES_VERIFICATION intent."""

    url: str  # the processor's own verification page (Stripe's hosted_verification_url)
    microdeposit_type: str  # MICRODEPOSIT_AMOUNTS or MICRODEPOSIT_DESCRIPTOR_CODE
    arrives_at: object = None  # UTC datetime when the deposits are expected in the account, if known
    expires_at: object = None  # UTC datetime after which the processor no longer accepts the verification


@dataclass(frozen=True)
class IntentState:
    """What the processor says about one payment or setup intent."""

    id: str
    status: str
    amount_cents: int
    client_secret: str = ""
    brand: str = ""
    last4: str = ""
    exp_month: int = None
    exp_year: int = None
    method_token: str = ""
    failure_code: str = ""
    failure_message: str = ""
    currency: str = ""  # ISO code, upper case, as the processor reports it (checked before allocation)
    verification: Optional[BankVerification] = None  # with REQUIRES_VERIFICATION only


class Refund(NamedTuple):
    """A refund the processor accepted: its id and the cents it will return."""

    id: str
    amount_cents: int


class ProcessorError(Exception):
    """The processor could not be reached or refused the request."""


class ConfigError(Exception):
    """The processor settings are incomplete; str() names what is missing."""


class BadWebhook(ValueError):
    """A webhook whose signature, timestamp or body does not verify; str() says which."""


class Unsupported(ProcessorError):
    """The processor does not declare the capability this call needs."""


# --- What a processor reports after re-reading the object a webhook is about. ---------------------------
# (billing.payments.apply_update applies these.)


@dataclass(frozen=True)
class IntentUpdate:
    """A payment intent's current state."""

    intent_id: str
    state: IntentState


@dataclass(frozen=True)
class SetupUpdate:
    """A setup intent's current state (one waiting for its bank account to be verified, say)."""

    setup_id: str
    state: IntentState


@dataclass(frozen=True)
class RefundsUpdate:
    """Every live refund of the intent, as (refund id, cents), and the ids of those that failed or were
    canceled after they were made (an ACH refund can fail days later): their money is the customer's again."""

    intent_id: str
    refunds: tuple
    failed: tuple = ()


@dataclass(frozen=True)
class DisputeUpdate:
    """A dispute's current status and amount."""

    intent_id: str
    dispute_id: str
    status: str  # Stripe's: warning_*, needs_response, under_review, won, lost
    amount_cents: int
    reason: str = ""


@dataclass(frozen=True)
class MethodUpdate:
    """A method the customer saved at the processor, for the portal customer ``customer_id``."""

    customer_id: int
    method_type: str
    method_token: str
    brand: str
    last4: str
    exp_month: int = None
    exp_year: int = None
    setup_id: str = ""  # the setup intent that saved it, when the portal's Add opened one


@dataclass(frozen=True)
class MethodChanged:
    """The processor changed a saved method: a card the bank renewed or replaced (new expiry or number), or a
    bank account whose mandate ended (``usable`` False: it may not be debited again)."""

    method_token: str
    brand: str = ""
    last4: str = ""
    exp_month: int = None
    exp_year: int = None
    usable: bool = True


Update = Union[IntentUpdate, RefundsUpdate, DisputeUpdate, MethodUpdate, SetupUpdate, MethodChanged]


@dataclass(frozen=True)
class ProcessorEvent:
    """One verified webhook, normalized: the processor's event id and type, and what it says now.

    ``handled`` is False for a type the processor does not subscribe to (answered 200, not recorded).
    ``update`` is None for a handled event about nothing the portal knows (recorded once, no effect).
    """

    id: str
    type: str
    update: Optional[Update] = None
    handled: bool = True


class Processor(abc.ABC):
    """A payment processor, as the portal uses it. Every method may raise ProcessorError."""

    name: str = ""  # also the webhook path: /webhooks/<name>
    capabilities: frozenset = frozenset()
    live: bool = False  # real money moves (Stripe with live keys); pages may show test values otherwise
    remote: bool = False  # each question is a network call against the processor's rate limits (sync backs off)
    pages: str = ""  # dotted name of the views module holding its blueprint (see views/windows.py)
    # Billing fields its entry page must be handed for a payment type, beyond what it asks itself: e.g. a
    # bank-debit mandate that names the holder and their email. A pay link asks for exactly these.
    page_fields: dict = {}

    def fields_for_page(self, method_type):
        """The billing fields (tuple of names) the entry page needs from the portal for ``method_type``."""
        return tuple(self.page_fields.get(method_type, ()))

    def can(self, capability):
        """True when the processor declares ``capability``."""
        return capability in self.capabilities

    def require(self, capability):
        """Raise Unsupported unless the processor declares ``capability``."""
        if capability not in self.capabilities:
            raise Unsupported(f"the {self.name} processor does not support {capability.value.replace('_', ' ')}")

    # --- Payment intents: one per payment attempt. --------------------------------------------------

    @abc.abstractmethod
    def create_payment_intent(self, *, amount_cents, currency, method_type, idempotency_key, metadata=None):
        """Create (or, for a repeated key, return) the intent of one payment attempt -> IntentState.

        ``metadata["payment_ref"]`` is the payment's reference; ``metadata["customer_id"]`` names the portal
        customer, for processors that keep their own (left out when the card must never be kept for the
        account, e.g. a pay link's). A repeated key must send the same body, so nothing in it may change.
        """

    @abc.abstractmethod
    def retrieve_payment_intent(self, intent_id):
        """The payment intent's current state -> IntentState."""

    @abc.abstractmethod
    def cancel_payment_intent(self, intent_id):
        """Cancel an intent that has not been paid, so that it can never be confirmed -> IntentState.

        An intent already succeeded or processing is left as it is and returned.
        """

    @abc.abstractmethod
    def capture_payment_intent(self, intent_id):
        """Take the money an AUTHORIZED intent holds -> IntentState (SUCCEEDED once taken).

        An intent not waiting for capture is left as it is and returned; asking twice takes the money once.
        """

    @abc.abstractmethod
    def find_payment_intent(self, idempotency_key, payment_ref=""):
        """The payment intent of this attempt (its idempotency key, or the payment reference it carries), or
        None (reconcile after a crash)."""

    @abc.abstractmethod
    def verify_microdeposits(self, intent_id, *, amounts=None, descriptor_code=None):
        """Check what the customer typed against a REQUIRES_VERIFICATION intent's deposits (BANK_VERIFICATION)
        -> (IntentState, field errors).

        ``amounts`` is the two deposits in cents, or ``descriptor_code`` the deposit's SM code, as the intent's
        ``verification.microdeposit_type`` asks. Right: the debit starts (PROCESSING). Wrong: an error for the
        field ("amounts" or "descriptor_code"), in words for the customer, and the intent still waits; the last
        wrong try, or a try too late, fails the intent and nothing is debited. The portal calls this from its own
        page after checking that the payment still fits, so that a verification is where the money moves.
        """

    @abc.abstractmethod
    def charge_saved_method(self, intent_id, method_token):
        """Confirm a waiting payment intent with a saved method, the customer present -> IntentState."""

    @abc.abstractmethod
    def charge_off_session(self, *, amount_cents, currency, method_type, method_token, customer_id,
                           idempotency_key, metadata=None):
        """Create and confirm an intent with a saved method, nobody present (OFF_SESSION) -> IntentState.

        A repeated key is the same charge. A card whose bank wants the customer comes back
        REQUIRES_ACTION with failure_code ``authentication_required``; a decline as
        REQUIRES_PAYMENT_METHOD with a failure code.
        """

    # --- Setup intents: save a card or bank account without paying (SAVED_METHODS). -------------------

    @abc.abstractmethod
    def create_setup_intent(self, *, method_type, idempotency_key, customer_id):
        """Create (or, for a repeated key, return) a setup intent -> IntentState (amount 0).

        Once it has succeeded, ``method_token`` is the saved method's token for charge_* calls.
        """

    @abc.abstractmethod
    def retrieve_setup_intent(self, setup_id):
        """The setup intent's current state -> IntentState."""

    @abc.abstractmethod
    def cancel_setup_intent(self, setup_id):
        """Cancel a setup intent that has not succeeded -> IntentState."""

    # --- Money back (REFUNDS). ------------------------------------------------------------------------

    @abc.abstractmethod
    def refund(self, intent_id, amount_cents, idempotency_key):
        """Refund ``amount_cents`` (part or all) of a succeeded intent -> Refund. A repeated key is one refund."""

    @abc.abstractmethod
    def find_refund(self, intent_id, idempotency_key):
        """The live refund of the intent made with this idempotency key -> Refund, or None if there is none.

        A refund request the portal wrote down but never heard back about (a crash, a timeout) is settled
        from this answer, so asking must never create a refund.
        """

    # --- Webhooks. --------------------------------------------------------------------------------------

    @abc.abstractmethod
    def parse_webhook(self, body, headers):
        """Verify a webhook on its raw body and headers and say what it means now -> ProcessorEvent.

        Raises BadWebhook for a bad signature, a stale timestamp or a malformed body (answer 400), and
        ProcessorError when the object could not be re-read (answer 5xx, so the processor retries).
        The update is re-read from the processor, never taken from the body alone.
        """
