"""One pagination helper (db.pages) for every paged list: bounded page numbers, past the end is the last page."""
import datetime as dt
import re

from db import pages
from db.models import Customer, Payment
from tests.factories import make_customer, make_invoice
from tests.staff_support import staff  # noqa: F401


def _names(query):
    return [c.name for c in query]


def test_paginate_pages_bounds_and_counts(ledger_db):
    for i in range(25):
        make_customer(name=f"C{i:02d}")
    q = Customer.select().order_by(Customer.name)
    first = pages.paginate(q, 1, 10)
    assert _names(first) == [f"C{i:02d}" for i in range(10)] and len(first) == 10
    assert (first.number, first.pages, first.total, first.has_next, first.has_previous) == (1, 3, 25, True, False)
    last = pages.paginate(q, 3, 10)
    assert _names(last) == [f"C{i:02d}" for i in range(20, 25)] and not last.has_next and last.has_previous
    for beyond in (4, 10**30, pages.MAX_PAGE):  # past the end is the last page, and no number overflows
        assert pages.paginate(q, beyond, 10).number == 3
    for before in (0, -5, None):
        assert pages.paginate(q, before, 10).number == 1
    capped = pages.paginate(q, 2, 10, count_cap=20)
    assert capped.total_capped and capped.total == 20 and capped.pages is None and capped.has_next
    assert _names(capped) == [f"C{i:02d}" for i in range(10, 20)]
    empty = pages.paginate(Customer.select().where(Customer.name == "nobody"), 7, 10)
    assert (empty.number, empty.pages, empty.rows, empty.has_next) == (1, 1, [], False)
    assert pages.paginate(q, 2, 10).map(lambda rows: [r.name.lower() for r in rows]).rows[0] == "c10"


def test_every_paged_list_takes_any_page_number(app, logged_in, customer):
    for i in range(app.config["PER_PAGE"] + 1):
        make_invoice(customer, 100, number=f"P-{i:03d}", due=dt.date(2026, 1, 1) + dt.timedelta(days=i))
    for bad in ("abc", "0", "-1", "99999999999999999999999", "１", "2.5", ""):
        for url in ("/invoices", "/payments"):
            resp = logged_in.get(f"{url}?page={bad}")
            assert resp.status_code == 200, (url, bad)
    last = logged_in.get("/invoices?page=99999999").get_data(as_text=True)
    assert "Page 2 of 2" in last and "P-000" in last  # past the end shows the last page


def test_customer_payment_history_is_paged(app, logged_in, customer):
    from billing import payments

    for i in range(payments.HISTORY_PER_PAGE + 3):
        Payment.create(customer=customer.id, ref=f"PAY-{i:03d}", amount_cents=100, status="succeeded",
                       method_type="card", processor="sandbox", idempotency_key=f"k-{i:03d}",
                       created_at=dt.datetime(2026, 1, 1) + dt.timedelta(hours=i))
    first = logged_in.get("/payments").get_data(as_text=True)
    assert "PAY-022" in first and "PAY-000" not in first
    link = re.search(r'href="([^"]*page=2)"[^>]*rel="next"', first)
    assert link and "Page 1 of 2" in first
    second = logged_in.get(link.group(1).replace("&amp;", "&")).get_data(as_text=True)
    assert "PAY-000" in second and "PAY-022" not in second and 'rel="prev"' in second


def test_staff_lists_page_and_keep_their_filters(app, staff):
    for i in range(55):
        make_customer(name=f"Pat {i:02d}", email=f"pat{i:02d}@example.test")
    page = staff.get("/staff/customers?q=pat").get_data(as_text=True)
    assert "Page 1 of 2" in page and "Pat 49" in page and "Pat 50" not in page
    nxt = re.search(r'href="([^"]*)" rel="next"', page).group(1).replace("&amp;", "&")
    assert "q=pat" in nxt and "page=2" in nxt
    second = staff.get(nxt).get_data(as_text=True)
    assert "Pat 54" in second and "Pat 49" not in second and "Page 2 of 2" in second
    for url in ("/staff/customers", "/staff/payments", "/staff/outbox", "/staff/audit"):
        for bad in ("abc", "-3", "99999999999999999999999"):
            assert staff.get(f"{url}?page={bad}").status_code == 200, (url, bad)
