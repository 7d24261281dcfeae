"""PDF and printable invoices, statements and receipts: real PDFs read back with poppler's pdftotext."""
import datetime as dt
import shutil
import subprocess

import pytest

from billing import receipts, settings
from db import write_tx
from db.models import Isp, Payment
from tests.factories import Portal, make_customer, make_invoice
from tests.test_pay_flow import GOOD_CARD, make_payment, pay_at_processor

PDF_BUDGET = 30_000
TODAY = dt.date.today()


def pdf_text(data, tmp_path, name="doc.pdf"):
    """The PDF's text as poppler's pdftotext reads it, in reading order (-layout)."""
    assert shutil.which("pdftotext"), "pdftotext (Debian's poppler-utils) is needed; `make test` installs it"
    path = tmp_path / name
    path.write_bytes(data)
    return subprocess.run(["pdftotext", "-layout", str(path), "-"], check=True, capture_output=True,
                          text=True).stdout


def pdf_fonts(data, tmp_path):
    path = tmp_path / "fonts.pdf"
    path.write_bytes(data)
    return subprocess.run(["pdffonts", str(path)], check=True, capture_output=True, text=True).stdout


def _png(width=48, height=24):
    """A real PNG (zlib-compressed RGB), so the PDF embeds an actual image."""
    import struct
    import zlib

    raw = b"".join(b"\x00" + bytes([11, 92, 173]) * width for _ in range(height))

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


@pytest.fixture
def isp_details(app):
    with write_tx():
        Isp.update(address="12 Ranch Rd 5\nDripping Springs, TX 78620", support_email="help@isp.example.test").execute()
    settings.save_logo(_png(), actor="test")
    return Isp.current()


@pytest.fixture
def bills(customer, isp_details):
    """Two invoices: one with two lines, partly paid by card below; one open."""
    first = make_invoice(customer, number="INV-DOC-1", due=TODAY - dt.timedelta(days=5),
                         issued=TODAY - dt.timedelta(days=25),
                         lines=[("Fixed wireless 50 Mbps", 1, 5999), ("Router rental", 1, 1000)])
    second = make_invoice(customer, 4500, number="INV-DOC-2", due=TODAY + dt.timedelta(days=25), issued=TODAY)
    return first, second


def _pay(portal, amount):
    ref, entry = make_payment(portal, amount)
    pay_at_processor(portal, entry, GOOD_CARD)
    portal.get(f"/payments/{ref}")
    return Payment.get(Payment.ref == ref)


def test_invoice_pdf_has_the_lines_payments_balance_and_the_isps_details(logged_in, bills, tmp_path):
    first, _ = bills
    payment = _pay(logged_in, "20.00")
    resp = logged_in.get(f"/invoices/{first.id}.pdf")
    assert resp.status_code == 200 and resp.mimetype == "application/pdf"
    assert 'filename="invoice-INV-DOC-1.pdf"' in resp.headers["Content-Disposition"]
    data = resp.get_data()
    assert data.startswith(b"%PDF-") and len(data) < PDF_BUDGET
    text = pdf_text(data, tmp_path)
    assert "Test ISP" in text and "12 Ranch Rd 5" in text and "Dripping Springs, TX 78620" in text
    assert "555-0100" in text and "help@isp.example.test" in text
    assert "Invoice INV-DOC-1" in text
    assert "Fixed wireless 50 Mbps" in text and "$59.99" in text and "Router rental" in text and "$10.00" in text
    assert "$69.99" in text  # the total
    assert f"Payment {payment.ref}" in text and "-$20.00" in text
    assert receipts.format_code(payment.confirmation_code) in text
    balance_line = next(line for line in text.splitlines() if "Balance due" in line)
    assert balance_line.split()[-1] == "$49.99"


def test_pdfs_use_only_the_built_in_fonts_and_embed_the_logo(logged_in, bills, tmp_path):
    data = logged_in.get(f"/invoices/{bills[0].id}.pdf").get_data()
    fonts = pdf_fonts(data, tmp_path)
    assert "Helvetica" in fonts and " yes " not in fonts.split("\n", 2)[2]  # nothing embedded
    assert b"/Subtype /Image" in data or b"/Subtype/Image" in data


def test_statement_pdf_covers_the_chosen_dates_with_a_running_balance(logged_in, bills, tmp_path):
    payment = _pay(logged_in, "20.00")
    start, end = (TODAY - dt.timedelta(days=30)).isoformat(), TODAY.isoformat()
    resp = logged_in.get(f"/statement.pdf?start={start}&end={end}")
    assert resp.status_code == 200 and f'statement-{start}-to-{end}.pdf' in resp.headers["Content-Disposition"]
    data = resp.get_data()
    assert len(data) < PDF_BUDGET
    text = pdf_text(data, tmp_path)
    assert "Account statement" in text and "12 Ranch Rd 5" in text
    assert f"{(TODAY - dt.timedelta(days=30)):%b} {(TODAY - dt.timedelta(days=30)).day}" in text
    assert "Invoice INV-DOC-1" in text and "Invoice INV-DOC-2" in text and f"Payment {payment.ref}" in text
    closing = next(line for line in text.splitlines() if "Closing balance" in line)
    assert closing.split()[-1] == "$94.99"  # 69.99 + 45.00 - 20.00


def test_statement_pdf_with_bad_dates_is_refused_with_a_message(logged_in, bills):
    resp = logged_in.get("/statement.pdf?start=2026-02-30&end=2026-01-01")
    assert resp.status_code == 400 and "YYYY-MM-DD" in resp.get_data(as_text=True)


def test_receipt_pdf_has_code_amount_date_and_method(logged_in, bills, tmp_path):
    payment = _pay(logged_in, "25.50")
    code = receipts.format_code(payment.confirmation_code)
    resp = logged_in.get(f"/payments/{payment.ref}/receipt.pdf")
    assert resp.status_code == 200 and f'receipt-{code}.pdf' in resp.headers["Content-Disposition"]
    data = resp.get_data()
    assert len(data) < PDF_BUDGET
    text = pdf_text(data, tmp_path)
    assert "Payment receipt" in text and code in text and "$25.50" in text
    assert "ending 4242" in text and f"{TODAY:%b} {TODAY.day}, {TODAY:%Y}" in text
    assert "INV-DOC-1 $25.50" in text and "Dripping Springs" in text


def test_a_customer_downloads_only_their_own_documents(app, logged_in, bills):
    first, _ = bills
    payment = _pay(logged_in, "10.00")
    other = Portal(app.test_client())
    assert other.login(make_customer().email).status_code == 302
    for path in (f"/invoices/{first.id}.pdf", f"/invoices/{first.id}/print", f"/payments/{payment.ref}/receipt.pdf"):
        assert logged_in.get(path).status_code == 200, path
        assert other.get(path).status_code == 404, path
    anonymous = app.test_client()
    for path in (f"/invoices/{first.id}.pdf", "/statement.pdf", f"/payments/{payment.ref}/receipt.pdf"):
        assert anonymous.get(path).status_code == 302, path


def test_non_latin_text_does_not_break_a_pdf(logged_in, customer, isp_details, tmp_path):
    inv = make_invoice(customer, 1234, number="INV-UNI-1", lines=[("Vé tháng – 光纤 € 5", 1, 1234)])
    text = pdf_text(logged_in.get(f"/invoices/{inv.id}.pdf").get_data(), tmp_path)
    assert "Vé tháng – ?? € 5" in text and "$12.34" in text  # CJK has no Latin form without an embedded font


def test_names_outside_windows_1252_print_as_their_closest_latin_letters(app, isp_details, tmp_path):
    with write_tx():
        Isp.update(name="Łódź Światłowód", address="ul. Piękna 5\nŁódź").execute()
    customer = make_customer(name="Nguyễn Thị Minh Khai", street="Đường Lê Lợi 7", city="Győr")
    portal = Portal(app.test_client())
    assert portal.login(customer.email).status_code == 302
    inv = make_invoice(customer, 2500, number="INV-UNI-2",
                       lines=[("Plan → Pro 🚀 upgrade", 1, 1500), ("Straße Øster ﬁber, Иван Жуков", 1, 1000)])
    data = portal.get(f"/invoices/{inv.id}.pdf").get_data()
    assert len(data) < PDF_BUDGET
    text = pdf_text(data, tmp_path)
    for name in ("Lódz Swiatlowód", "ul. Piekna 5", "Nguyen Thi Minh Khai", "Duong Lê Loi 7", "Györ",
                 "Plan -> Pro upgrade", "Straße Øster fiber, Ivan Zhukov"):
        assert name in text, (name, text)
    assert "?" not in text  # no letter, arrow or emoji became a question mark
    fonts = pdf_fonts(data, tmp_path).splitlines()[2:]
    assert fonts and all(f.startswith("Helvetica") and " no " in f for f in fonts)  # built in, nothing embedded


@pytest.mark.parametrize("raw,shown", [
    ("Łódź", "Lódz"), ("Nguyễn", "Nguyen"), ("Đorđe Ħal", "Dorde Hal"), ("Szűcs", "Szücs"), ("Αθήνα", "Athina"),
    ("a → b ≤ c", "a -> b <= c"), ("Dana 👩\u200d👩\u200d👧 Doe", "Dana Doe"), ("Café", "Café"),
    ("e\u0301", "é"), ("Ａ１", "A1"), ("12\u202f345", "12 345"),
])
def test_text_is_transliterated_to_the_closest_windows_1252_form(raw, shown):
    from billing.pdf import cp1252_text

    assert cp1252_text(raw) == shown


# --- Printable pages. -------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["invoice", "statement", "receipt"])
def test_each_document_has_a_print_link_to_a_page_without_navigation(logged_in, bills, which):
    first, _ = bills
    payment = _pay(logged_in, "10.00")
    page, printable = {
        "invoice": (f"/invoices/{first.id}", f"/invoices/{first.id}/print"),
        "statement": ("/statement", None),
        "receipt": (f"/payments/{payment.ref}/receipt", f"/payments/{payment.ref}/receipt/print"),
    }[which]
    html = logged_in.get(page).get_data(as_text=True)
    if printable is None:
        import re
        printable = re.search(r'href="(/statement/print\?[^"]+)"', html).group(1).replace("&amp;", "&")
    assert f'href="{printable.replace("&", "&amp;")}">Print</a>' in html
    view = logged_in.get(printable)
    body = view.get_data(as_text=True)
    assert view.status_code == 200
    assert 'class="tabs"' not in body and "<nav" not in body and "<script" not in body and "Log out" not in body
    assert "12 Ranch Rd 5" in body and "Test ISP" in body
