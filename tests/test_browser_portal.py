"""Real Chromium: the portal's pages, loaded as htmx fragments, and the same pages with JavaScript off."""
import datetime as dt

import pytest

from tests.factories import make_customer, make_invoice

pytestmark = pytest.mark.browser
expect = pytest.importorskip("playwright.sync_api").expect


@pytest.fixture
def customer_with_invoices(app):
    customer = make_customer()
    today = dt.date.today()
    old = make_invoice(customer, cents=4000, due=today - dt.timedelta(days=5))
    new = make_invoice(customer, cents=6500, due=today + dt.timedelta(days=25))
    return customer, old, new


def test_invoice_opens_as_htmx_fragment_without_page_load(open_page, customer_with_invoices):
    customer, old, new = customer_with_invoices
    tab = open_page()
    page = tab.login(customer.email)
    page.evaluate("window.__marker = 1")

    page.get_by_role("link", name="Invoices", exact=True).click()
    expect(page.locator("#invoices h1")).to_have_text("Invoices")
    expect(page).to_have_url(tab.base_url + "/invoices")
    expect(current_tab(page)).to_have_text(["Invoices"])
    expect(page.locator("#invoices tbody tr")).to_have_count(2)

    page.locator(f"#invoice-{old.id}").get_by_role("link", name="View Bills").click()
    expect(page.locator("#invoice h1")).to_contain_text(old.number)
    expect(page).to_have_url(tab.base_url + f"/invoices/{old.id}")
    expect(page.locator("#invoice-balance")).to_have_text("$40.00")
    assert page.evaluate("window.__marker") == 1, "the invoice view was a full page load"

    page.go_back()  # history restore works too, and the tab stays put
    expect(page.locator("#invoices h1")).to_have_text("Invoices")
    expect(page).to_have_url(tab.base_url + "/invoices")
    expect(current_tab(page)).to_have_text(["Invoices"])
    assert tab.errors == []


def current_tab(page):
    return page.locator("nav.tabs a[aria-current=page]")


def test_exactly_one_tab_is_marked_current(open_page, customer_with_invoices):
    customer, old, new = customer_with_invoices
    tab = open_page()
    page = tab.login(customer.email)
    expect(current_tab(page)).to_have_text(["Home"])
    for name, url in (("Statement", "/statement"), ("Invoices", "/invoices"), ("Payments", "/payments"),
                      ("Home", "/")):
        page.get_by_role("link", name=name, exact=True).click()  # as fragments
        expect(page).to_have_url(tab.base_url + url)
        expect(current_tab(page)).to_have_text([name])
        page.reload()  # and as full pages
        expect(current_tab(page)).to_have_text([name])
    page.get_by_role("link", name="Invoices", exact=True).click()
    page.locator(f"#invoice-{old.id}").get_by_role("link", name="View Bills").click()
    expect(page.locator("#invoice h1")).to_contain_text(old.number)  # the list has Pay Now links too
    expect(current_tab(page)).to_have_text(["Invoices"])
    page.get_by_role("link", name="Pay Now").click()  # paying belongs to the Payments tab
    expect(page).to_have_url(tab.base_url + f"/invoices/{old.id}/pay")
    expect(current_tab(page)).to_have_text(["Payments"])
    page.reload()
    expect(current_tab(page)).to_have_text(["Payments"])
    assert tab.errors == []


def test_log_out_ends_the_session(open_page, customer_with_invoices):
    customer, old, new = customer_with_invoices
    tab = open_page()
    page = tab.login(customer.email)
    page.get_by_role("button", name="Log out").click()
    page.wait_for_url(tab.base_url + "/login")
    page.goto(tab.base_url + f"/invoices/{old.id}")
    expect(page).to_have_url(f"{tab.base_url}/login?next=%2Finvoices%2F{old.id}")
    expect(page.locator("#password")).to_be_visible()
    assert tab.errors == []


def test_pages_work_with_javascript_off(open_page, customer_with_invoices):
    customer, old, new = customer_with_invoices
    tab = open_page(java_script_enabled=False)
    page = tab.login(customer.email)
    expect(page.locator("#balance-due")).to_have_text("$105.00")

    page.get_by_role("link", name="Invoices", exact=True).click()
    page.wait_for_url(tab.base_url + "/invoices")
    page.locator(f"#invoice-{new.id}").get_by_role("link", name="View Bills").click()
    page.wait_for_url(tab.base_url + f"/invoices/{new.id}")
    expect(page.locator("#invoice h1")).to_contain_text(new.number)
    expect(page.locator("#invoice-balance")).to_have_text("$65.00")

    page.get_by_role("link", name="Statement", exact=True).click()
    page.wait_for_url(tab.base_url + "/statement")
    expect(page.locator("#closing-balance")).to_have_text("$40.00")  # the newer invoice is issued later
    page.fill("#end", new.issue_date.isoformat())
    page.get_by_role("button", name="Show").click()
    page.wait_for_url(tab.base_url + "/statement?*")
    expect(page.locator("#closing-balance")).to_have_text("$105.00")

    page.get_by_role("button", name="Log out").click()
    page.wait_for_url(tab.base_url + "/login")
    assert tab.errors == []


def test_a_dropped_connection_is_told_and_the_next_try_works(open_page, customer_with_invoices):
    customer, old, new = customer_with_invoices
    tab = open_page()
    page = tab.login(customer.email)
    tab.context.set_offline(True)
    page.get_by_role("link", name="Invoices", exact=True).click()
    expect(page.locator("#net-error")).to_have_text(
        "We could not reach the portal. Check your connection, then try again.")
    expect(page.locator("#home")).to_be_visible()  # the page stays as it was
    tab.context.set_offline(False)
    page.get_by_role("link", name="Invoices", exact=True).click()
    expect(page.locator("#invoices h1")).to_have_text("Invoices")
    expect(page.locator("#net-error")).to_be_hidden()
    # the only console errors are the browser's and htmx's own reports of the failed request
    expected = ("ERR_INTERNET_DISCONNECTED", "htmx:sendError", "htmx:afterRequest")
    assert tab.errors and all(any(x in e for x in expected) for e in tab.errors), tab.errors
