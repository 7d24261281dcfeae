"""Real Chromium, JavaScript off, on a 320 px wide phone: a bank payment whose account must be verified with
microdeposits, through the sandbox's verification page, to processing and then paid."""
import datetime as dt

import pytest

from db.models import Payment
from tests.factories import make_customer, make_invoice

pytestmark = pytest.mark.browser
expect = pytest.importorskip("playwright.sync_api").expect


def test_a_bank_account_verified_with_microdeposits_with_javascript_off_on_a_phone(app, live_server, open_page):
    from views.sandbox import tick

    app.extensions["processor"].public_url = live_server.url  # the verification link points at this server
    customer = make_customer()
    invoice = make_invoice(customer, cents=4000, due=dt.date.today() + dt.timedelta(days=5), number="INV-3001")
    tab = open_page(java_script_enabled=False, viewport={"width": 320, "height": 640})
    page = tab.login(customer.email)
    page.get_by_role("link", name="Payments", exact=True).click()
    step = page.locator("#pay-step")
    step.get_by_label("ACH (bank account)").check()
    step.get_by_role("button", name="Continue").click()
    page.get_by_role("button", name="Make Payment").click()  # the entry page opens in this tab
    page.wait_for_url("**/sandbox/pay/**")
    page.get_by_label("Account holder").fill("Pat Customer")
    page.get_by_label("Routing number").fill("110000000")
    page.get_by_label("Account number").fill("000555555559")
    page.get_by_label("Checking").check()
    page.get_by_label("I accept this authorization").check()
    page.get_by_role("button", name="Pay").click()

    payment = Payment.get(Payment.customer == customer.id)
    page.wait_for_url(tab.base_url + f"/payments/{payment.ref}")
    expect(page.locator("#pay-step h2")).to_have_text("Verify your bank account to finish this payment")
    with tab.context.expect_page() as opened:
        page.locator("#pay-verify").click()
    window = opened.value
    expect(window.get_by_role("heading", name="Verify your bank account")).to_be_visible()
    assert window.evaluate("document.documentElement.scrollWidth") <= 320  # nothing wider than the phone

    window.get_by_label("First deposit").fill("12")
    window.get_by_label("Second deposit").fill("34")
    window.get_by_role("button", name="Verify").click()
    expect(window.locator("#amounts-error")).to_have_text("Those amounts do not match the deposits. Tries left: 2.")
    window.get_by_label("First deposit").fill("32")
    window.get_by_label("Second deposit").fill("45")
    window.get_by_role("button", name="Verify").click()
    expect(window.locator("#verify-done")).to_have_text("Bank account verified")

    page.reload()
    expect(page.locator("#pay-step h2")).to_have_text("Your bank payment is processing")
    tick(app, force=True)
    page.goto(tab.base_url + f"/invoices/{invoice.id}")
    expect(page.locator("#invoice .status").first).to_have_text("Paid")
    assert tab.errors == []
