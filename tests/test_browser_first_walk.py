"""Issue 17 in real Chromium: what a new customer stumbled on in a first walk through the portal.

Each test walks one flow the way the customer did, at 1280 px unless it says otherwise, and checks that
the page logged no error (which also proves the CSP still holds).
"""
import datetime as dt
import os
import re

import pytest

from db.models import Payment
from tests.factories import make_customer, make_invoice
from tests.test_browser_pay import choose, fill_ach, fill_card, make_payment, pay_in_popup
from views.sandbox import tick

pytestmark = pytest.mark.browser
expect = pytest.importorskip("playwright.sync_api").expect

TODAY = dt.date.today()
WIDE = {"viewport": {"width": 1280, "height": 900}}
PHONE = {"viewport": {"width": 360, "height": 740}}


def shot(page, name):
    """Keep a screenshot for a person to look at, when SCREENSHOT_DIR names a folder (never in CI's way)."""
    folder = os.environ.get("SCREENSHOT_DIR")
    if folder:
        page.screenshot(path=os.path.join(folder, f"{name}.png"), full_page=True)


def day(d):
    return d.strftime("%b %-d, %Y")


@pytest.fixture
def owing(app):
    """A customer with an overdue invoice and one due later."""
    customer = make_customer()
    old = make_invoice(customer, cents=6499, due=TODAY - dt.timedelta(days=40), number="INV-OLD")
    new = make_invoice(customer, cents=6499, due=TODAY + dt.timedelta(days=20), number="INV-NEW")
    return customer, old, new


def test_the_success_step_and_the_history_below_it_agree_without_a_reload(open_page, owing):
    customer, old, new = owing
    tab = open_page(**WIDE)
    page = tab.login(customer.email)
    page.get_by_role("link", name="Payments", exact=True).click()
    expect(page.locator("#pay-history")).to_contain_text("No payments yet")
    page.evaluate("window.__marker = 1")
    choose(page, amount="64.99")
    popup = make_payment(tab)
    fill_card(popup)
    pay_in_popup(popup)
    expect(page.locator("#pay-step h2")).to_have_text("Payment was successful")
    [payment] = Payment.select().where(Payment.customer == customer.id)
    history = page.locator("#pay-history")
    expect(history).not_to_contain_text("No payments yet")
    expect(history.locator("tbody tr")).to_have_count(1)
    expect(history.locator("tbody tr")).to_contain_text(payment.ref)
    expect(history.locator("tbody tr")).to_contain_text("Succeeded")
    assert page.evaluate("window.__marker") == 1, "the page was reloaded"
    assert tab.errors == []


def test_home_shows_the_next_future_due_date_and_what_is_overdue_since_when(open_page, owing):
    customer, old, new = owing
    tab = open_page(**PHONE)
    page = tab.login(customer.email)
    expect(page.locator("#next-due")).to_have_text(day(new.due_date))
    expect(page.locator("#overdue")).to_have_text(f"$64.99 due {day(old.due_date)}")
    overflow = page.evaluate("document.documentElement.scrollWidth")
    assert overflow <= 360, overflow
    assert tab.errors == []


def test_a_settling_debit_for_the_overdue_invoice_is_processing_not_overdue(app, open_page, owing):
    customer, old, new = owing
    tab = open_page(**WIDE)
    page = tab.login(customer.email)
    page.get_by_role("link", name="Payments", exact=True).click()
    choose(page, method="ACH (bank account)", amount="64.99")
    popup = make_payment(tab)
    fill_ach(popup)
    pay_in_popup(popup)
    expect(page.locator("#pay-step h2")).to_have_text("Your bank payment is processing")
    # 5: the debit now settling is shown, but not offered to continue: there is nothing left to do
    expect(page.locator("#pay-in-flight")).to_contain_text("Processing")
    expect(page.locator("#pay-in-flight").get_by_role("link", name="Continue this payment")).to_have_count(0)
    page.get_by_role("link", name="Home", exact=True).click()
    expect(page.locator("#processing")).to_have_text("$64.99")
    expect(page.locator("#overdue")).to_have_count(0)
    expect(page.locator("#next-due")).to_have_text(day(new.due_date))
    page.get_by_role("link", name="Invoices", exact=True).click()
    row = page.locator(f"#invoice-{old.id}")
    expect(row.locator(".status")).to_have_text("Pending")
    page.get_by_role("link", name="Payments", exact=True).click()
    expect(page.locator("#pay-in-flight").get_by_role("link", name="Continue this payment")).to_have_count(0)
    expect(page.locator("#pay-in-flight").get_by_role("link", name="See it")).to_have_count(1)
    assert tab.errors == []


def test_an_attempt_waiting_for_details_is_offered_to_continue(open_page, owing):
    customer, old, new = owing
    tab = open_page(java_script_enabled=False, **WIDE)
    page = tab.login(customer.email)
    page.get_by_role("link", name="Payments", exact=True).click()
    choose(page, amount="10.00")
    page.get_by_role("button", name="Make Payment").click()  # the processor's page, in this tab
    expect(page.get_by_role("button", name="Pay")).to_be_visible()
    page.goto(tab.base_url + "/payments")
    expect(page.locator("#pay-in-flight")).to_contain_text("Waiting for payment details")
    page.locator("#pay-in-flight").get_by_role("link", name="Continue this payment").click()
    expect(page.locator("#pay-step h2")).to_have_text("Make the payment")
    assert tab.errors == []


def _saved_card(customer):
    from billing import methods
    from db.models import PaymentMethod

    card = PaymentMethod.create(customer=customer.id, processor="sandbox", processor_ref="pm_sbx_card_first_walk",
                                method_type="card", brand="Visa", last4="4242", exp_month=12, exp_year=2034)
    methods.set_default(customer.id, card.id)
    return card


def test_picking_ach_drops_the_saved_card_it_cannot_pay_with(open_page, owing):
    customer, old, new = owing
    _saved_card(customer)
    tab = open_page(**PHONE)
    page = tab.login(customer.email)
    page.get_by_role("link", name="Payments", exact=True).click()
    step = page.locator("#pay-step")
    saved = step.get_by_label("Saved card: Visa ending 4242")
    expect(saved).to_be_checked()
    step.get_by_label("ACH (bank account)").check()
    expect(saved).to_be_hidden()
    expect(step.get_by_label("A new card or bank account")).to_be_checked()
    step.get_by_role("button", name="Continue").click()
    expect(step.get_by_role("heading")).to_have_text("Billing Information")
    expect(step).to_contain_text("ACH (bank account)")
    expect(step).not_to_contain_text("4242")
    step.get_by_role("link", name="Change").click()
    page.locator("#pay-step").get_by_label("Credit / Debit Card").check()
    expect(page.locator("#pay-step").get_by_label("Saved card: Visa ending 4242")).to_be_visible()
    assert tab.errors == []


def test_without_javascript_the_clash_is_named_at_the_field(open_page, owing):
    customer, old, new = owing
    _saved_card(customer)
    tab = open_page(java_script_enabled=False, **WIDE)
    page = tab.login(customer.email)
    page.get_by_role("link", name="Payments", exact=True).click()
    step = page.locator("#pay-step")
    step.get_by_label("ACH (bank account)").check()
    expect(step.get_by_label("Saved card: Visa ending 4242")).to_be_hidden()  # the stylesheet alone hides it
    step.get_by_role("button", name="Continue").click()
    error = page.locator("#saved_method-error")
    expect(error).to_have_text("You chose to pay by ACH (bank account), but your saved card Visa ending 4242 is a "
                               "card. Choose a saved bank account, or a new one.")
    expect(page.get_by_label("A new card or bank account")).to_be_checked()
    page.get_by_role("button", name="Continue").click()
    expect(page.locator("#pay-step h2")).to_have_text("Billing Information")
    assert [e for e in tab.errors if "status of 422" not in e] == []  # the refused form's page is a 422


def test_a_hidden_tab_is_gone_and_its_page_answers_404(app, open_page, owing):
    from db import write_tx
    from db.models import Isp

    customer, old, new = owing
    with write_tx():
        Isp.update(show_statement=False).execute()
    tab = open_page(**WIDE)
    page = tab.login(customer.email)
    expect(page.locator("nav.tabs")).not_to_contain_text("Statement")
    response = page.goto(tab.base_url + "/statement")
    assert response.status == 404
    expect(page.locator("main")).to_contain_text("We could not find that page.")
    assert [e for e in tab.errors if "status of 404" not in e] == []


def test_the_same_tab_processor_page_can_cancel_and_return(open_page, owing):
    customer, old, new = owing
    tab = open_page(java_script_enabled=False, **PHONE)
    page = tab.login(customer.email)
    page.get_by_role("link", name="Payments", exact=True).click()
    choose(page, amount="20.00")
    page.get_by_role("button", name="Make Payment").click()
    expect(page.get_by_role("button", name="Pay")).to_be_visible()  # the processor's page, in this tab
    page.get_by_role("link", name="Cancel and return to Test ISP").click()
    [payment] = Payment.select().where(Payment.customer == customer.id)
    expect(page).to_have_url(tab.base_url + f"/payments/{payment.ref}")
    expect(page.locator("#pay-step h2")).to_have_text("Make the payment")
    page.get_by_role("button", name="Cancel this payment").click()
    expect(page).to_have_url(tab.base_url + "/payments")
    assert Payment.get_by_id(payment.id).status == "canceled"
    assert tab.errors == []


def test_a_pay_link_payment_can_cancel_and_return_from_the_processor_page(app, open_page, owing):
    from billing import paylinks

    customer, old, new = owing
    token = paylinks.make(app.config["SECRET_KEY"], new.id)
    tab = open_page(**WIDE)
    page = tab.page
    page.goto(tab.base_url + f"/paylink/{token}")
    page.get_by_role("button", name="Continue").click()
    page.get_by_role("button", name="Make Payment").click()
    expect(page.get_by_role("button", name="Pay")).to_be_visible()
    page.get_by_role("link", name="Cancel and return to Test ISP").click()
    expect(page).to_have_url(re.compile(rf"/paylink/{re.escape(token)}/PAY-"))
    expect(page.get_by_role("link", name="Open the payment window")).to_be_visible()
    assert tab.errors == []


def test_a_pay_link_pays_part_of_the_invoice_asking_nothing_the_isp_has_on_file(app, open_page, owing):
    from billing import paylinks

    customer, old, new = owing
    token = paylinks.make(app.config["SECRET_KEY"], new.id)
    tab = open_page(**PHONE)
    page = tab.page
    page.goto(tab.base_url + f"/paylink/{token}")
    expect(page.get_by_label("Amount")).to_have_value("64.99")
    page.get_by_label("Amount").fill("70.00")
    page.get_by_role("button", name="Continue").click()
    expect(page.locator("#amount-error")).to_have_text("This link pays this invoice only: at most $64.99.")
    page.get_by_label("Amount").fill("25.00")
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Billing Information")
    expect(page.locator("#pay-step input:not([type=hidden])")).to_have_count(0)
    expect(page.locator("#pay-step")).not_to_contain_text(customer.name)
    expect(page.locator("#pay-step")).not_to_contain_text(customer.street)
    page.get_by_role("button", name="Make Payment").click()
    fill_card(page)
    page.get_by_role("button", name="Pay").click()
    expect(page.locator("#pay-step h1")).to_have_text("Payment was successful")
    [payment] = Payment.select().where(Payment.customer == customer.id)
    assert payment.amount_cents == 2500 and payment.status == "succeeded"
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    assert [e for e in tab.errors if "status of 422" not in e] == []


def test_logging_out_with_the_pop_up_open_then_pay_says_signed_out_and_resumes(open_page, owing):
    customer, old, new = owing
    tab = open_page(**WIDE)
    page = tab.login(customer.email)
    page.get_by_role("link", name="Payments", exact=True).click()
    choose(page, amount="30.00")
    popup = make_payment(tab)
    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(re.compile(r"/login"))
    fill_card(popup)
    popup.get_by_role("button", name="Pay").click()
    expect(popup.get_by_role("heading", level=1)).to_have_text("You signed out, so the payment was not made")
    expect(popup.locator("main")).to_contain_text("Nothing was charged.")
    [payment] = Payment.select().where(Payment.customer == customer.id)
    assert payment.status == "awaiting_details"
    popup.get_by_role("link", name="Sign in to resume the payment").click()
    popup.fill("#email", customer.email)
    popup.fill("#password", "correct horse battery")
    popup.click("button.primary")
    expect(popup).to_have_url(tab.base_url + f"/payments/{payment.ref}")
    expect(popup.locator("#pay-step h2")).to_have_text("Make the payment")
    assert [e for e in tab.errors if "status of 400" not in e] == []  # the refused Pay is a 400


def rgba_png(width, height, rgba):
    """A PNG of one RGBA colour: a logo drawn in the brand colour on a transparent background."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    raw = b"".join(b"\x00" + bytes(rgba) * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


@pytest.fixture
def branded(app):
    """An ISP with a long name, an accent colour, and a transparent logo in that same colour."""
    from billing import settings
    from db import write_tx
    from db.models import Isp

    with write_tx():
        Isp.update(name="Hill Country Rural Wireless Cooperative", accent_color="#2a7a3b").execute()
    settings.save_logo(rgba_png(96, 32, (0x2a, 0x7a, 0x3b, 255)))


def test_the_login_page_wears_the_isps_colour_and_logo(open_page, branded):
    tab = open_page(**PHONE)
    page = tab.page
    page.goto(tab.base_url + "/login")
    expect(page.locator("header.top")).to_have_css("background-color", "rgb(42, 122, 59)")
    expect(page.locator("header.top img.logo")).to_be_visible()
    assert page.locator("header.top img.logo").evaluate("img => img.naturalWidth") == 96
    expect(page.locator("header.top")).to_contain_text("Hill Country Rural Wireless Cooperative")
    expect(page.get_by_role("button", name="Log in")).to_have_css("background-color", "rgb(42, 122, 59)")
    assert tab.errors == []  # the inline accent rule passed the CSP


@pytest.mark.parametrize("width", [360, 1280])
def test_the_brand_bar_keeps_logo_and_name_aligned_and_log_out_on_one_line(open_page, owing, branded, width):
    customer, old, new = owing
    tab = open_page(viewport={"width": width, "height": 800})
    page = tab.login(customer.email)
    logo = page.locator("header.top img.logo")
    name = page.locator("header.top .brand span")
    button = page.get_by_role("button", name="Log out")
    # A logo in the brand colour sits on a light chip, so it does not vanish into the accent bar.
    expect(logo).to_have_css("background-color", "rgb(255, 255, 255)")
    lb, nb, bb = logo.bounding_box(), name.bounding_box(), button.bounding_box()
    assert nb["x"] >= lb["x"] + lb["width"], "the name wraps beside the logo, never under it"
    assert abs((lb["y"] + lb["height"] / 2) - (nb["y"] + nb["height"] / 2)) <= 2, (lb, nb)
    line = float(button.evaluate("b => parseFloat(getComputedStyle(b).lineHeight)"))
    assert bb["height"] < 2 * line, "Log out wrapped onto two lines"
    # With the language chooser and Profile beside it, the bar may wrap at 360 px: Log out then goes to a row of
    # its own, still whole and on screen; it never overlaps the name.
    beside = bb["x"] >= nb["x"] + nb["width"]
    below = bb["y"] >= nb["y"] + nb["height"] - 1
    assert beside or below, "Log out overlaps the name"
    assert bb["x"] + bb["width"] <= width, "Log out is cut off"
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    shot(page, f"brand-{width}")
    assert tab.errors == []


def test_the_blocked_pop_up_form_fits_its_frame_without_an_empty_grey_area(open_page, owing):
    customer, old, new = owing
    tab = open_page(init_script="window.open = () => null", **PHONE)
    page = tab.login(customer.email)
    page.get_by_role("link", name="Payments", exact=True).click()
    choose(page, amount="20.00")
    page.get_by_role("button", name="Make Payment").click()
    frame = page.locator("#pay-inline")
    expect(frame).to_be_visible()
    inner = page.frame_locator("#pay-inline")
    expect(inner.get_by_role("button", name="Pay")).to_be_visible()
    expect(inner.locator("body")).to_have_css("background-color", "rgb(255, 255, 255)")

    def gap():
        content = inner.locator("body").evaluate("b => b.getBoundingClientRect().height")
        return frame.bounding_box()["height"] - content

    page.wait_for_function("document.getElementById('pay-inline').style.height !== ''")
    assert 0 <= gap() <= 8, gap()
    inner.get_by_role("button", name="Pay").click()  # empty: the errors make the form longer, and it still fits
    expect(inner.locator("#number-error")).to_be_visible()
    page.wait_for_timeout(300)
    assert 0 <= gap() <= 8, gap()
    shot(page, "11-inline-frame-360")
    assert [e for e in tab.errors if "status of 422" not in e] == []
