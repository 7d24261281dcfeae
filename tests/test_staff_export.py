"""The staff's CSV export pages through payments by (created_at, id): every payment once, in order, compressed."""
import csv
import datetime as dt
import io

import brotli

from billing import payments as pay
from db import write_tx
from db.models import Allocation, Payment
from tests.factories import make_customer, make_invoice
from tests.staff_support import staff  # noqa: F401 (a fixture)


def _many_payments(n, invoice):
    """n succeeded payments, many sharing one created_at, so that pages meet ties at their edges."""
    base = dt.datetime(2026, 11, 1, 12, 0, 0)
    with write_tx():
        for i in range(n):
            p = Payment.create(ref=f"PAY-EXP{i:05d}", customer=invoice.customer_id, idempotency_key=f"key-exp-{i}",
                               amount_cents=100 + i, method_type="card", status="succeeded", processor="sandbox",
                               created_at=base + dt.timedelta(seconds=i // 7), updated_at=base)
            Allocation.record(p.id, invoice.id, 100 + i)


def test_export_lists_every_payment_once_newest_first_across_page_boundaries(app, staff):  # noqa: F811
    c = make_customer()
    invoice = make_invoice(c, cents=10_000_000, number="INV-EXPORT")
    _many_payments(2345, invoice)
    resp = staff.get("/staff/payments.csv")
    rows = list(csv.DictReader(io.StringIO(resp.get_data(as_text=True))))
    refs = [r["ref"] for r in rows]
    assert len(refs) == len(set(refs)) == 2345
    expected = [p.ref for p in Payment.select().order_by(Payment.created_at.desc(), Payment.id.desc())]
    assert refs == expected
    # Each row's invoices are what the payment was applied to (fetched per page, not per row).
    sample = {r["ref"]: r for r in rows[::333]}
    for p in Payment.select().where(Payment.ref.in_(list(sample))):
        want = ";".join(f"{inv.number}={cents // 100}.{cents % 100:02d}" for inv, cents in pay.applied_to(p))
        assert sample[p.ref]["invoices"] == want
        assert sample[p.ref]["amount"] == f"{p.amount_cents // 100}.{p.amount_cents % 100:02d}"


def test_export_is_compressed_for_clients_that_accept_it(app, staff):  # noqa: F811
    c = make_customer()
    _many_payments(300, make_invoice(c, cents=1_000_000))
    plain = staff.get("/staff/payments.csv").get_data()
    resp = staff.get("/staff/payments.csv", headers={"Accept-Encoding": "br"})
    assert resp.headers.get("Content-Encoding") == "br"
    body = brotli.decompress(resp.get_data())
    assert body == plain
    assert len(resp.get_data()) * 4 < len(plain)


def test_payments_list_stops_counting_at_its_cap_and_still_pages(app, staff, monkeypatch):  # noqa: F811
    import views.staff

    monkeypatch.setattr(views.staff, "COUNT_CAP", 50)
    c = make_customer()
    _many_payments(120, make_invoice(c, cents=1_000_000))
    first = staff.get("/staff/payments").get_data(as_text=True)
    assert "More than 50 payment(s)." in first
    assert ">Page 1<" in first and ">Next<" in first and ">Previous<" not in first
    listed = first.split('id="payment-list"')[1].split("</table>")[0]
    assert listed.count(">PAY-EXP") == 100 and "PAY-EXP00119" in listed and "PAY-EXP00019" not in listed
    second = staff.get("/staff/payments?page=2").get_data(as_text=True)
    listed = second.split('id="payment-list"')[1].split("</table>")[0]
    assert listed.count(">PAY-EXP") == 20 and "PAY-EXP00000" in listed
    assert ">Previous<" in second and ">Next<" not in second
    monkeypatch.setattr(views.staff, "COUNT_CAP", 10_000)
    assert "120 payment(s)." in staff.get("/staff/payments").get_data(as_text=True)
    assert "Page 1 of 2" in staff.get("/staff/payments").get_data(as_text=True)
