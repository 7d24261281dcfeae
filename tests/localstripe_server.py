"""Run localstripe (a stateful fake of the Stripe API) on loopback, taught the API version the portal uses.

localstripe 1.15 models an older Stripe API. The portal's `stripe` SDK pins API version 2026-10-28.endive,
in which Stripe removed ``payment_method_types`` as a writable parameter of PaymentIntents and SetupIntents
(Stripe changelog, "Removes the payment method types parameter from Payment Intents and Setup Intents",
2026-09-30.endive) in favour of ``allowed_payment_method_types``. This module renames that one parameter on
the way in, and lets a PaymentIntent confirm take the two parameters Stripe documents for a server-side
confirm whose behaviour localstripe already models: ``payment_method`` (set the method, then confirm, as
its own update + confirm does) and ``use_stripe_sdk`` (its only next action is already the Stripe.js kind).

Two more things Stripe documents are taught, because the portal's cards are PaymentMethods only:
- A server-side confirm without ``use_stripe_sdk`` gets a ``redirect_to_url`` next action, as Stripe gives one,
  instead of the Stripe.js kind.
- ``setup_future_usage`` on a PaymentIntent confirm: Stripe then attaches the payment method to the intent's
  Customer once the confirmation succeeds (an authorization, for a manual capture), and never otherwise.
- ``stripe.createPaymentMethod({type: "card", card: element, billing_details})`` in the fake Stripe.js (its
  own is an empty stub): the card's fields become a PaymentMethod, as Stripe.js makes one with the
  publishable key. It is served at the same address, the fake script with this one function filled in, and
  its top-level names kept to itself, as Stripe.js keeps its own.
Nothing else is added: ConfirmationTokens, ``mandate_data`` and ACH stay unmodelled and are refused as
before, so the tests cannot pass on behaviour the fake does not have.

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

    def _api_confirm(id, payment_method=None, use_stripe_sdk=None, setup_future_usage=None, **kwargs):
        if setup_future_usage not in (None, "off_session", "on_session"):
            raise resources.UserError(400, "Bad request")
        if payment_method is not None or setup_future_usage is not None:
            obj = resources.PaymentIntent._api_retrieve(id)
            if obj.status not in ("requires_payment_method", "requires_confirmation"):
                raise resources.UserError(400, "Bad request")
            if setup_future_usage is not None and not obj.customer:
                raise resources.UserError(400, "setup_future_usage needs a customer on the PaymentIntent")
            if payment_method is not None:
                resources.PaymentMethod._api_retrieve(payment_method)  # 404 for an unknown method, as Stripe
                obj.payment_method = payment_method
            if setup_future_usage is not None:
                obj.setup_future_usage = setup_future_usage
        obj = original(id, **kwargs)
        if obj.next_action and not use_stripe_sdk:
            # Without use_stripe_sdk, Stripe sends the customer to the bank's page and back (redirect_to_url),
            # which a window that runs Stripe.js's handleNextAction does not need.
            obj.next_action = {"type": "redirect_to_url", "redirect_to_url": {"url": "https://hooks.stripe.com/3d_secure"}}
        return obj

    create_charge = resources.PaymentIntent._create_charge

    def _create_charge(self, on_failure_now):
        create_charge(self, on_failure_now)
        pm = resources.PaymentMethod._api_retrieve(self.payment_method)
        if (getattr(self, "setup_future_usage", None) and self.customer and self.latest_charge.status == "succeeded"
                and pm.customer is None):
            pm.customer = self.customer  # Stripe attaches the method once the confirmation succeeded

    resources.PaymentIntent._create_charge = _create_charge

    resources.PaymentIntent._api_confirm = staticmethod(_api_confirm)
    resources.extra_apis[:] = [(m, path, _api_confirm if fn == original else fn)
                               for m, path, fn in resources.extra_apis]


CREATE_PAYMENT_METHOD = """
(function () {
  const fake = Stripe;
  Stripe = function (apiKey, options) {
    const stripe = fake(apiKey, options);
    stripe.createPaymentMethod = async function (data) {
      const element = data.card;
      const billing = JSON.parse(JSON.stringify(data.billing_details || {}));
      billing.address = billing.address || {};
      billing.address.postal_code = billing.address.postal_code || element.value.postal_code;
      const response = await fetch(`${LOCALSTRIPE_BASE_API}/js.stripe.com/v3/payment_methods`, {
        method: 'POST',
        body: JSON.stringify({key: apiKey, type: data.type, card: element.value.card, billing_details: billing}),
      });
      const body = await response.json().catch(() => ({}));
      if (response.status !== 200 || body.error) return {error: body.error || {message: 'Bad request'}};
      return {paymentMethod: body};
    };
    return stripe;
  };
})();
"""


def serve_stripe_js(app, resources):
    """The fake Stripe.js with createPaymentMethod filled in, and the call it makes with the publishable key."""
    import os

    import aiohttp.web
    from localstripe import server

    # In a block, so that the fake's own top-level names (its ``class Element``, which would hide the browser's
    # Element from every script of a page that mounts the card fields in itself) stay its own.
    with open(os.path.join(os.path.dirname(server.__file__), "localstripe-v3.js")) as f:
        script = "{\n" + f.read() + CREATE_PAYMENT_METHOD + "\n}\n"

    async def stripe_js(request):
        return aiohttp.web.Response(text=script, content_type="application/javascript")

    async def create_payment_method(request):
        data = await server.get_post_data(request, remove_auth=False) or {}
        if not str(data.pop("key", "")).startswith("pk_"):
            raise resources.UserError(401, "Unauthorized")
        return server.json_response(resources.PaymentMethod._api_create(**data)._export())

    for route in app.router.routes():
        if route.resource is not None and route.resource.canonical == "/js.stripe.com/v3/":
            route._handler = stripe_js
    app.router.add_post("/js.stripe.com/v3/payment_methods", create_payment_method)


def main(port):
    import aiohttp.web
    from localstripe import resources

    # localstripe pickles its whole store to one fixed file in the temp folder after every write: slow, and
    # two test runs at once overwrite each other's file. Each test run starts its own server and resets it
    # per test, so the store stays in memory only.
    resources.Store.dump_to_disk = resources.Store.try_load_from_disk = lambda self: None
    teach(resources)
    from localstripe.server import app

    serve_stripe_js(app, resources)
    aiohttp.web.run_app(app, host="127.0.0.1", port=port, print=None)


if __name__ == "__main__":
    main(int(sys.argv[1]))
