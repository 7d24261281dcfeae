"""Staff pages: settings (with the logo), customer search, payments filters and CSV export, audit log."""
import base64
import csv
import hashlib
import io
import re
import struct
import zlib

from db import write_tx
from db.models import AuditLog, Isp, Payment, utcnow
from tests.factories import PASSWORD, make_customer, make_invoice
from tests.staff_support import staff  # noqa: F401

GOOD = {"name": "Hill Country Wireless", "support_phone": "830-555-0199", "support_email": "help@hcw.example",
        "help_url": "https://help.hcw.example", "chat_url": "https://chat.hcw.example", "accent_color": "#2a7a3b",
        "show_invoices": "1", "show_payments": "1", "accept_card": "1", "accept_ach": "1", "allow_prepay": "1",
        "min_payment": "5.00", "max_payment": "2,000.00", "max_prepay": "100", "autopay_days_before_due": "3",
        "invite_subject": "Welcome to {isp}", "invite_text": "Hello {name}: {link}"}


def png(width=1, height=1):
    """A tiny valid PNG."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    raw = b"".join(b"\x00" + b"\x00\x00\x00" * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def test_settings_are_saved_and_shown_to_customers(app, staff, client):
    resp = staff.post("/staff/settings", GOOD)
    assert resp.status_code == 303
    isp = Isp.current()
    assert (isp.name, isp.min_payment_cents, isp.max_payment_cents, isp.max_prepay_cents) == \
        ("Hill Country Wireless", 500, 200000, 10000)
    assert isp.show_statement is False and isp.accent_color == "#2a7a3b"
    from db.models import AutopayPolicy
    assert AutopayPolicy.current().days_before == 3  # autopay timing lives in autopay's own policy row
    assert 'value="3"' in staff.get("/staff/settings").get_data(as_text=True)
    assert "Settings saved" in staff.get("/staff/settings?saved=1").get_data(as_text=True)
    staff.post("/logout", {})
    c = make_customer()
    staff.login(c.email, PASSWORD)
    resp = staff.get("/")
    home = resp.get_data(as_text=True)
    assert "Hill Country Wireless" in home and "https://help.hcw.example" in home
    assert ">Statement<" not in home and ">Invoices<" in home
    css = ":root{--accent:#2a7a3b}"
    assert f"<style>{css}</style>" in home  # inline: no extra request before the first render
    digest = base64.b64encode(hashlib.sha256(css.encode()).digest()).decode()
    assert f"'sha256-{digest}'" in resp.headers["Content-Security-Policy"].split("style-src")[1].split(";")[0]
    assert AuditLog.select().where(AuditLog.action == "settings.updated").count() == 1


def test_settings_errors_are_shown_by_field_and_nothing_is_saved(app, staff):
    bad = {**GOOD, "name": "", "help_url": "javascript:alert(1)", "accent_color": "red;}", "min_payment": "abc",
           "autopay_days_before_due": "99", "accept_card": "", "accept_ach": "", "support_email": "nope"}
    resp = staff.post("/staff/settings", bad)
    assert resp.status_code == 422
    page = resp.get_data(as_text=True)
    for field in ("name", "help_url", "accent_color", "min_payment", "autopay_days_before_due", "accept_card",
                  "support_email"):
        assert f'id="{field}-error"' in page, field
    assert Isp.current().name == "Test ISP"


def test_logo_upload_is_checked_and_served(app, staff, client):
    ok = staff.post("/staff/settings/logo", {"logo": (io.BytesIO(png()), "logo.png")},
                    content_type="multipart/form-data")
    assert ok.status_code == 303
    url = re.search(r'<img src="(/logo/[0-9a-f]+)"', staff.get("/staff/").get_data(as_text=True)).group(1)
    served = client.get(url)
    assert served.status_code == 200 and served.mimetype == "image/png" and served.data == png()
    assert "immutable" in served.headers["Cache-Control"]
    svg = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
    bad = staff.post("/staff/settings/logo", {"logo": (io.BytesIO(svg), "logo.svg")},
                     content_type="multipart/form-data")
    assert bad.status_code == 422 and 'id="logo-error"' in bad.get_data(as_text=True)
    big = staff.post("/staff/settings/logo", {"logo": (io.BytesIO(png() + b"\0" * 13_000), "big.png")},
                     content_type="multipart/form-data")
    assert big.status_code == 422 and "12 KB or smaller" in big.get_data(as_text=True)
    assert client.get(url).data == png()
    assert client.get("/logo/0123456789abcdef").status_code == 404
    staff.post("/staff/settings/logo", {"remove": "1"})
    assert client.get(url).status_code == 404
    assert "<img" not in staff.get("/staff/").get_data(as_text=True)


def _payment(customer, ref, status, method="card", cents=1000):
    with write_tx():
        return Payment.create(ref=ref, customer=customer.id, idempotency_key=f"key-{ref}", amount_cents=cents,
                              method_type=method, status=status, processor="sandbox", method_brand="Visa",
                              method_last4="4242", updated_at=utcnow(), settled_at=utcnow())


def test_customer_search_by_name_account_and_email(app, staff):
    make_customer(name="Juniper Rose", account_number="J-77", email="jr@example.test")
    make_customer(name="Other Person")
    for q in ("juniper", "J-77", "jr@example"):
        page = staff.get(f"/staff/customers?q={q}").get_data(as_text=True)
        assert "Juniper Rose" in page and "Other Person" not in page, q
    assert "No customers found" in staff.get("/staff/customers?q=zzz").get_data(as_text=True)


def test_customer_page_shows_invoices_and_payments(app, staff):
    c = make_customer()
    make_invoice(c, cents=4200, number="SHOW-1")
    _payment(c, "PAY-SHOW", "failed")
    page = staff.get(f"/staff/customers/{c.id}").get_data(as_text=True)
    assert "SHOW-1" in page and "PAY-SHOW" in page and "$42.00" in page
    assert staff.get("/staff/customers/99999").status_code == 404


def test_payments_filters_and_csv_export(app, staff):
    c = make_customer(name="=HYPERLINK(\"x\")")
    _payment(c, "PAY-CARD-OK", "succeeded")
    _payment(c, "PAY-ACH-PEND", "processing", method="ach", cents=2500)
    _payment(c, "PAY-CARD-BAD", "failed")
    page = staff.get("/staff/payments?status=processing&method=ach").get_data(as_text=True)
    listed = page.split('id="payment-list"')[1].split("</table>")[0]
    assert "PAY-ACH-PEND" in listed and "PAY-CARD-OK" not in listed
    assert "PAY-ACH-PEND" in page.split('id="pending-ach"')[1]
    bad = staff.get("/staff/payments?start=yesterday").get_data(as_text=True)
    assert 'id="start-error"' in bad
    resp = staff.get("/staff/payments.csv?status=succeeded")
    assert resp.mimetype == "text/csv" and "attachment" in resp.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(resp.get_data(as_text=True))))
    assert [r["ref"] for r in rows] == ["PAY-CARD-OK"]
    assert rows[0]["amount"] == "10.00" and rows[0]["customer_name"].startswith("'=")
    everything = list(csv.DictReader(io.StringIO(staff.get("/staff/payments.csv").get_data(as_text=True))))
    assert len(everything) == 3


def test_audit_log_lists_and_filters(app, staff):
    staff.post("/staff/settings", GOOD)
    page = staff.get("/staff/audit?action=settings.updated").get_data(as_text=True)
    listed = page.split('id="audit"')[1]
    assert "Settings changed" in listed and "Olive Owner" in listed and "(Owner)" in listed
    assert "Logged in" not in listed


def test_failed_autopays_are_listed_on_the_payments_page(app, staff):
    import datetime as dt

    from db.models import AutopayCharge
    c = make_customer(name="Auto Failer")
    inv = make_invoice(c, cents=3300)
    with write_tx():
        AutopayCharge.create(customer=c.id, invoice=inv.id, cycle="2026-03", attempt=1, amount_cents=3300,
                             status="failed", reason_code="card_declined", reason_message="Your card was declined.",
                             run_on=dt.date.today())
    page = staff.get("/staff/payments").get_data(as_text=True)
    section = page.split('id="failed-autopays"')[1]
    assert "Auto Failer" in section and "Your card was declined." in section and "$33.00" in section


def test_prepayment_needs_an_amount_and_can_be_switched_off(app, staff):
    resp = staff.post("/staff/settings", {**GOOD, "max_prepay": ""})
    assert resp.status_code == 422 and 'id="max_prepay-error"' in resp.get_data(as_text=True)
    assert staff.post("/staff/settings", {**GOOD, "allow_prepay": "", "max_prepay": "50"}).status_code == 303
    isp = Isp.current()
    assert isp.allow_prepay is False and isp.max_prepay_cents == 0
    assert 'name="allow_prepay" value="1" checked' not in staff.get("/staff/settings").get_data(as_text=True)
