"""The small interface every payment processor implements, and how one is chosen.

A processor holds an *intent* per payment attempt, keyed by our idempotency
key. The portal never learns an outcome from the browser: it asks the
processor (``retrieve``) and moves its own payment state from the answer.
Every IntentState carries the amount and currency the processor holds, and
the portal checks both against the payment before it allocates anything.
``cancel(intent_id)`` stops an attempt that was replaced, abandoned or no
longer fits; it returns the intent's state (already paid intents stay paid).
"""
from dataclasses import dataclass

# Intent statuses, as the processor reports them (Stripe's names).
REQUIRES_PAYMENT_METHOD = "requires_payment_method"
REQUIRES_ACTION = "requires_action"
PROCESSING = "processing"
SUCCEEDED = "succeeded"
FAILED = "failed"  # settled and failed (an ACH return); terminal
CANCELED = "canceled"


@dataclass(frozen=True)
class IntentState:
    """What the processor says about one payment attempt."""

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
    # What the customer must do next, when status is REQUIRES_ACTION: "authenticate" (the bank's check,
    # which the processor's script runs in the window) or "verify_microdeposits" (the customer confirms two
    # small deposits on the processor's page at ``verify_url``; nothing for the window to run).
    next_action: str = ""
    verify_url: str = ""


AUTHENTICATE = "authenticate"
VERIFY_MICRODEPOSITS = "verify_microdeposits"


class ProcessorError(Exception):
    """The processor could not be reached or refused the request."""


class ConfigError(Exception):
    """The processor settings are incomplete; str() names what is missing."""


def build_processor(config):
    """The processor the configuration asks for."""
    name = (config.get("PAYMENT_PROCESSOR") or "sandbox").lower()
    if name == "sandbox":
        from billing.processors.sandbox import SandboxProcessor

        return SandboxProcessor(webhook_secret=config["SANDBOX_WEBHOOK_SECRET"],
                                settle_seconds=int(config.get("SANDBOX_ACH_SETTLE_SECONDS") or 0))
    if name == "stripe":
        from billing.processors.stripe import StripeProcessor

        return StripeProcessor.from_config(config)
    raise ConfigError(f"PAYMENT_PROCESSOR must be 'sandbox' or 'stripe', not {name!r}")


# --- What a remote processor reports after re-reading the object a webhook is about. ---
# (billing.payments.apply_update applies these; the Stripe processor builds them.)


@dataclass(frozen=True)
class IntentUpdate:
    """A payment_intent.* event, re-read: the intent's current state."""

    intent_id: str
    state: IntentState


@dataclass(frozen=True)
class RefundsUpdate:
    """A charge.refunded or charge.refund.updated event, re-read: every live refund of the intent as
    (refund id, cents), and the ids of refunds that failed or were canceled (the money stayed with us)."""

    intent_id: str
    refunds: tuple
    failed: tuple = ()


@dataclass(frozen=True)
class DisputeUpdate:
    """A charge.dispute.* event, re-read: the dispute's current status and amount."""

    intent_id: str
    dispute_id: str
    status: str  # Stripe's: warning_*, needs_response, under_review, appeal_*, won, lost, prevented
    amount_cents: int
    reason: str = ""


@dataclass(frozen=True)
class MethodUpdate:
    """A setup_intent.succeeded event, re-read: a method the customer saved for later."""

    customer_ref: str
    method_type: str
    method_token: str
    brand: str
    last4: str
    exp_month: int = None
    exp_year: int = None
    setup_id: str = ""  # the SetupIntent that saved it, when the portal's Add opened one


@dataclass(frozen=True)
class MandateUpdate:
    """A mandate.updated event, re-read: the debit authorization of a saved bank account, and whether it is
    still active (Stripe: ``active``, ``inactive`` or ``pending``)."""

    method_token: str
    mandate_id: str
    status: str


@dataclass(frozen=True)
class CardUpdate:
    """A payment_method.updated / payment_method.automatically_updated event, re-read: a saved card's details
    now (the card updater gives a renewed card a new expiry, sometimes new digits)."""

    method_token: str
    brand: str
    last4: str
    exp_month: int = None
    exp_year: int = None
