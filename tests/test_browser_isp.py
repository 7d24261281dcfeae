"""Real Chromium, the ISP side end to end: staff imports CSV files and sends an invite; the customer follows
the emailed link (read from the outbox), sets a password, and pays with the sandbox card in the pop-up."""
import datetime as dt
import pathlib

import pytest

from db.models import Customer, Invoice, Payment
from tests.staff_support import STAFF_EMAIL, STAFF_PASSWORD, last_link, make_staff

pytestmark = pytest.mark.browser
expect = pytest.importorskip("playwright.sync_api").expect

SAMPLES = pathlib.Path(__file__).parent.parent / "samples"
EXPIRY = f"12 / {(dt.date.today().year + 3) % 100:02d}"


def watch(tab, popup):
    popup.on("console", lambda msg: msg.type == "error" and tab.errors.append(f"pop-up: {msg.text}"))
    popup.on("pageerror", lambda exc: tab.errors.append(f"pop-up: {exc}"))
    return popup


def import_file(page, kind, path):
    page.get_by_role("navigation", name="Staff").get_by_role("link", name="Import").click()
    page.get_by_label("Customers" if kind == "customers" else "Invoices", exact=True).check()
    page.get_by_label("CSV file").set_input_files(str(path))
    page.get_by_role("button", name="Import").click()
    expect(page.locator("#import-result")).to_contain_text("were created")


def test_staff_imports_and_invites_then_the_customer_sets_a_password_and_pays(app, open_page):
    from billing import settings
    from db.models import Isp
    from tests.test_staff_pages import png

    make_staff()
    # A branded ISP: the inline accent rule must pass the CSP (a violation is a console error).
    Isp.update(accent_color="#2a7a3b").execute()
    settings.save_logo(png(8, 8))
    staff = open_page()
    page = staff.page
    page.goto(staff.base_url + "/login")
    page.fill("#email", STAFF_EMAIL)
    page.fill("#password", STAFF_PASSWORD)
    page.click("button.primary")
    expect(page).to_have_url(staff.base_url + "/staff/")
    expect(page.locator("header.top")).to_have_css("background-color", "rgb(42, 122, 59)")
    expect(page.locator("header.top img.logo")).to_be_visible()

    import_file(page, "customers", SAMPLES / "customers.csv")
    import_file(page, "invoices", SAMPLES / "invoices.csv")
    assert Customer.select().count() == 3 and Invoice.select().count() == 4

    page.get_by_role("navigation", name="Staff").get_by_role("link", name="Customers").click()
    page.get_by_label("Search by name, account number or email").fill("Ana Reyes")
    page.get_by_role("button", name="Search").click()
    page.get_by_role("link", name="10001").click()
    page.get_by_role("button", name="Send invite to ana.reyes@example.com").click()
    expect(page.locator("#staff-notice")).to_have_text("Invite queued for ana.reyes@example.com.")
    assert staff.errors == []

    customer = open_page()
    page = customer.page
    page.goto(customer.base_url + last_link("invite", to="ana.reyes@example.com"))
    expect(page.get_by_role("heading", name="Set your password")).to_be_visible()
    page.get_by_label("New password", exact=True).fill("ana's new password")
    page.get_by_label("New password again").fill("ana's new password")
    page.get_by_role("button", name="Set password and log in").click()
    expect(page).to_have_url(customer.base_url + "/")

    page.get_by_role("link", name="Payments", exact=True).click()
    step = page.locator("#pay-step")
    expect(step.get_by_role("heading")).to_have_text("Choose your payment method")
    expect(page.get_by_label("Amount")).to_have_value("119.98")
    step.get_by_label("Credit / Debit Card").check()
    step.get_by_role("button", name="Continue").click()
    expect(step.get_by_role("heading")).to_have_text("Billing Information")
    with page.expect_popup() as info:
        page.get_by_role("button", name="Make Payment").click()
    popup = watch(customer, info.value)
    popup.get_by_label("Card number").fill("4242 4242 4242 4242")
    popup.get_by_label("Expiry (MM / YY)").fill(EXPIRY)
    popup.get_by_label("CVC").fill("123")
    popup.get_by_label("ZIP").fill("78620")
    with popup.expect_event("close"):
        popup.get_by_role("button", name="Pay").click()
    expect(page.locator("#pay-step h2")).to_have_text("Payment was successful")
    [payment] = list(Payment.select())
    assert payment.status == "succeeded" and payment.amount_cents == 11998
    assert customer.errors == []

    # The ISP sees it and can export it.
    page = staff.page
    page.get_by_role("navigation", name="Staff").get_by_role("link", name="Payments").click()
    expect(page.locator("#payment-list")).to_contain_text(payment.ref)
    with page.expect_download() as download:
        page.get_by_role("link", name="Export CSV").click()
    text = pathlib.Path(download.value.path()).read_text()
    assert payment.ref in text and "119.98" in text
    assert staff.errors == []


def test_pay_by_link_works_with_javascript_off(app, open_page):
    from billing import paylinks
    from tests.factories import TEST_CONFIG, make_customer, make_invoice

    c = make_customer()
    make_invoice(c, cents=2500, number="OTHER-1")
    inv = make_invoice(c, cents=4100, number="LINK-9")
    tab = open_page(java_script_enabled=False)
    page = tab.page
    page.goto(tab.base_url + f"/paylink/{paylinks.make(TEST_CONFIG['SECRET_KEY'], inv.id)}")
    expect(page.get_by_role("heading", name="Pay invoice LINK-9")).to_be_visible()
    expect(page.get_by_label("Amount")).to_have_value("41.00")  # the balance; part of it may be paid
    expect(page.locator("body")).not_to_contain_text("OTHER-1")
    page.get_by_label("Credit / Debit Card").check()
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_role("heading", name="Billing Information")).to_be_visible()
    expect(page.locator("#pay-step input:not([type=hidden])")).to_have_count(0)  # a card asks nothing here
    page.get_by_role("button", name="Make Payment").click()
    page.get_by_label("Card number").fill("4242 4242 4242 4242")
    page.get_by_label("Expiry (MM / YY)").fill(EXPIRY)
    page.get_by_label("CVC").fill("123")
    page.get_by_label("ZIP").fill("78701")
    page.get_by_role("button", name="Pay").click()
    expect(page.locator("#pay-step h1")).to_have_text("Payment was successful")
    payment = Payment.get()
    assert payment.status == "succeeded" and payment.target_invoice_id == inv.id and payment.amount_cents == 4100
    assert tab.errors == []


def test_staff_import_invite_and_set_password_work_with_javascript_off(app, open_page):
    make_staff()
    staff = open_page(java_script_enabled=False)
    page = staff.page
    page.goto(staff.base_url + "/login")
    page.fill("#email", STAFF_EMAIL)
    page.fill("#password", STAFF_PASSWORD)
    page.click("button.primary")
    import_file(page, "customers", SAMPLES / "customers.csv")
    page.get_by_role("navigation", name="Staff").get_by_role("link", name="Staff home").click()
    page.get_by_role("button", name="Invite all 2 customer(s) not yet invited").click()
    expect(page.get_by_role("status")).to_have_text("2 invite(s) queued.")

    customer = open_page(java_script_enabled=False)
    page = customer.page
    page.goto(customer.base_url + last_link("invite", to="ben.okafor@example.com"))
    page.get_by_label("New password", exact=True).fill("ben's new password")
    page.get_by_label("New password again").fill("ben's new password")
    page.get_by_role("button", name="Set password and log in").click()
    expect(page).to_have_url(customer.base_url + "/")
    expect(page.get_by_role("link", name="Invoices", exact=True)).to_be_visible()
    assert staff.errors == [] and customer.errors == []
