"""The small interface every payment processor implements, and how one is chosen.

A processor holds an *intent* per payment attempt, keyed by our idempotency
key. The portal never learns an outcome from the browser: it asks the
processor (``retrieve``) and moves its own payment state from the answer.
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
