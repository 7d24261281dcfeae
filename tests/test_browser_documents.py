"""Real Chromium: download and read an invoice PDF and a receipt PDF, and print-render an invoice."""
import datetime as dt

import pytest

from billing import receipts
from db.models import Payment
from tests.factories import Portal, make_customer, make_invoice
from tests.test_documents import pdf_text
from tests.test_pay_flow import GOOD_CARD, make_payment, pay_at_processor

pytestmark = pytest.mark.browser
expect = pytest.importorskip("playwright.sync_api").expect
TODAY = dt.date.today()


@pytest.fixture
def paid_account(app):
    """A customer with a two-line invoice, $20.00 of it paid by card through the pay flow."""
    customer = make_customer()
    invoice = make_invoice(customer, number="INV-PDF-1", due=TODAY + dt.timedelta(days=10),
                           lines=[("Fixed wireless 50 Mbps", 1, 5999), ("Static IP", 1, 500)])
    portal = Portal(app.test_client())
    portal.login(customer.email)
    ref, entry = make_payment(portal, "20.00")
    pay_at_processor(portal, entry, GOOD_CARD)
    portal.get(f"/payments/{ref}")
    return customer, invoice, Payment.get(Payment.ref == ref)


def _download(page, link, tmp_path):
    with page.expect_download() as info:
        link.click()
    download = info.value
    path = tmp_path / download.suggested_filename
    download.save_as(path)
    return download.suggested_filename, path.read_bytes()


def test_customer_downloads_and_reads_the_invoice_pdf_and_the_receipt_pdf(open_page, paid_account, tmp_path):
    customer, invoice, payment = paid_account
    code = receipts.format_code(payment.confirmation_code)
    tab = open_page(accept_downloads=True)
    page = tab.login(customer.email)

    page.goto(tab.base_url + f"/invoices/{invoice.id}")
    name, data = _download(page, page.locator("#invoice").get_by_role("link", name="Download PDF"), tmp_path)
    assert name == "invoice-INV-PDF-1.pdf" and len(data) < 30_000
    text = pdf_text(data, tmp_path, "invoice.pdf")
    assert "Invoice INV-PDF-1" in text and "$59.99" in text and "$5.00" in text and "$64.99" in text
    assert [ln.split()[-1] for ln in text.splitlines() if "Balance due" in ln] == ["$44.99"]

    page.goto(tab.base_url + f"/payments/{payment.ref}")
    page.locator("#pay-receipt").click()
    expect(page.locator("#receipt-code")).to_have_text(code)
    name, data = _download(page, page.locator("#receipt").get_by_role("link", name="Download PDF"), tmp_path)
    assert name == f"receipt-{code}.pdf" and len(data) < 30_000
    text = pdf_text(data, tmp_path, "receipt.pdf")
    assert code in text and "$20.00" in text and "Visa ending 4242" in text and "INV-PDF-1 $20.00" in text
    assert tab.errors == []


def test_print_button_works_without_javascript_and_the_invoice_prints_without_navigation(
        open_page, paid_account, tmp_path):
    customer, invoice, payment = paid_account
    tab = open_page(java_script_enabled=False)
    page = tab.login(customer.email)
    page.goto(tab.base_url + f"/invoices/{invoice.id}")
    page.locator("#invoice").get_by_role("link", name="Print").click()
    expect(page).to_have_url(tab.base_url + f"/invoices/{invoice.id}/print")

    page.emulate_media(media="print")
    expect(page.locator(".print-help")).to_be_hidden()
    expect(page.locator("#invoice h1")).to_contain_text("Invoice INV-PDF-1")
    assert page.locator("nav, .tabs, .top, .foot").count() == 0
    printed = pdf_text(page.pdf(format="Letter"), tmp_path, "printed.pdf")
    assert "Invoice INV-PDF-1" in printed and "$64.99" in printed and "$44.99" in printed
    assert "Pay Now" not in printed and "Log out" not in printed and "Print" not in printed
    assert "ready to print" not in printed
    assert tab.errors == []
