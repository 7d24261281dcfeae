"""Real Chromium, on a 320 px wide phone with JavaScript off and at 1280 px with it on: a bank payment whose
account must be verified with microdeposits, through the portal's own form on the payment's page, to processing
and then paid."""
import datetime as dt

import pytest

from db.models import Payment
from tests.factories import make_customer, make_invoice

pytestmark = pytest.mark.browser
expect = pytest.importorskip("playwright.sync_api").expect


@pytest.mark.parametrize("js,width", [(False, 320), (True, 1280)], ids=["no-js-320", "js-1280"])
def test_a_bank_account_verified_with_microdeposits(app, live_server, open_page, js, width):
    from views.sandbox import tick

    customer = make_customer()
    invoice = make_invoice(customer, cents=4000, due=dt.date.today() + dt.timedelta(days=5), number="INV-3001")
    tab = open_page(java_script_enabled=js, viewport={"width": width, "height": 640})
    page = tab.login(customer.email)
    page.get_by_role("link", name="Payments", exact=True).click()
    step = page.locator("#pay-step")
    step.get_by_label("ACH (bank account)").check()
    step.get_by_role("button", name="Continue").click()
    if js:  # the processor's window opens as a pop-up and closes itself
        with page.expect_popup() as info:
            page.get_by_role("button", name="Make Payment").click()
        window = info.value
    else:  # the entry page opens in this tab
        page.get_by_role("button", name="Make Payment").click()
        page.wait_for_url("**/sandbox/pay/**")
        window = page
    window.get_by_label("Account holder").fill("Pat Customer")
    window.get_by_label("Routing number").fill("110000000")
    window.get_by_label("Account number").fill("000555555559")
    window.get_by_label("Checking").check()
    window.get_by_label("I accept this authorization").check()
    if js:
        with window.expect_event("close"):
            window.get_by_role("button", name="Pay").click()
    else:
        window.get_by_role("button", name="Pay").click()

    payment = Payment.get(Payment.customer == customer.id)
    if not js:
        page.wait_for_url(tab.base_url + f"/payments/{payment.ref}")
    expect(page.locator("#pay-step h2")).to_have_text("Verify your bank account to finish this payment")
    form = page.locator("#verify")
    assert page.evaluate("document.documentElement.scrollWidth") <= width  # nothing wider than the screen
    form.get_by_label("First deposit").fill("12")
    form.get_by_label("Second deposit").fill("34")
    form.get_by_role("button", name="Verify and pay $40.00").click()
    expect(page.locator("#amounts-error")).to_have_text("Those amounts do not match the deposits. Tries left: 2.")
    expect(page.get_by_label("First deposit")).to_have_attribute("aria-describedby", "amounts-error")
    page.get_by_label("First deposit").fill("32")
    page.get_by_label("Second deposit").fill("45")
    page.get_by_role("button", name="Verify and pay $40.00").click()
    expect(page.locator("#pay-step h2")).to_have_text("Your bank payment is processing")

    page.reload()
    expect(page.locator("#pay-step h2")).to_have_text("Your bank payment is processing")
    tick(app, force=True)
    page.goto(tab.base_url + f"/invoices/{invoice.id}")
    expect(page.locator("#invoice .status").first).to_have_text("Paid")
    assert [e for e in tab.errors if "status of 422" not in e] == []  # the wrong deposits are answered 422
