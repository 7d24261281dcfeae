"""The audit log in words: who (name and role), what, which record (linked), when and from where;
filtered by record, action, person and dates, and exported as CSV."""
import csv
import datetime as dt
import io

from db.models import AuditLog, Invoice
from tests.factories import make_customer, make_invoice
from tests.staff_support import CLERK_EMAIL, STAFF_EMAIL, log_in_staff, make_staff, staff  # noqa: F401
from tests.factories import Portal
from tests.test_offline_payments import record

TODAY = dt.date.today()


def test_a_counter_payment_reads_as_who_what_which_and_from_where(app, staff):
    make_staff(CLERK_EMAIL, staff_role="clerk", name="Cary Clerk")
    desk = log_in_staff(Portal(app.test_client()), CLERK_EMAIL)
    c = make_customer(name="Ana Reyes")
    inv = make_invoice(c, cents=4000, number="AUD-1")
    record(desk, c, amount="40.00")
    desk.post(f"/staff/invoices/{inv.id}/adjust", {"adj_description": "Goodwill", "adj_amount": "5.00",
                                                 "adj_key": "a" * 20})
    row = AuditLog.get(AuditLog.action == "payment.succeeded")
    assert row.ip == "127.0.0.1"  # the test client's address: where the clerk was
    page = staff.get("/staff/audit").get_data(as_text=True)
    listed = page.split('id="audit"')[1]
    assert "Cary Clerk" in listed and "(Clerk)" in listed and "Payment received" in listed
    assert f'href="/staff/payments/{row.entity_id}">Payment {row.entity_id}</a>' in listed
    assert f'href="/staff/invoices/{inv.id}">Invoice AUD-1</a>' in listed and "Invoice adjusted (credit note)" in listed
    assert "amount: -$5.00" in listed and "127.0.0.1" in listed
    assert '{"' not in listed  # no raw JSON


def test_the_audit_log_filters_by_record_person_and_date_and_exports_csv(app, staff):
    c = make_customer()
    inv = make_invoice(c, cents=1000, number="AUD-2")
    staff.post(f"/staff/invoices/{inv.id}/void", {"void_reason": "Duplicate of AUD-1"})
    page = staff.get(f"/staff/audit?entity=invoice&entity_id={inv.id}").get_data(as_text=True)
    listed = page.split('id="audit"')[1]
    assert "Invoice voided" in listed and "Invoice created" in listed and "Logged in" not in listed
    future = staff.get(f"/staff/audit?start={(TODAY + dt.timedelta(days=2)).isoformat()}").get_data(as_text=True)
    assert "Nothing logged." in future
    bad = staff.get("/staff/audit?start=yesterday")
    assert bad.status_code == 200 and 'id="start-error"' in bad.get_data(as_text=True)
    owner_id = AuditLog.get(AuditLog.action == "invoice.voided").actor
    mine = staff.get(f"/staff/audit?actor={owner_id}").get_data(as_text=True).split('id="audit"')[1]
    assert "Invoice voided" in mine and "Invoice created" not in mine  # made by the system, not the owner
    resp = staff.get(f"/staff/audit.csv?entity=invoice&entity_id={inv.id}")
    assert resp.mimetype == "text/csv" and "attachment" in resp.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(resp.get_data(as_text=True))))
    assert [r["what"] for r in rows] == ["Invoice voided", "Invoice created"]
    assert rows[0]["who"] == "Olive Owner" and rows[0]["role"] == "Owner" and rows[0]["record"] == "Invoice AUD-2"
    assert "Duplicate of AUD-1" in rows[0]["details"] and rows[0]["ip"] == "127.0.0.1"
    assert staff.get("/staff/audit.csv?end=nope").status_code == 400
    assert Invoice.get_by_id(inv.id).void
