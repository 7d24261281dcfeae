"""Run localstripe (a stateful fake of the Stripe API) on loopback, taught the API version the portal uses.

localstripe 1.15 models an older Stripe API. The portal's `stripe` SDK pins API version 2026-10-28.endive,
in which Stripe removed ``payment_method_types`` as a writable parameter of PaymentIntents and SetupIntents
(Stripe changelog, "Removes the payment method types parameter from Payment Intents and Setup Intents",
2026-09-30.endive) in favour of ``allowed_payment_method_types``. This module renames that one parameter on
the way in, and lets a PaymentIntent confirm take the two parameters Stripe documents for a server-side
confirm whose behaviour localstripe already models: ``payment_method`` (set the method, then confirm, as
its own update + confirm does) and ``use_stripe_sdk`` (its only next action is already the Stripe.js kind).
Nothing else is added: ConfirmationTokens, ``setup_future_usage``, ``mandate_data`` and ACH stay
unmodelled and are refused as before, so the tests cannot pass on behaviour the fake does not have.

Usage: python -m tests.localstripe_server PORT
"""
import sys


def teach(resources):
    """Patch localstripe's resources in place (before its server module builds the routes)."""
    def renaming(init):
        def __init__(self, *args, allowed_payment_method_types=None, **kwargs):
            if allowed_payment_method_types is not None:
                if "payment_method_types" in kwargs:
                    raise resources.UserError(400, "allowed_payment_method_types and payment_method_types "
                                                   "are mutually exclusive")
                kwargs["payment_method_types"] = allowed_payment_method_types
            init(self, *args, **kwargs)
        return __init__

    for cls in (resources.PaymentIntent, resources.SetupIntent):
        cls.__init__ = renaming(cls.__init__)

    original = resources.PaymentIntent._api_confirm

    def _api_confirm(id, payment_method=None, use_stripe_sdk=None, **kwargs):
        if payment_method is not None:
            obj = resources.PaymentIntent._api_retrieve(id)
            resources.PaymentMethod._api_retrieve(payment_method)  # 404 for an unknown method, as Stripe
            if obj.status not in ("requires_payment_method", "requires_confirmation"):
                raise resources.UserError(400, "Bad request")
            obj.payment_method = payment_method
        return original(id, **kwargs)

    resources.PaymentIntent._api_confirm = staticmethod(_api_confirm)
    resources.extra_apis[:] = [(m, path, _api_confirm if fn == original else fn)
                               for m, path, fn in resources.extra_apis]


def main(port):
    import aiohttp.web
    from localstripe import resources

    # localstripe pickles its whole store to one fixed file in the temp folder after every write: slow, and
    # two test runs at once overwrite each other's file. Each test run starts its own server and resets it
    # per test, so the store stays in memory only.
    resources.Store.dump_to_disk = resources.Store.try_load_from_disk = lambda self: None
    teach(resources)
    from localstripe.server import app

    aiohttp.web.run_app(app, host="127.0.0.1", port=port, print=None)


if __name__ == "__main__":
    main(int(sys.argv[1]))
