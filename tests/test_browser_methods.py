"""Real Chromium: save a card at the billing step, find it on the Payment methods page, add one, remove it."""
import datetime as dt

import pytest

from db.models import AutopayEnrolment, PaymentMethod
from tests.factories import PASSWORD, make_customer, make_invoice
from tests.test_browser_pay import choose, fill_card, make_payment, pay_in_popup, watch

pytestmark = pytest.mark.browser
expect = pytest.importorskip("playwright.sync_api").expect


@pytest.fixture
def owing(app):
    customer = make_customer()
    make_invoice(customer, cents=4000, due=dt.date.today() + dt.timedelta(days=12), number="INV-3001")
    return customer


def test_card_saved_at_billing_is_listed_on_the_methods_page_and_removed(open_page, owing):
    tab = open_page()
    page = tab.login(owing.email)
    page.get_by_role("link", name="Payments", exact=True).click()
    choose(page)
    box = page.get_by_label("Save this payment method to auto pay my invoices each month")
    expect(page.locator("#autopay-terms")).to_contain_text("I authorize Test ISP to charge my saved payment method")
    box.check()
    popup = make_payment(tab)
    fill_card(popup)
    pay_in_popup(popup)
    expect(page.locator("#pay-step h2")).to_have_text("Payment was successful")

    page.get_by_role("link", name="Payment methods", exact=True).click()
    methods = page.locator("#saved-methods")
    expect(methods).to_contain_text("Visa ending 4242")
    expect(methods).to_contain_text("Default")
    expect(methods).to_contain_text("Autopay")
    expect(page.locator("#autopay-state")).to_contain_text("Autopay is on")

    methods.get_by_role("link", name="Remove").click()
    expect(page.locator("#methods h1")).to_have_text("Remove Visa ending 4242")
    expect(page.locator("#methods")).to_contain_text("Removing it turns autopay off")
    page.get_by_label("Enter your password to confirm").fill("not my password")
    page.get_by_role("button", name="Remove").click()
    expect(page.locator("#password-error")).to_contain_text("That password is not right")
    page.get_by_label("Enter your password to confirm").fill(PASSWORD)
    page.get_by_role("button", name="Remove").click()
    expect(page.locator("#methods-message")).to_contain_text("Visa ending 4242 was removed. Autopay is now off")
    expect(page.locator("#no-methods")).to_be_visible()
    assert PaymentMethod.get().removed_at is not None and not AutopayEnrolment.get().enabled
    page.get_by_role("link", name="Home", exact=True).click()
    expect(page.locator("#autopay-home")).to_contain_text("Autopay is off")
    # The wrong password is answered 422 (and swapped in by htmx); Chromium logs every 4xx response.
    assert [e for e in tab.errors if "status of 422" not in e] == []


def test_add_a_card_in_the_processor_window_and_turn_autopay_on(open_page, owing):
    tab = open_page()
    page = tab.login(owing.email)
    page.get_by_role("link", name="Payment methods", exact=True).click()
    with page.expect_popup() as info:
        page.get_by_role("button", name="Add").click()
    popup = watch(tab, info.value)
    expect(popup.locator("h1")).to_have_text("Save a card with Test ISP")
    fill_card(popup)
    with popup.expect_event("close"):
        popup.get_by_role("button", name="Save").click()
    expect(page.locator("#methods-message")).to_have_text("Saved: Visa ending 4242.")
    expect(page.locator("#saved-methods")).to_contain_text("Visa ending 4242")

    page.get_by_label("I accept this authorization").check()
    page.get_by_role("button", name="Turn on autopay").click()
    expect(page.locator("#autopay-state")).to_contain_text("Autopay is on, charging Visa ending 4242")
    expect(page.locator("#autopay-next")).to_contain_text("$40.00")
    assert tab.errors == []


def test_add_a_card_inline_when_the_popup_is_blocked(open_page, owing):
    tab = open_page(init_script="window.open = () => null")
    page = tab.login(owing.email)
    page.get_by_role("link", name="Payment methods", exact=True).click()
    page.get_by_role("button", name="Add").click()
    expect(page.locator("#pay-blocked")).to_be_visible()
    frame = page.frame_locator("#pay-inline")
    fill_card(frame)
    frame.get_by_role("button", name="Save").click()
    expect(page.locator("#methods-message")).to_have_text("Saved: Visa ending 4242.", timeout=10000)
    assert tab.errors == []
