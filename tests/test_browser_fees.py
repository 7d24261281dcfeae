"""Real Chromium: a card payment with the ISP's convenience fee shown before Make Payment and charged on top."""
import datetime as dt

import pytest

from db.models import Allocation, CreditEntry, Payment, SandboxIntent
from tests.factories import make_customer, make_invoice
from tests.test_browser_pay import choose, fill_card, make_payment, pay_in_popup
from tests.test_fees import set_fees

pytestmark = pytest.mark.browser
expect = pytest.importorskip("playwright.sync_api").expect


def test_pay_with_a_card_fee_shown_as_its_own_line_and_charged_exactly(open_page, app):
    set_fees(card=(295, 30))  # 2.95 % + $0.30
    customer = make_customer()
    make_invoice(customer, cents=5000, due=dt.date.today() + dt.timedelta(days=10), number="INV-FEE-B")
    tab = open_page()
    page = tab.login(customer.email)
    page.get_by_role("link", name="Payments", exact=True).click()
    expect(page.locator("#fee-note-card")).to_have_text("(adds a 2.95% + $0.30 fee)")
    choose(page, amount="50.00")
    fee_lines = page.locator("#fee-lines")
    expect(fee_lines).to_be_visible()
    expect(page.locator("#fee-amount")).to_have_text("$1.78")  # 147.5 cents rounds half up to 148, + 30
    expect(page.locator("#fee-total")).to_have_text("$51.78")
    popup = make_payment(tab)
    expect(popup.locator("#sandbox-amount")).to_have_text("$51.78")  # the processor is asked for the total
    fill_card(popup)
    pay_in_popup(popup)

    expect(page.locator("#pay-step h2")).to_have_text("Payment was successful")
    expect(page.locator("#pay-amount")).to_have_text("$50.00")
    expect(page.locator("#pay-fee")).to_have_text("$1.78")
    expect(page.locator("#pay-total")).to_have_text("$51.78")
    [payment] = Payment.select().where(Payment.customer == customer.id)
    assert (payment.amount_cents, payment.fee_cents) == (5000, 178)
    assert SandboxIntent.get_by_id(payment.processor_ref).amount_cents == 5178
    assert [a.amount_cents for a in Allocation.select().where(Allocation.payment == payment.id)] == [5000]
    assert not CreditEntry.select().where(CreditEntry.payment == payment.id).exists()
    assert tab.errors == []
