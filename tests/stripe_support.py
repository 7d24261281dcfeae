"""Fixtures for the Stripe tests: a real Stripe API server (localstripe) on 127.0.0.1, reset per test,
a portal configured for Stripe against it, and helpers that do what Stripe.js and Stripe would do.

Test modules import what they use from here (``from tests.stripe_support import ...``).
"""
import datetime as dt
import hashlib
import hmac
import json
import os
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request

import pytest
import stripe

from app import create_app
from db import database, migrate
from db.models import Isp, Payment
from tests.factories import TEST_CONFIG

SECRET_KEY = "sk_test_portal_4eC39HqLyjWDarjtT1zdp7dc"
PUBLISHABLE_KEY = "pk_test_portal_TYooMQauvdEDq54NiTphI7jx"
WEBHOOK_SECRET = "whsec_portal_test_secret"
EVENTS = ("payment_intent.processing", "payment_intent.succeeded", "payment_intent.payment_failed",
          "charge.refunded", "charge.dispute.created", "charge.dispute.closed", "setup_intent.succeeded")
BILLING = {"name": "Dana Demo", "street": "12 Ridge Road", "city": "Austin", "state": "TX", "zip": "78701",
           "email": "dana@example.test", "phone": "512-555-0100"}
CARD_OK = "4242424242424242"
CARD_CHARGE_FAILS = "4000000000000341"
CARD_3DS = "4000002500003155"


class LocalStripe:
    """localstripe in a child process, listening on loopback only."""

    def __init__(self):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        # tests/localstripe_server.py: localstripe in memory only, taught the API version's parameter names.
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        self.proc = subprocess.Popen([sys.executable, "-W", "ignore", "-m", "tests.localstripe_server", str(self.port)],
                                     cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 20
        while True:
            try:
                with urllib.request.urlopen(self.url + "/js.stripe.com/v3/", timeout=1) as resp:
                    resp.read()
                break
            except OSError:
                if time.time() > deadline or self.proc.poll() is not None:
                    self.stop()
                    raise RuntimeError("localstripe did not start")
                time.sleep(0.1)
        self.client = stripe.StripeClient(SECRET_KEY, base_addresses={"api": self.url})

    def _request(self, method, path, data=None):
        body = urllib.parse.urlencode(data or [], doseq=True).encode() if data is not None else None
        req = urllib.request.Request(self.url + path, data=body, method=method)
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status

    def reset(self):
        """Forget every object (webhook registrations are kept in memory separately)."""
        self._request("DELETE", "/_config/data")

    def register_webhook(self, url, secret=WEBHOOK_SECRET, events=EVENTS):
        """Ask localstripe to deliver these events to ``url``, signed with ``secret``."""
        data = [("url", url), ("secret", secret)] + [("events[]", e) for e in events]
        self._request("POST", "/_config/webhooks/portal", data)

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()


@pytest.fixture(scope="session")
def localstripe():
    server = LocalStripe()
    yield server
    server.stop()


@pytest.fixture
def stripe_server(localstripe):
    """localstripe with no objects and no webhook target."""
    localstripe.reset()
    localstripe.register_webhook("http://127.0.0.1:9/nowhere")
    yield localstripe
    localstripe.register_webhook("http://127.0.0.1:9/nowhere")


def stripe_config(server, database_url):
    return {**TEST_CONFIG, "DATABASE_URL": database_url, "PAYMENT_PROCESSOR": "stripe",
            "STRIPE_SECRET_KEY": SECRET_KEY, "STRIPE_PUBLISHABLE_KEY": PUBLISHABLE_KEY,
            "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET, "STRIPE_API_BASE": server.url,
            "STRIPE_JS_URL": server.url + "/js.stripe.com/v3/"}


@pytest.fixture
def app(database_url, stripe_server):
    """The portal with Stripe as its processor, talking to localstripe (overrides conftest's sandbox app)."""
    app = create_app(stripe_config(stripe_server, database_url))
    migrate.upgrade()
    Isp.create(name="Test ISP", support_phone="555-0100", max_prepay_cents=20000)
    yield app
    database.close()


@pytest.fixture
def hooks(stripe_server, live_server):
    """localstripe delivers its webhooks to the live portal."""
    stripe_server.register_webhook(live_server.url + "/webhooks/stripe")
    return stripe_server


# --- Doing what Stripe.js and the customer would do. -------------------------------------------------


def start_payment(portal, amount="50.00", method_type="card", **extra):
    """Steps 2 and 3 of the pay flow; returns the payment (its intent is created on the way)."""
    from billing import payments

    resp = portal.post("/pay", {"amount": amount, "method_type": method_type,
                                "key": payments.new_idempotency_key(), **extra})
    assert resp.status_code == 303, resp.get_data(as_text=True)
    ref = resp.location.rsplit("/", 1)[1]
    resp = portal.post(f"/payments/{ref}/billing", BILLING)
    assert resp.status_code == 303, resp.get_data(as_text=True)
    assert "/window" in resp.location
    return Payment.get(Payment.ref == ref)


def card_method(server, number):
    """A card PaymentMethod, as Stripe.js's createPaymentMethod makes one from the Card Element's fields."""
    return server.client.v1.payment_methods.create(params={"type": "card", "card": {
        "number": number, "exp_month": 12, "exp_year": dt.date.today().year + 3, "cvc": "123"}}).id


def pay_card(portal, server, payment, number=CARD_OK):
    """The window's Pay: the PaymentMethod's id goes to the portal, which confirms with Stripe. Returns the
    status code and JSON answer."""
    resp = portal.post(f"/payments/{payment.ref}/stripe/card", {"payment_method": card_method(server, number)})
    return resp.status_code, resp.get_json()


def charges_of(server, intent_id):
    """Successful charges Stripe holds for an intent (the number of times the card was charged)."""
    charges = server.client.v1.charges.list(params={"limit": 100}).to_dict()["data"]
    return [c for c in charges if c.get("payment_intent") == intent_id and c.get("status") == "succeeded"]


# --- Events in Stripe's documented shape, signed as Stripe signs them. -------------------------------


def event_body(event_type, obj, event_id=None, created=None):
    event = {"id": event_id or f"evt_test_{time.time_ns()}", "object": "event", "api_version": "2025-10-29",
             "created": int(created or time.time()), "livemode": False, "pending_webhooks": 1,
             "type": event_type, "data": {"object": obj}}
    return json.dumps(event).encode()


def sign(body, secret=WEBHOOK_SECRET, timestamp=None):
    """The Stripe-Signature header for a body: t=<time>,v1=HMAC-SHA256(secret, "<time>.<body>")."""
    t = int(timestamp if timestamp is not None else time.time())
    mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def post_event(client, body, signature=None):
    """Deliver a webhook body to the portal as Stripe would."""
    return client.post("/webhooks/stripe", data=body, content_type="application/json",
                       headers={"Stripe-Signature": signature if signature is not None else sign(body)})


def wait_for(predicate, timeout=10.0, interval=0.1):
    """Poll until predicate() is true (webhooks arrive about a second after the API call)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return predicate()

