"""Payment processors behind one interface (billing.processors.interface), and how one is chosen.

``PAYMENT_PROCESSOR`` names one of ``PROCESSORS``; that is the only place a processor is picked by
name. Everything the rest of the portal uses is re-exported here.
"""
import importlib

from billing.processors.interface import (  # noqa: F401  (the package's public names)
    AUTHORIZED,
    CANCELED,
    FAILED,
    PROCESSING,
    REQUIRES_ACTION,
    REQUIRES_PAYMENT_METHOD,
    REQUIRES_VERIFICATION,
    SUCCEEDED,
    MICRODEPOSIT_AMOUNTS,
    MICRODEPOSIT_DESCRIPTOR_CODE,
    WINDOW_MODES,
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
    Unsupported,
    Update,
)

# name -> "module:class"; each class has ``from_config(config)``.
PROCESSORS = {
    "sandbox": "billing.processors.sandbox:SandboxProcessor",
    "stripe": "billing.processors.stripe:StripeProcessor",
}


def build_processor(config):
    """The processor the configuration asks for."""
    name = (config.get("PAYMENT_PROCESSOR") or "sandbox").strip().lower()
    if name not in PROCESSORS:
        raise ConfigError(f"PAYMENT_PROCESSOR must be one of {', '.join(map(repr, PROCESSORS))}, not {name!r}")
    module, cls = PROCESSORS[name].split(":")
    return getattr(importlib.import_module(module), cls).from_config(config)
