"""Pay-by-link with Stripe as the processor, against a real Stripe API server (localstripe) through the real
``stripe`` library: the link's page hands over to Stripe's payment window and its calls, reached through the
link's token instead of a login, for the payment started through that link only."""
import datetime as dt
import re
import urllib.parse
import urllib.request

import pytest

from app import create_app
from billing import accounts, paylinks
from db import database, migrate
from db.models import Allocation, AuditLog, Invoice, Isp, Payment, PaymentMethod
from tests.factories import TEST_CONFIG, Portal, make_customer, make_invoice
from tests.stripe_support import (  # noqa: F401  (fixtures)
    BILLING,
    CARD_3DS,
    CARD_OK,
    PUBLISHABLE_KEY,
    app,
    card_method,
    charges_of,
    localstripe,
    start_payment,
    stripe_server,
)

SECRET = TEST_CONFIG["SECRET_KEY"]
TODAY = dt.date.today()
_CSRF = re.compile(r'data-csrf="([^"]+)"')


@pytest.fixture
def account(app):
    """A customer with private details, an older invoice and the invoice the link is for."""
    c = make_customer(name="Secret Name", street="99 Hidden Rd")
    older = make_invoice(c, cents=2500, due=TODAY - dt.timedelta(days=5), number="OLD-1")
    inv = make_invoice(c, cents=4000, due=TODAY + dt.timedelta(days=10), number="LINK-1")
    return c, older, inv


def private_bits(c):
    return ("OLD-1", "Secret Name", "99 Hidden Rd", c.email, c.account_number, "$65.00")


def start_by_link(portal, token):
    """Continue, then Make Payment on the link's pages; returns the payment and where Make Payment went."""
    page = portal.get(f"/paylink/{token}").get_data(as_text=True)
    key = re.search(r'name="key" value="([^"]+)"', page).group(1)
    started = portal.post(f"/paylink/{token}", {"method_type": "card", "key": key})
    assert started.status_code == 303, started.get_data(as_text=True)
    billed = portal.post(started.location, BILLING)
    assert billed.status_code == 303, billed.get_data(as_text=True)
    ref = urllib.parse.urlsplit(started.location).path.rsplit("/", 1)[1]
    return Payment.get(Payment.ref == ref), billed.location


def link_pay_card(portal, server, token, payment, number=CARD_OK):
    """The window's Pay: the PaymentMethod's id to the link's card call. Returns (status, JSON)."""
    resp = portal.post(f"/paylink/{token}/{payment.ref}/stripe/card", {"payment_method": card_method(server, number)})
    return resp.status_code, resp.get_json()


def authenticate(server, payment, success=True):
    """What Stripe.js does when the customer completes the 3-D Secure challenge."""
    pi = server.client.v1.payment_intents.retrieve(Payment.get_by_id(payment.id).processor_ref)
    body = urllib.parse.urlencode({"key": PUBLISHABLE_KEY, "client_secret": pi.client_secret}).encode()
    url = f"{server.url}/v1/payment_intents/{pi.id}/_authenticate?success={'true' if success else 'false'}"
    with urllib.request.urlopen(urllib.request.Request(url, data=body, method="POST"), timeout=10) as resp:
        resp.read()


def test_link_pays_with_stripe_without_logging_in_and_shows_nothing_else(app, portal, account, stripe_server):
    c, older, inv = account
    token = paylinks.make(SECRET, inv.id)
    payment, window_url = start_by_link(portal, token)
    assert window_url == f"/paylink/{token}/{payment.ref}/window?mode=page"

    window = portal.get(window_url)
    html = window.get_data(as_text=True)
    assert window.status_code == 200
    assert stripe_server.url + "/js.stripe.com/v3/" in html and 'id="card-element"' in html
    for call in ("card", "bank", "sync"):
        assert f'data-{call}-url="/paylink/{token}/{payment.ref}/stripe/{call}"' in html
    assert f'data-back-url="/paylink/{token}/{payment.ref}"' in html
    for private in private_bits(c):
        assert private not in html

    pi = stripe_server.client.v1.payment_intents.retrieve(Payment.get_by_id(payment.id).processor_ref).to_dict()
    # Nothing in the intent ties the card to the account: no Customer, and our payment reference only.
    assert pi["amount"] == 4000 and pi["metadata"] == {"payment_ref": payment.ref} and pi["customer"] is None
    status, answer = link_pay_card(portal, stripe_server, token, payment)
    assert status == 200 and answer["done"] and answer["payment_status"] == "succeeded"

    payment = Payment.get_by_id(payment.id)
    assert (payment.status, payment.method_last4, payment.target_invoice_id) == ("succeeded", "4242", inv.id)
    assert [(a.invoice_id, a.amount_cents) for a in Allocation.select()] == [(inv.id, 4000)]
    assert len(charges_of(stripe_server, payment.processor_ref)) == 1
    views = {v.invoice.number: v.balance_cents for v in accounts.invoice_views(c.id)}
    assert views == {"LINK-1": 0, "OLD-1": 2500}
    done = AuditLog.get((AuditLog.entity_id == payment.ref) & (AuditLog.action == "payment.succeeded"))
    assert done.actor == f"paylink:{inv.id}"

    result = portal.get(f"/paylink/{token}/{payment.ref}").get_data(as_text=True)
    assert "Payment was successful" in result and "Visa ending 4242" in result
    for private in private_bits(c):
        assert private not in result
    # Reopening the window or paying again charges nothing more.
    assert portal.get(window_url).location == f"/paylink/{token}/{payment.ref}"
    again = link_pay_card(portal, stripe_server, token, payment)[1]
    assert again["done"] and len(charges_of(stripe_server, payment.processor_ref)) == 1
    assert "This invoice is paid" in portal.get(f"/paylink/{token}").get_data(as_text=True)
    assert portal.get("/").status_code == 302  # never logged in


def test_3d_secure_card_by_link_completes_after_the_challenge(app, portal, account, stripe_server):
    c, older, inv = account
    token = paylinks.make(SECRET, inv.id)
    payment, window_url = start_by_link(portal, token)
    assert portal.get(window_url).status_code == 200
    status, answer = link_pay_card(portal, stripe_server, token, payment, CARD_3DS)
    assert status == 200 and answer["status"] == "requires_action" and not answer["done"]
    assert Payment.get_by_id(payment.id).status == "awaiting_details"
    authenticate(stripe_server, payment)
    answer = portal.post(f"/paylink/{token}/{payment.ref}/stripe/sync").get_json()
    assert answer["done"] and Payment.get_by_id(payment.id).status == "succeeded"
    assert len(charges_of(stripe_server, Payment.get_by_id(payment.id).processor_ref)) == 1


def test_a_link_reaches_only_the_payment_started_through_it(app, portal, account, stripe_server):
    c, older, inv = account
    token_a, token_b = paylinks.make(SECRET, older.id), paylinks.make(SECRET, inv.id)
    by_link, _ = start_by_link(portal, token_b)

    # The customer's own payment for the same invoice, started while logged in.
    own = Portal(app.test_client())
    own.login(c.email)
    logged_in_payment = start_payment(own, "40.00", invoice_id=str(inv.id))
    # Another customer's payment.
    other = make_customer()
    make_invoice(other, cents=3000)
    stranger = Portal(app.test_client())
    stranger.login(other.email)
    strangers_payment = start_payment(stranger, "30.00")

    def refused(token, ref):
        codes = [portal.get(f"/paylink/{token}/{ref}").status_code,
                 portal.get(f"/paylink/{token}/{ref}/window?mode=popup").status_code]
        for call, data in (("card", {"payment_method": card_method(stripe_server, CARD_OK)}), ("bank", {"accepted": "1"}),
                           ("sync", {})):
            codes.append(portal.post(f"/paylink/{token}/{ref}/stripe/{call}", data).status_code)
        return codes == [404] * 5

    assert refused(token_a, by_link.ref)  # another invoice's link
    assert refused(token_b, logged_in_payment.ref)  # same invoice, but not started through the link
    assert refused(token_b, strangers_payment.ref)
    assert refused(token_b, "PAY-NOPE")
    # and the link's own payment is not reachable by someone else's login either
    assert stranger.get(f"/payments/{by_link.ref}/window?mode=popup").status_code == 404
    assert stranger.post(f"/payments/{by_link.ref}/stripe/sync", {}).status_code == 404
    for p in (by_link, logged_in_payment, strangers_payment):
        p = Payment.get_by_id(p.id)
        assert p.status == "awaiting_details" and charges_of(stripe_server, p.processor_ref) == []


def test_expired_forged_or_void_links_are_refused_by_the_window_and_its_calls(app, portal, account, stripe_server):
    c, older, inv = account
    token = paylinks.make(SECRET, inv.id)
    payment, window_url = start_by_link(portal, token)
    payload, sig = token.split(".")
    expired = paylinks.make(SECRET, inv.id, days=-1)
    forged = f"{paylinks.make(SECRET, inv.id, days=400).split('.')[0]}.{sig}"  # a later expiry, the old signature

    for bad, words in ((expired, "expired"), (forged, "not valid")):
        page = portal.get(f"/paylink/{bad}/{payment.ref}/window?mode=page")
        assert page.status_code == 410 and words in page.get_data(as_text=True)
        answer = portal.post(f"/paylink/{bad}/{payment.ref}/stripe/card",
                             {"payment_method": card_method(stripe_server, CARD_OK)})
        assert answer.status_code == 410 and words in answer.get_json()["message"]
        assert not answer.get_json()["done"]

    Invoice.update(void=True).where(Invoice.id == inv.id).execute()
    assert portal.get(window_url).status_code == 410
    for call in ("card", "sync"):
        answer = portal.post(f"/paylink/{token}/{payment.ref}/stripe/{call}", {"payment_method": card_method(stripe_server,
                                                                                                      CARD_OK)})
        assert answer.status_code == 410 and "no longer be paid" in answer.get_json()["message"]
    payment = Payment.get_by_id(payment.id)
    assert payment.status == "awaiting_details" and charges_of(stripe_server, payment.processor_ref) == []


def test_the_windows_calls_need_its_csrf_token(app, client, account, stripe_server):
    c, older, inv = account
    token = paylinks.make(SECRET, inv.id)
    portal = Portal(client)
    payment, window_url = start_by_link(portal, token)
    csrf = _CSRF.search(portal.get(window_url).get_data(as_text=True)).group(1)
    url = f"/paylink/{token}/{payment.ref}/stripe/card"
    for headers in ({}, {"X-CSRFToken": "forged"}):
        resp = client.post(url, data={"payment_method": card_method(stripe_server, CARD_OK)}, headers=headers)
        assert resp.status_code == 400
    assert Payment.get_by_id(payment.id).status == "awaiting_details"
    # As the window's script sends it: the token from the page in the X-CSRFToken header.
    resp = client.post(url, data={"payment_method": card_method(stripe_server, CARD_OK)},
                       headers={"X-CSRFToken": csrf, "Accept": "application/json"})
    assert resp.status_code == 200 and resp.get_json()["done"]


def test_a_card_typed_through_a_link_is_never_attached_or_saved_even_with_the_save_flag_set(
        app, portal, account, stripe_server):
    c, older, inv = account
    token = paylinks.make(SECRET, inv.id)
    payment, _ = start_by_link(portal, token)
    Payment.update(save_for_autopay=True).where(Payment.id == payment.id).execute()  # as if a form had sent it
    method = card_method(stripe_server, CARD_OK)
    resp = portal.post(f"/paylink/{token}/{payment.ref}/stripe/card", {"payment_method": method})
    assert resp.get_json()["done"] and Payment.get_by_id(payment.id).status == "succeeded"
    assert stripe_server.client.v1.payment_methods.retrieve(method).customer is None
    pi = stripe_server.client.v1.payment_intents.retrieve(Payment.get_by_id(payment.id).processor_ref).to_dict()
    assert pi.get("setup_future_usage") is None and pi["customer"] is None
    assert PaymentMethod.select().count() == 0 and Payment.get_by_id(payment.id).payment_method_id is None


def test_a_card_call_refuses_anything_but_a_stripe_payment_method(app, portal, account, stripe_server):
    c, older, inv = account
    token = paylinks.make(SECRET, inv.id)
    payment, _ = start_by_link(portal, token)
    url = f"/paylink/{token}/{payment.ref}/stripe/card"
    for bad in ("", "tok_visa", "src_1abc", "card_1abc", "4242424242424242", "pm_" + "x" * 300, "pm_a b"):
        assert portal.post(url, {"payment_method": bad}).status_code == 400
    assert portal.post(url, {"token": "tok_visa"}).status_code == 400  # the old token call is gone
    assert portal.post(f"/paylink/{token}/{payment.ref}/stripe/bank", {"accepted": "1"}).status_code == 400
    assert Payment.get_by_id(payment.id).status == "awaiting_details"


@pytest.fixture
def sandbox_app(database_url):
    sandbox = create_app({**TEST_CONFIG, "DATABASE_URL": database_url})
    migrate.upgrade()
    Isp.create(name="Test ISP")
    yield sandbox
    database.close()


def test_with_the_sandbox_the_stripe_window_routes_are_not_there(sandbox_app):
    portal = Portal(sandbox_app.test_client())
    c = make_customer()
    inv = make_invoice(c, cents=1000)
    token = paylinks.make(SECRET, inv.id)
    payment, entry = start_by_link(portal, token)
    assert entry.startswith("/sandbox/pay/")
    assert portal.get(f"/paylink/{token}/{payment.ref}/window?mode=page").status_code == 404
    assert portal.post(f"/paylink/{token}/{payment.ref}/stripe/sync", {}).status_code == 404


# --- Real Chromium: the link's page, Stripe's window in the same tab with localstripe's Stripe.js. ------


@pytest.mark.browser
def test_browser_pays_a_link_through_the_stripe_window(open_page, account, stripe_server):
    expect = pytest.importorskip("playwright.sync_api").expect
    c, older, inv = account
    token = paylinks.make(SECRET, inv.id)
    tab = open_page()
    page = tab.page
    page.goto(f"{tab.base_url}/paylink/{token}")
    page.get_by_label("Credit / Debit Card").check()
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Billing Information")
    # A card by link asks nothing here: Stripe's field takes the card and its ZIP; the rest is on file.
    expect(page.locator("#pay-step input:not([type=hidden])")).to_have_count(0)
    page.get_by_role("button", name="Make Payment").click()

    field = page.locator("#card-element")
    expect(field.locator("input")).to_have_count(5)  # Stripe.js mounted its card fields
    expect(page.locator("#stripe-amount")).to_have_text("$40.00")
    field.get_by_placeholder("number").fill(CARD_OK)
    field.get_by_placeholder("exp_month").fill("12")
    field.get_by_placeholder("exp_year").fill(f"{(TODAY.year + 3) % 100:02d}")
    field.get_by_placeholder("cvc").fill("123")
    field.get_by_placeholder("postal_code").fill("78701")
    page.get_by_role("button", name="Pay $40.00").click()

    expect(page.locator("#pay-step h1")).to_have_text("Payment was successful", timeout=15000)
    payment = Payment.get(Payment.customer == c.id)
    assert page.url == f"{tab.base_url}/paylink/{token}/{payment.ref}"
    assert payment.status == "succeeded" and payment.target_invoice_id == inv.id
    assert len(charges_of(stripe_server, payment.processor_ref)) == 1
    body = page.content()
    for private in private_bits(c):
        assert private not in body
    assert tab.errors == []
