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
import urllib.error
import urllib.parse
import urllib.request

import pytest
import stripe

from app import create_app
from db import database, migrate
from db.models import Isp, Payment
from tests.conftest import TEST_CONFIG

SECRET_KEY = "sk_test_portal_4eC39HqLyjWDarjtT1zdp7dc"
PUBLISHABLE_KEY = "pk_test_portal_TYooMQauvdEDq54NiTphI7jx"
WEBHOOK_SECRET = "whsec_portal_test_secret"
EVENTS = ("payment_intent.processing", "payment_intent.succeeded", "payment_intent.payment_failed",
          "payment_intent.requires_action", "payment_intent.canceled",
          "charge.refunded", "charge.dispute.created", "charge.dispute.closed", "setup_intent.succeeded")
BILLING = {"name": "Dana Demo", "street": "12 Ridge Road", "city": "Austin", "state": "TX", "zip": "78701",
           "email": "dana@example.test", "phone": "512-555-0100"}
CARD_OK = "4242424242424242"
CARD_CHARGE_FAILS = "4000000000000341"
CARD_3DS = "4000002500003155"
CARD_DECLINED_AT_ATTACH = "4000000000000002"


class Wire:
    """A recording pass-through in front of localstripe: every request the real ``stripe`` library sends is
    forwarded unchanged and kept (method, path, decoded form body), so a test can check what the portal asked
    Stripe for, including parameters localstripe does not model (it then answers as it does, usually 400).

    For objects localstripe cannot hold (ACH PaymentIntents, Disputes, Mandates, bank PaymentMethods), a test
    puts Stripe's documented JSON for the object under its API path (``objects``); the wire then answers a
    GET of that path with it, and a POST to ``<path>/confirm`` with it after applying ``on_confirm`` (the
    status Stripe moves it to). The portal reads them through the real ``stripe`` library over HTTP.
    """

    def __init__(self, upstream):
        import http.server
        import threading

        self.upstream, self.requests, self.objects, self.on_confirm, wire = upstream, [], {}, {}, self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self, status, obj):
                data = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _forward(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                path = self.path.split("?")[0]
                wire.requests.append((self.command, path, urllib.parse.parse_qs(body.decode(), keep_blank_values=True)))
                if self.command == "GET" and path in wire.objects:
                    return self._answer(200, wire.objects[path])
                if self.command == "POST" and path.endswith("/confirm") and path[:-8] in wire.objects:
                    obj = wire.objects[path[:-8]]
                    obj.update(wire.on_confirm.get(path[:-8], {}))
                    return self._answer(200, obj)
                req = urllib.request.Request(wire.upstream + self.path, data=body or None, method=self.command,
                                             headers={k: v for k, v in self.headers.items()
                                                      if k.lower() not in ("host", "content-length")})
                try:
                    with urllib.request.urlopen(req, timeout=20) as resp:
                        status, headers, data = resp.status, resp.headers, resp.read()
                except urllib.error.HTTPError as e:
                    status, headers, data = e.code, e.headers, e.read()
                self.send_response(status)
                for k, v in headers.items():
                    if k.lower() in ("content-type", "request-id"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_DELETE = _forward

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def sent(self, path_part, method="POST"):
        """Bodies of the requests whose path contains ``path_part``, oldest first."""
        return [body for m, path, body in self.requests if m == method and path_part in path]

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


class LocalStripe:
    """localstripe in a child process, listening on loopback only, behind a recording Wire."""

    def __init__(self):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
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
        self.wire = Wire(self.url)
        self.direct_url, self.url = self.url, self.wire.url
        self.client = stripe.StripeClient(SECRET_KEY, base_addresses={"api": self.url})

    def _request(self, method, path, data=None):
        body = urllib.parse.urlencode(data or [], doseq=True).encode() if data is not None else None
        req = urllib.request.Request(self.direct_url + path, data=body, method=method)
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status

    def reset(self):
        """Forget every object (webhook registrations are kept in memory separately)."""
        self._request("DELETE", "/_config/data")
        self.wire.requests.clear()
        self.wire.objects.clear()
        self.wire.on_confirm.clear()

    def register_webhook(self, url, secret=WEBHOOK_SECRET, events=EVENTS):
        """Ask localstripe to deliver these events to ``url``, signed with ``secret``."""
        data = [("url", url), ("secret", secret)] + [("events[]", e) for e in events]
        self._request("POST", "/_config/webhooks/portal", data)

    def stop(self):
        self.wire.stop()
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
            "STRIPE_JS_URL": server.direct_url + "/js.stripe.com/v3/"}


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
    """A card PaymentMethod, as Stripe makes one from the Payment Element's fields (its id only reaches us)."""
    return server.client.v1.payment_methods.create(params={
        "type": "card",
        "card": {"number": number, "exp_month": 12, "exp_year": dt.date.today().year + 3, "cvc": "123"}}).id


def stripe_confirms(server, payment, number=CARD_OK):
    """What Stripe does with the ConfirmationToken the portal's server sends for a card (localstripe has no
    ConfirmationTokens): the intent gets the card and is confirmed. Returns the intent's status."""
    from stripe import CardError

    intent_id = Payment.get_by_id(payment.id).processor_ref
    try:
        pi = server.client.v1.payment_intents.confirm(intent_id, params={"payment_method": card_method(server, number)})
    except CardError:
        pi = server.client.v1.payment_intents.retrieve(intent_id)
    return pi.status


def sync(portal, payment):
    """The window's call after Stripe answered: the portal asks Stripe where the payment is. Returns the JSON."""
    resp = portal.post(f"/payments/{payment.ref}/stripe/sync")
    return resp.status_code, resp.get_json()


def pay_card(portal, server, payment, number=CARD_OK):
    """Stripe confirms the card, then the window asks the portal, which asks Stripe. Returns the JSON answer."""
    stripe_confirms(server, payment, number)
    return sync(portal, payment)


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

