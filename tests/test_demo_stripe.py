"""`flask demo` with PAYMENT_PROCESSOR=stripe: the demo's history is paid through the sandbox (it used to
crash with AttributeError: 'StripeProcessor' object has no attribute 'confirm_card'), and Stripe is not charged."""
from billing import payments
from db.models import Payment
from tests.stripe_support import app, localstripe, stripe_server  # noqa: F401  (fixtures)


def test_demo_loads_with_stripe_configured_and_charges_nothing_at_stripe(app, stripe_server):  # noqa: F811
    result = app.test_cli_runner().invoke(args=["demo"])
    assert result.exit_code == 0, result.output
    assert "go through the sandbox" in result.output and "demo data loaded" in result.output
    paid = list(Payment.select().where(Payment.status == payments.SUCCEEDED))
    assert paid and all(p.processor == "sandbox" for p in paid)
    assert all(p.processor_ref.startswith("pi_sbx_") for p in paid)  # sandbox intents, none at Stripe
