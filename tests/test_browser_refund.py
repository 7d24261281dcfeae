"""Real Chromium: an owner refunds part of a Stripe card payment from the staff pages (localstripe behind it)."""
import pytest

from db.models import Outbox, Payment
from tests.staff_support import STAFF_EMAIL, make_staff
from tests.stripe_support import app, localstripe, stripe_server  # noqa: F401
from tests.test_browser_back_office import staff_login
from tests.test_staff_refunds import paid, stripe_refunds  # noqa: F401

pytestmark = pytest.mark.browser
expect = pytest.importorskip("playwright.sync_api").expect


def test_an_owner_refunds_part_of_a_card_payment_with_a_reason(app, paid, stripe_server, open_page):
    make_staff()
    tab = open_page(java_script_enabled=False)
    page = staff_login(tab, STAFF_EMAIL)
    page.get_by_role("navigation", name="Staff").get_by_role("link", name="Payments").click()
    page.get_by_role("link", name=paid.ref).click()
    page.get_by_role("link", name="Refund…").click()
    page.get_by_label("Amount to refund").fill("12.50")
    page.get_by_label("Reason").fill("Billed for a day of outage")
    page.get_by_role("button", name="Review refund").click()
    expect(page.locator("#review-amount")).to_have_text("$12.50")
    assert stripe_refunds(stripe_server, paid) == []
    page.get_by_role("button", name="Confirm refund of $12.50").click()
    expect(page.locator("#staff-notice")).to_contain_text("Refund of $12.50 made.")
    expect(page.locator("#reversals")).to_contain_text("Billed for a day of outage")
    expect(page.locator("#refund-requests")).to_contain_text("Refunded")
    assert stripe_refunds(stripe_server, paid) == [1250]
    assert Payment.get_by_id(paid.id).status == "succeeded"
    assert Outbox.select().where(Outbox.kind == "payment.reversal").count() == 1
    # Nothing more to refund than what is left: the link now offers the rest.
    expect(page.locator("#refund-link")).to_be_visible()
    assert "up to $37.50" in page.locator("#refund-link").locator("..").inner_text()
    assert tab.errors == []
