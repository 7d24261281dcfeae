"""Real Chromium, Stripe as the processor: the article's pay flow with the portal's pop-up loading Stripe.js
(localstripe's, served by the same Stripe API server the portal talks to). A card payment, and a 3-D Secure
one completed through its challenge in the same window."""
import datetime as dt

import pytest

from db.models import Allocation, Payment
from tests.factories import make_customer, make_invoice
from tests.stripe_support import (  # noqa: F401  (fixtures)
    CARD_3DS,
    CARD_OK,
    app,
    charges_of,
    localstripe,
    stripe_server,
)

pytestmark = pytest.mark.browser
expect = pytest.importorskip("playwright.sync_api").expect


@pytest.fixture
def account(app):
    customer = make_customer()
    today = dt.date.today()
    older = make_invoice(customer, cents=4000, due=today - dt.timedelta(days=5), number="INV-3001")
    newer = make_invoice(customer, cents=6500, due=today + dt.timedelta(days=25), number="INV-3002")
    return customer, older, newer


def watch(tab, popup):
    popup.on("console", lambda msg: msg.type == "error" and tab.errors.append(f"pop-up: {msg.text}"))
    popup.on("pageerror", lambda exc: tab.errors.append(f"pop-up: {exc}"))
    return popup


def to_billing(page, amount):
    page.get_by_role("link", name="Payments", exact=True).click()
    step = page.locator("#pay-step")
    expect(step.get_by_role("heading")).to_have_text("Choose your payment method")
    step.get_by_label("Credit / Debit Card").check()
    step.get_by_label("Amount").fill(amount)
    step.get_by_role("button", name="Continue").click()
    expect(step.get_by_role("heading")).to_have_text("Billing Information")


def open_window(tab):
    page = tab.page
    with page.expect_popup() as info:
        page.get_by_role("button", name="Make Payment").click()
    popup = watch(tab, info.value)
    expect(popup.locator("#card-element input")).to_have_count(5)  # Stripe.js mounted its card fields
    return popup


def fill_card(popup, number):
    field = popup.locator("#card-element")
    field.get_by_placeholder("number").fill(number)
    field.get_by_placeholder("exp_month").fill("12")
    field.get_by_placeholder("exp_year").fill(f"{(dt.date.today().year + 3) % 100:02d}")
    field.get_by_placeholder("cvc").fill("123")
    field.get_by_placeholder("postal_code").fill("78701")


def expect_success(page, amount, applied):
    step = page.locator("#pay-step")
    expect(step.locator("h2")).to_have_text("Payment was successful", timeout=15000)
    expect(step.locator("#pay-amount")).to_have_text(amount)
    expect(step.locator("#pay-method")).to_have_text("Visa ending " + ("4242" if "4242" in applied[1] else "3155"))
    expect(step.locator("#pay-applied")).to_have_text(applied[0])


def test_card_payment_through_the_stripe_popup(open_page, account, stripe_server):
    customer, older, newer = account
    tab = open_page()
    page = tab.login(customer.email)
    to_billing(page, "50.00")
    popup = open_window(tab)
    expect(popup.locator("#stripe-amount")).to_have_text("$50.00")
    fill_card(popup, CARD_OK)
    with popup.expect_event("close"):
        popup.get_by_role("button", name="Pay $50.00").click()
    expect_success(page, "$50.00", ("INV-3001 $40.00, INV-3002 $10.00", "4242"))
    payment = Payment.get(Payment.customer == customer.id)
    assert payment.status == "succeeded"
    assert sorted(a.amount_cents for a in Allocation.select()) == [1000, 4000]
    assert len(charges_of(stripe_server, payment.processor_ref)) == 1
    assert tab.errors == []


def test_3d_secure_card_completes_its_challenge_in_the_same_window(open_page, account, stripe_server):
    customer, older, newer = account
    tab = open_page()
    page = tab.login(customer.email)
    to_billing(page, "40.00")
    popup = open_window(tab)
    fill_card(popup, CARD_3DS)
    popup.get_by_role("button", name="Pay $40.00").click()
    challenge = popup.get_by_role("button", name="Complete authentication")
    expect(challenge).to_be_visible(timeout=10000)  # the issuer's check, inside the pop-up
    payment = Payment.get(Payment.customer == customer.id)
    assert payment.status == "awaiting_details" and charges_of(stripe_server, payment.processor_ref) == []
    with popup.expect_event("close"):
        challenge.click()
    expect_success(page, "$40.00", ("INV-3001 $40.00", "3155"))
    assert Payment.get_by_id(payment.id).status == "succeeded"
    assert len(charges_of(stripe_server, payment.processor_ref)) == 1
    assert tab.errors == []


def test_failed_challenge_shows_why_and_the_customer_can_pay_with_another_card(open_page, account, stripe_server):
    customer, older, newer = account
    tab = open_page()
    page = tab.login(customer.email)
    to_billing(page, "40.00")
    popup = open_window(tab)
    fill_card(popup, CARD_3DS)
    popup.get_by_role("button", name="Pay $40.00").click()
    popup.get_by_role("button", name="Fail authentication").click()
    expect(popup.locator("#stripe-message")).to_be_visible()
    fill_card(popup, CARD_OK)
    with popup.expect_event("close"):
        popup.get_by_role("button", name="Pay $40.00").click()
    expect_success(page, "$40.00", ("INV-3001 $40.00", "4242"))
    payment = Payment.get(Payment.customer == customer.id)
    assert len(charges_of(stripe_server, payment.processor_ref)) == 1
    assert tab.errors == []


def test_popup_blocked_the_stripe_form_works_inline(open_page, account, stripe_server):
    customer, older, newer = account
    tab = open_page(init_script="window.open = () => null")
    page = tab.login(customer.email)
    to_billing(page, "40.00")
    page.get_by_role("button", name="Make Payment").click()
    expect(page.locator("#pay-blocked")).to_be_visible()
    # Stripe's fields are mounted in the portal page itself, never in a frame of ours.
    frame = page.locator("#pay-inline")
    expect(frame.locator("#stripe-window #card-element input")).to_have_count(5)
    expect(page.locator("iframe#pay-inline")).to_have_count(0)
    fill_card(frame, CARD_OK)
    frame.get_by_role("button", name="Pay $40.00").click()
    expect_success(page, "$40.00", ("INV-3001 $40.00", "4242"))
    payment = Payment.get(Payment.customer == customer.id)
    assert len(charges_of(stripe_server, payment.processor_ref)) == 1
    assert tab.errors == []


def test_a_saved_card_whose_bank_asks_for_its_check_gets_it_in_the_window_at_once(open_page, app, account,
                                                                                    stripe_server):
    from db.models import PaymentMethod
    from tests.stripe_support import card_method

    customer, older, newer = account
    proc = app.extensions["processor"]
    method = card_method(stripe_server, CARD_3DS)  # saved before, with the customer's consent
    stripe_server.client.v1.payment_methods.attach(method, params={"customer": proc.customer_ref(customer.id)})
    saved = PaymentMethod.create(customer=customer.id, processor="stripe", method_type="card", processor_ref=method,
                                 brand="Visa", last4="3155", exp_month=12, exp_year=dt.date.today().year + 3)
    tab = open_page()
    page = tab.login(customer.email)
    page.get_by_role("link", name="Payments", exact=True).click()
    step = page.locator("#pay-step")
    step.get_by_label("Credit / Debit Card").check()
    step.get_by_label("Saved card: Visa ending 3155").check()
    step.get_by_label("Amount").fill("40.00")
    step.get_by_role("button", name="Continue").click()
    expect(step.get_by_role("heading")).to_have_text("Billing Information")
    step.get_by_role("button", name="Make Payment").click()  # the portal charges the saved card; the bank asks
    expect(step.get_by_role("heading", level=2)).to_have_text("Make the payment")
    with page.expect_popup() as info:
        step.get_by_role("link", name="Open the payment window").click()
    popup = watch(tab, info.value)
    challenge = popup.get_by_role("button", name="Complete authentication")
    expect(challenge).to_be_visible(timeout=10000)  # at once: nothing typed, nothing clicked in the window
    payment = Payment.get(Payment.customer == customer.id)
    assert payment.payment_method_id == saved.id and payment.status == "awaiting_details"
    with popup.expect_event("close"):
        challenge.click()
    expect_success(page, "$40.00", ("INV-3001 $40.00", "3155"))
    assert len(charges_of(stripe_server, payment.processor_ref)) == 1
    assert tab.errors == []
