"""The Stripe webhook fuzzed: signed bodies of any shape (Stripe's event types with objects of random
fields, ids and amounts) get a 2xx or a 4xx, never a 5xx, and a refused one writes nothing. The portal
re-reads each object from localstripe, which knows none of these ids."""
import json

from hypothesis import given
from hypothesis import strategies as st

from tests.hostile_support import stored_digest
from tests.stripe_support import app, localstripe, sign, stripe_server  # noqa: F401  (fixtures)
from tests.test_fuzz import FUZZ, JSON_VALUE

STRIPE_TYPES = ["payment_intent.processing", "payment_intent.succeeded", "payment_intent.payment_failed",
                "charge.refunded", "charge.dispute.created", "charge.dispute.closed", "setup_intent.succeeded",
                "customer.created"]
OBJECT = st.fixed_dictionaries(
    {"id": st.one_of(st.text(max_size=30), JSON_VALUE)},
    optional={"object": JSON_VALUE, "amount": JSON_VALUE, "payment_intent": JSON_VALUE, "status": JSON_VALUE,
              "metadata": JSON_VALUE, "charge": JSON_VALUE, "payment_method": JSON_VALUE})
EVENT = st.fixed_dictionaries({"id": st.one_of(st.text(max_size=300), JSON_VALUE),
                               "type": st.one_of(st.sampled_from(STRIPE_TYPES), JSON_VALUE),
                               "data": st.one_of(st.fixed_dictionaries({"object": OBJECT}), JSON_VALUE)},
                              optional={"created": JSON_VALUE, "object": st.just("event")})


def test_fuzzed_signed_stripe_webhooks_get_a_2xx_or_4xx_and_refusals_write_nothing(app):  # noqa: F811
    app.config["PROPAGATE_EXCEPTIONS"] = False
    client = app.test_client()

    @FUZZ
    @given(event=st.one_of(EVENT, JSON_VALUE))
    def run(event):
        body = json.dumps(event, allow_nan=True).encode()
        before = stored_digest()
        resp = client.post("/webhooks/stripe", data=body, content_type="application/json",
                           headers={"Stripe-Signature": sign(body)})
        assert resp.status_code < 500 or resp.status_code == 503 and b"re-read" in resp.data, resp.status_code
        if resp.status_code >= 400:
            assert stored_digest() == before
    run()
