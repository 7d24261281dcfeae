"""Real Chromium, the back office: an owner adds a clerk, and the clerk is refused at an owner's page; a clerk takes
cash and voids and re-issues an invoice; an owner refunds a sandbox card payment."""
import pytest

from tests.staff_support import STAFF_EMAIL, STAFF_PASSWORD, make_staff
from tests.test_staff_refunds_sandbox import paid  # noqa: F401

pytestmark = pytest.mark.browser
expect = pytest.importorskip("playwright.sync_api").expect


def staff_login(tab, email, password=STAFF_PASSWORD):
    page = tab.page
    page.goto(tab.base_url + "/login")
    page.fill("#email", email)
    page.fill("#password", password)
    page.click("button.primary")
    expect(page).to_have_url(tab.base_url + "/staff/")
    return page


def test_an_owner_adds_a_clerk_who_is_refused_at_the_owners_pages(app, open_page):
    make_staff()
    owner = open_page(java_script_enabled=False)
    page = staff_login(owner, STAFF_EMAIL)
    page.get_by_role("navigation", name="Staff").get_by_role("link", name="Staff logins").click()
    form = page.locator("#add-staff")
    form.get_by_label("Name").fill("Rosa Counter")
    form.get_by_label("Email").fill("rosa@isp.example.test")
    form.get_by_label("Role").select_option("clerk")
    form.get_by_label("Password (at least 10 characters").fill("a long clerk password")
    form.get_by_label("Password again").fill("a long clerk password")
    form.get_by_role("button", name="Add staff login").click()
    expect(page.locator("#staff-notice")).to_have_text("Staff login created for rosa@isp.example.test.")
    expect(page.locator("#staff-list")).to_contain_text("Rosa Counter")

    clerk = open_page()
    cpage = staff_login(clerk, "rosa@isp.example.test", "a long clerk password")
    nav = cpage.get_by_role("navigation", name="Staff")
    expect(nav.get_by_role("link", name="Customers")).to_be_visible()
    expect(nav.get_by_role("link", name="Settings")).to_have_count(0)
    resp = cpage.goto(clerk.base_url + "/staff/settings")
    assert resp.status == 403
    expect(cpage.get_by_role("heading", level=1)).to_have_text("You do not have access to that page.")
    expect(cpage.get_by_role("link", name="Go to the staff pages")).to_be_visible()
    # The 403 itself is the only thing the console reports.
    assert [e for e in clerk.errors if "403" not in e] == [] and owner.errors == []

    # The owner disables Rosa: her next click lands on the login page.
    page.locator("#staff-list tr", has_text="Rosa Counter").get_by_role("button", name="Disable").click()
    expect(page.locator("#staff-list tr", has_text="Rosa Counter")).to_contain_text("Disabled")
    cpage.goto(clerk.base_url + "/staff/customers")
    expect(cpage).to_have_url(clerk.base_url + "/login?next=%2Fstaff%2Fcustomers")


def test_a_clerk_records_a_cash_payment_and_gets_its_receipt_then_reverses_a_check(app, open_page):
    from db.models import Outbox, Payment
    from tests.factories import make_customer, make_invoice
    from tests.staff_support import CLERK_EMAIL

    make_staff(CLERK_EMAIL, staff_role="clerk", name="Cary Clerk")
    c = make_customer(name="Ana Reyes", email="ana@example.test")
    inv = make_invoice(c, cents=6499, number="INV-COUNTER")
    tab = open_page()
    page = staff_login(tab, CLERK_EMAIL)
    page.get_by_role("navigation", name="Staff").get_by_role("link", name="Customers").click()
    page.get_by_role("link", name=c.account_number).click()
    form = page.locator("#record-payment")
    form.get_by_label("Cash").check()
    form.get_by_label("Amount received").fill("70.00")
    form.get_by_label("Pay first").select_option(str(inv.id))
    form.get_by_role("button", name="Record payment").dblclick()  # a double click records it once
    expect(page.locator("#receipt")).to_be_visible()
    p = Payment.get(Payment.customer == c.id)
    expect(page).to_have_url(tab.base_url + f"/staff/payments/{p.ref}")
    receipt = page.locator("#receipt")
    expect(receipt.get_by_role("heading")).to_have_text("Receipt")
    expect(page.locator("#payment-amount")).to_have_text("$70.00")
    expect(page.locator("#payment-ref")).to_have_text(p.ref)
    expect(page.locator("#receipt-email")).to_have_text("queued for ana@example.test (not sent yet)")
    expect(page.locator("#payment-ledger")).to_contain_text("Invoice INV-COUNTER")
    expect(page.locator("#payment-ledger")).to_contain_text("$5.01")
    assert p.ref in Outbox.get(Outbox.kind == "payment_receipt").text_body
    assert Payment.select().where(Payment.customer == c.id).count() == 1

    page.get_by_label("Reason").fill("Recorded by mistake")
    page.get_by_role("button", name="Reverse payment").click()
    expect(page.locator("#payment-status")).to_have_text("Reversed: Recorded by mistake")
    expect(page.locator("#reversals")).to_contain_text("Reversed by staff")
    assert tab.errors == []


def test_a_clerk_voids_a_wrong_invoice_and_re_issues_it(app, open_page):
    import datetime as dt

    from db.models import Invoice
    from tests.factories import make_customer, make_invoice
    from tests.staff_support import CLERK_EMAIL

    make_staff(CLERK_EMAIL, staff_role="clerk", name="Cary Clerk")
    c = make_customer(name="Ben Ortiz")
    wrong = make_invoice(c, cents=8999, number="INV-WRONG", due=dt.date.today() + dt.timedelta(days=5))
    tab = open_page(java_script_enabled=False)
    page = staff_login(tab, CLERK_EMAIL)
    page.goto(tab.base_url + f"/staff/customers/{c.id}")
    page.get_by_role("link", name="INV-WRONG").click()
    page.get_by_label("Reason").fill("Billed the 100 Mbps plan; customer has 50 Mbps")
    page.get_by_role("button", name="Void invoice").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Void")
    expect(page.locator("#void-reason")).to_contain_text("Billed the 100 Mbps plan")
    page.get_by_role("link", name="Re-issue as a new invoice").click()
    expect(page.get_by_label("Line 1 unit price")).to_have_value("89.99")
    page.get_by_label("Line 1 description").fill("Fixed wireless 50 Mbps")
    page.get_by_label("Line 1 unit price").fill("59.99")
    page.get_by_role("button", name="Create invoice").click()
    expect(page.locator("#invoice-total")).to_have_text("$59.99")
    new = Invoice.select().where((Invoice.customer == c.id) & (Invoice.void == False)).get()  # noqa: E712
    assert new.number != "INV-WRONG" and Invoice.get_by_id(wrong.id).void
    page.get_by_role("link", name="Ben Ortiz").click()
    expect(page.locator("#invoices")).to_contain_text(new.number)
    expect(page.locator("#invoices")).not_to_contain_text("INV-WRONG")
    expect(page.locator("#void-invoices")).to_contain_text("INV-WRONG")
    assert tab.errors == []


def test_an_owner_refunds_a_sandbox_card_payment_in_full_with_a_reason(app, paid, open_page):
    from db.models import Outbox, Payment
    from tests.test_staff_refunds_sandbox import sandbox_refunds

    make_staff()
    tab = open_page(java_script_enabled=False)
    page = staff_login(tab, STAFF_EMAIL)
    page.get_by_role("navigation", name="Staff").get_by_role("link", name="Payments").click()
    page.get_by_role("link", name=paid.ref).click()
    page.get_by_role("link", name="Refund…").click()
    expect(page.get_by_label("Amount to refund")).to_have_value("50.00")  # all that is left, offered
    page.get_by_label("Reason").fill("Paid twice, once at the counter")
    page.get_by_role("button", name="Review refund").click()
    expect(page.locator("#review-amount")).to_have_text("$50.00")
    assert sandbox_refunds(paid) == []
    page.get_by_role("button", name="Confirm refund of $50.00").dblclick()  # a double click refunds once
    expect(page.locator("#staff-notice")).to_contain_text("Refund of $50.00 made.")
    expect(page.locator("#payment-status")).to_have_text("Refunded")
    expect(page.locator("#reversals")).to_contain_text("Paid twice, once at the counter")
    expect(page.locator("#refund-requests")).to_contain_text("Refunded")
    expect(page.locator("#refund-link")).to_have_count(0)  # nothing left to refund
    assert sandbox_refunds(paid) == [5000]
    assert Payment.get_by_id(paid.id).status == "refunded"
    assert Outbox.select().where(Outbox.kind == "payment.reversal").count() == 1
    assert tab.errors == []
