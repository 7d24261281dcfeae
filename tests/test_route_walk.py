"""One walk of every route in ``app.url_map``, so that a new route is covered the day it is added:

- anonymous: no account's page, only the public ones, and never a 5xx;
- a customer on staff routes: 403; a customer with another customer's ids: 403 or 404;
- a state-changing request without a valid CSRF token (with the requester's *own* ids, so that it would
  otherwise succeed): 400, and nothing stored changes;
- a GET changes nothing stored.
"""
import re

import pytest

from app import create_app
from billing import methods, payments
from db.models import PaymentMethod
from tests.factories import TEST_CONFIG, make_customer, make_invoice
from tests.hostile_support import World, stored_digest

# Reachable without logging in, by design (each has its own tests).
PUBLIC = {"auth.login", "account.accept", "account.reset_password", "account.signup", "account.forgot",
          "account.logo", "static", "assets.serve", "edge.healthz", "webhooks.receive",
          "sandbox.entry", "sandbox.challenge", "sandbox.setup",
          "twofactor.code",  # the second step of logging in (issue 16)
          "profile.confirm_email",  # the link emailed to a new address is the credential
          "i18n.choose"}  # the language switcher, for everyone (it sets a cookie, stores nothing)
PUBLIC_PREFIXES = ("paylink.",)  # the signed link is the credential
# Authenticated by something other than the session cookie (a bearer token, a signature): no CSRF token.
NOT_COOKIE_AUTH = ("api.", "webhooks.")


def _rules():
    app = create_app({**TEST_CONFIG, "DATABASE_URL": "sqlite:///:memory:"})
    found = []
    for rule in app.url_map.iter_rules():
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            found.append((method, rule.rule, rule.endpoint))
    return found


RULES = _rules()
IDS = [f"{m} {r}" for m, r, _e in RULES]


def _owned(app, customer):
    """A payment, a saved method and a method set-up of this customer's, for the routes that take them."""
    pay = payments.start_payment(customer.id, amount_text="10.00", method_type="card",
                                 idempotency_key=payments.new_idempotency_key())
    method = PaymentMethod.create(customer=customer.id, processor="sandbox",
                                  processor_ref=f"pm_sbx_{customer.id}", method_type="card", brand="Visa",
                                  last4="4242", exp_month=12, exp_year=2034)
    setup = methods.start_setup(customer.id, "card", app.extensions["processor"])
    return {"payment": pay.ref, "method": method.id, "setup": setup.ref}


@pytest.fixture
def walk(app):
    w = World(app)
    w.a_owned, w.b_owned = _owned(app, w.a), _owned(app, w.b)
    return w


def _url(rule, endpoint, invoice, customer, owned):
    """The rule with its arguments filled in with this customer's records (or junk where none fits)."""
    def value(m):
        name = m.group(1)
        if name == "invoice_id":
            return str(invoice.id)
        if name == "customer_id":
            return str(customer.id)
        if name == "method_id":
            return str(owned["method"])
        if name == "ref":
            return owned["setup"] if endpoint.startswith(("methods.", "stripe_pay.setup_")) else owned["payment"]
        if name == "account_number":
            return customer.account_number
        if name == "number":
            return invoice.number
        return "1" if m.group(0).startswith("<int:") else "x1"
    return re.sub(r"<(?:[a-z]+(?:\([^)]*\))?:)?([a-z_]+)>", value, rule)


def _send(portal, method, url, csrf=True):
    if method == "GET":
        return portal.client.get(url)
    data = {"csrf_token": portal.csrf()} if csrf else {}
    return portal.client.open(url, method=method, data=data)


def test_every_route_is_walked():
    endpoints = {e for _m, _r, e in RULES}
    assert len(endpoints) > 60 and "staff.settings_page" in endpoints and "edge.healthz" in endpoints


@pytest.mark.parametrize("method,rule,endpoint", RULES, ids=IDS)
def test_anonymous_reaches_only_public_routes(walk, method, rule, endpoint):
    url = _url(rule, endpoint, walk.a_invoice, walk.a, walk.a_owned)
    before = stored_digest()
    resp = _send(walk.anon, method, url)
    assert resp.status_code < 500
    if endpoint in PUBLIC or endpoint.startswith(PUBLIC_PREFIXES):
        return
    assert resp.status_code in (302, 400, 401, 403, 404, 405), resp.status_code
    if resp.status_code == 302:
        assert resp.headers["Location"].startswith("/login")
    assert stored_digest() == before


@pytest.mark.parametrize("method,rule,endpoint", [r for r in RULES if r[2].startswith("staff.")],
                         ids=[i for i, r in zip(IDS, RULES) if r[2].startswith("staff.")])
def test_a_customer_gets_403_on_every_staff_route(walk, method, rule, endpoint):
    url = _url(rule, endpoint, walk.b_invoice, walk.b, walk.b_owned)
    before = stored_digest()
    assert _send(walk.customer, method, url).status_code == 403
    assert stored_digest() == before


ACCOUNT_ROUTES = [r for r in RULES if "<" in r[1] and not r[2].startswith(("staff.", "api.", "static", "assets."))
                  and r[2] not in PUBLIC and not r[2].startswith(PUBLIC_PREFIXES)]


@pytest.mark.parametrize("method,rule,endpoint", ACCOUNT_ROUTES, ids=[f"{m} {r}" for m, r, _e in ACCOUNT_ROUTES])
def test_another_customers_records_are_403_or_404(walk, method, rule, endpoint):
    url = _url(rule, endpoint, walk.b_invoice, walk.b, walk.b_owned)
    before = stored_digest()
    assert _send(walk.customer, method, url).status_code in (403, 404)
    assert stored_digest() == before


STATE_CHANGING = [r for r in RULES if r[0] != "GET"]


@pytest.mark.parametrize("method,rule,endpoint", STATE_CHANGING, ids=[f"{m} {r}" for m, r, _e in STATE_CHANGING])
def test_a_state_changing_request_without_a_csrf_token_is_refused_and_changes_nothing(walk, method, rule, endpoint):
    who = walk.staff if endpoint.startswith("staff.") else walk.customer
    url = _url(rule, endpoint, walk.a_invoice, walk.a, walk.a_owned)
    before = stored_digest()
    resp = _send(who, method, url, csrf=False)
    if endpoint.startswith(NOT_COOKIE_AUTH):  # no token, no signature: refused on those grounds instead
        assert resp.status_code in (400, 401, 404, 405)
    else:
        assert resp.status_code == 400, resp.status_code
        assert "expired" in resp.get_data(as_text=True)
    assert stored_digest() == before


GETS = [r for r in RULES if r[0] == "GET"]


@pytest.mark.parametrize("method,rule,endpoint", GETS, ids=[f"{m} {r}" for m, r, _e in GETS])
def test_a_get_changes_nothing_stored(walk, method, rule, endpoint):
    who = walk.staff if endpoint.startswith("staff.") else walk.customer
    url = _url(rule, endpoint, walk.a_invoice, walk.a, walk.a_owned)
    before = stored_digest()
    resp = _send(who, method, url)
    assert resp.status_code < 500
    assert stored_digest() == before
