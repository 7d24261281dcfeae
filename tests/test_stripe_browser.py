"""Real Chromium, Stripe as the processor: how the portal opens Stripe's payment window (a pop-up, or this
tab when pop-ups are blocked or JavaScript is off), and that the portal's own pages load no Stripe.js.

Typing a card or bank account into Stripe's Payment Element needs Stripe.js itself (localstripe's stand-in
has no Payment Element), so those flows run in the opt-in suite against Stripe's test mode
(tests/test_stripe_live.py). Here Stripe.js is blocked, and the window must say so instead of failing
silently, as it does when Stripe.js cannot load on a bad link.
"""
import datetime as dt

import pytest

from db.models import Payment
from tests.conftest import make_customer, make_invoice
from tests.stripe_support import (  # noqa: F401  (fixtures)
    app,
    localstripe,
    stripe_server,
)

pytestmark = pytest.mark.browser
expect = pytest.importorskip("playwright.sync_api").expect
UNLOADED = "The payment form could not load. Check your connection and reload this window."


@pytest.fixture
def account(app):
    customer = make_customer()
    today = dt.date.today()
    make_invoice(customer, cents=4000, due=today - dt.timedelta(days=5), number="INV-3001")
    return customer


def blocked_stripe_js(tab):
    """Stripe.js requests fail, and are recorded: (page url, script url)."""
    asked = []

    def abort(route):
        asked.append((route.request.frame.url if route.request.frame else "", route.request.url))
        route.abort()

    tab.context.route("**/js.stripe.com/**", abort)
    return asked


def to_billing(page, amount):
    page.get_by_role("link", name="Payments", exact=True).click()
    step = page.locator("#pay-step")
    step.get_by_label("Credit / Debit Card").check()
    step.get_by_label("Amount").fill(amount)
    step.get_by_role("button", name="Continue").click()
    expect(step.get_by_role("heading")).to_have_text("Billing Information")


def quiet(tab):
    return [e for e in tab.errors if "ERR_FAILED" not in e and "js.stripe.com" not in e]


def test_make_payment_opens_stripes_window_as_a_popup_and_only_the_window_asks_for_stripe_js(
        open_page, account, stripe_server):
    tab = open_page()
    asked = blocked_stripe_js(tab)
    page = tab.login(account.email)
    to_billing(page, "40.00")
    with page.expect_popup() as info:
        page.get_by_role("button", name="Make Payment").click()
    popup = info.value
    payment = Payment.get(Payment.customer == account.id)
    expect(popup.locator("#stripe-message")).to_have_text(UNLOADED)
    assert popup.url.endswith(f"/payments/{payment.ref}/window?mode=popup")
    expect(popup.locator("#stripe-amount")).to_have_text("$40.00")
    assert asked and all("/window" in frame for frame, _ in asked)  # the portal's own pages never ask
    assert page.locator("iframe").count() == 0
    assert quiet(tab) == []


def test_popup_blocked_the_window_opens_in_this_tab_with_the_element_in_the_page_itself(
        open_page, account, stripe_server):
    tab = open_page(init_script="window.open = () => null")
    blocked_stripe_js(tab)
    page = tab.login(account.email)
    to_billing(page, "40.00")
    page.get_by_role("button", name="Make Payment").click()
    payment = Payment.get(Payment.customer == account.id)
    page.wait_for_url(f"**/payments/{payment.ref}/window?mode=page")
    expect(page.locator("main#stripe-window #payment-element")).to_be_attached()  # top level, no iframe of ours
    expect(page.locator("#stripe-message")).to_have_text(UNLOADED)
    assert quiet(tab) == []


def test_with_javascript_off_make_payment_opens_the_window_which_says_it_needs_javascript(
        open_page, account, stripe_server):
    tab = open_page(java_script_enabled=False)
    page = tab.login(account.email)
    page.goto(tab.base_url + "/payments")
    page.get_by_label("Credit / Debit Card").check()
    page.get_by_label("Amount").fill("40.00")
    page.get_by_role("button", name="Continue").click()
    page.get_by_role("button", name="Make Payment").click()
    payment = Payment.get(Payment.customer == account.id)
    assert page.url.endswith(f"/payments/{payment.ref}/window?mode=page")
    expect(page.locator("noscript, .error").first).to_be_attached()
    assert "needs JavaScript, because your details go straight to Stripe" in page.content()
