"""The customer's pages: Home, Invoices, invoice/statement view, statement, and the demo."""
import datetime as dt
import re

import pytest

from billing import demo
from db.models import Customer, Isp
from tests.factories import make_customer, make_invoice
from tests.test_ledger import pay

TODAY = dt.date.today()


def text(resp):
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", resp.get_data(as_text=True)))


def test_home_shows_balance_next_due_date_and_credit(logged_in, customer):
    make_invoice(customer, 5000, due=TODAY + dt.timedelta(days=3))
    make_invoice(customer, 2500, due=TODAY - dt.timedelta(days=3))
    page = text(logged_in.get("/"))
    assert "Balance due $75.00" in page
    assert "Overdue $25.00" in page
    assert "Account credit $0.00" in page
    assert (TODAY - dt.timedelta(days=3)).strftime("%b %-d, %Y") in page


def test_invoices_tab_lists_every_invoice_with_status_and_view_bills(logged_in, customer):
    a = make_invoice(customer, 5000, due=TODAY - dt.timedelta(days=40), number="INV-A")
    b = make_invoice(customer, 3000, due=TODAY + dt.timedelta(days=5), number="INV-B")
    pay(customer, 5000 + 1000)  # pays A, then $10 of B
    page = text(logged_in.get("/invoices"))
    assert "INV-A" in page and "INV-B" in page
    assert page.count("View Bills") == 2
    assert re.search(r"INV-A .* \$50\.00 \$0\.00 Paid", page)
    assert re.search(r"INV-B .* \$30\.00 \$20\.00 Partially paid", page)
    html = logged_in.get("/invoices").get_data(as_text=True)
    assert f'href="/invoices/{a.id}"' in html and f'href="/invoices/{b.id}"' in html


def test_invoice_view_shows_lines_payments_applied_and_balance(logged_in, customer):
    inv = make_invoice(customer, lines=[("Plan", 1, 5999), ("Router", 2, 500)])
    p, _ = pay(customer, 3000, inv.id)
    page = text(logged_in.get(f"/invoices/{inv.id}"))
    assert "Plan" in page and "Router" in page and "$10.00" in page
    assert "Total $69.99" in page
    assert f"Payment {p.ref} applied" in page and "-$30.00" in page
    assert "Balance $39.99" in page
    assert "Pay Now" in page


def test_paid_invoice_offers_no_pay_now(logged_in, customer):
    inv = make_invoice(customer, 1000)
    pay(customer, 1000)
    assert "Pay Now" not in text(logged_in.get(f"/invoices/{inv.id}"))


def test_tabs_are_fragments_for_htmx_and_pages_otherwise(logged_in, customer):
    inv = make_invoice(customer, 1000)
    for url, root in (("/", "home"), ("/invoices", "invoices"), (f"/invoices/{inv.id}", "invoice"),
                      ("/payments", "payments"), ("/statement", "statement")):
        full = logged_in.get(url)
        frag = logged_in.get(url, htmx=True)
        assert full.status_code == frag.status_code == 200, url
        assert "HX-Request" in full.headers["Vary"] and "HX-Request" in frag.headers["Vary"]
        assert full.get_data(as_text=True).startswith("<!doctype html>")
        body = frag.get_data(as_text=True).lstrip()
        assert body.startswith(f'<section id="{root}"') or body.startswith(f'<article id="{root}"'), url
        assert "<html" not in body


def test_history_restore_gets_the_full_page(logged_in):
    resp = logged_in.get("/invoices", headers={"HX-Request": "true", "HX-History-Restore-Request": "true"})
    assert resp.get_data(as_text=True).startswith("<!doctype html>")


def test_htmx_posts_carry_the_csrf_token_from_the_body(logged_in):
    html = logged_in.get("/").get_data(as_text=True)
    token = re.search(r'hx-headers=\'\{"X-CSRFToken": "([^"]+)"\}\'', html).group(1)
    resp = logged_in.client.post("/logout", headers={"X-CSRFToken": token, "HX-Request": "true"})
    assert resp.status_code == 302


def test_security_headers(logged_in):
    resp = logged_in.get("/")
    csp = resp.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'self'" in csp
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert "no-store" in resp.headers["Cache-Control"]
    assert "<script>" not in resp.get_data(as_text=True)  # no inline scripts


def test_invoices_paginate(app, logged_in, customer):
    for i in range(app.config["PER_PAGE"] + 5):
        make_invoice(customer, 100, number=f"P-{i:03d}", due=TODAY + dt.timedelta(days=i))
    first = text(logged_in.get("/invoices"))
    second = text(logged_in.get("/invoices?page=2"))
    assert "Page 1 of 2" in first and "P-024" in first and "P-000" not in first
    assert "P-000" in second and "P-024" not in second
    assert logged_in.get("/invoices?page=abc").status_code == 200


def test_statement_has_a_running_balance(logged_in, customer):
    make_invoice(customer, 5000, issued=TODAY - dt.timedelta(days=60), due=TODAY - dt.timedelta(days=30))
    make_invoice(customer, 4000, issued=TODAY - dt.timedelta(days=10), due=TODAY + dt.timedelta(days=20))
    pay(customer, 6000)
    start = (TODAY - dt.timedelta(days=30)).isoformat()
    page = text(logged_in.get(f"/statement?start={start}&end={TODAY.isoformat()}"))
    assert "Opening balance $50.00" in page
    assert re.search(r"Invoice INV-[\w-]+ \$40\.00 \$90\.00", page)
    assert re.search(r"Payment PAY-\w+ \$60\.00 \$30\.00", page)
    assert "Closing balance $30.00" in page


def test_statement_rejects_bad_dates_at_the_field(logged_in):
    resp = logged_in.get("/statement?start=yesterday&end=2026-01-01")
    assert resp.status_code == 422
    assert 'id="start-error">Enter the date as YYYY-MM-DD.' in resp.get_data(as_text=True)
    resp = logged_in.get("/statement?start=2026-02-01&end=2026-01-01")
    assert "The end date must be on or after the start date." in resp.get_data(as_text=True)


def test_help_center_and_chat_links_come_from_the_isp_settings(logged_in):
    html = logged_in.get("/").get_data(as_text=True)
    assert 'href="https://help.example.test"' in html and 'href="https://chat.example.test"' in html
    assert "Help Center" in html and "chat with us" in html


def test_demo_is_idempotent_and_shows_four_invoices(app, runner, portal):
    Isp.delete().execute()
    first = runner.invoke(args=["demo"])
    assert first.exit_code == 0 and "demo data loaded" in first.output
    assert "demo@example.com / demo-portal-2026" in first.output
    second = runner.invoke(args=["demo"])
    assert "demo data already present" in second.output
    assert Isp.current().name == "Demo Wireless"
    portal.login(demo.DEMO_EMAIL, demo.DEMO_PASSWORD)
    page = text(portal.get("/invoices"))
    assert re.search(r"INV-1004 .* \$64\.99 \$64\.99 Unpaid", page)
    assert re.search(r"INV-1003 .* \$74\.99 \$49\.99 Partially paid", page)
    assert re.search(r"INV-1002 .* \$64\.99 \$64\.99 Overdue", page)
    assert re.search(r"INV-1001 .* \$64\.99 \$0\.00 Paid", page)
    home = text(portal.get("/"))
    assert "Balance due $179.97" in home and "Account credit $0.00" in home
    portal.post("/logout")
    portal.login(demo.OTHER_EMAIL, demo.DEMO_PASSWORD)
    assert "Account credit $10.00" in text(portal.get("/"))


def test_demo_refuses_a_database_with_real_customers_and_writes_nothing(app, runner):
    from db import database
    from db.models import AuditLog, Invoice, Payment, User

    real = make_customer(name="Real Customer")
    make_invoice(real, cents=4500)
    tables = (Customer, User, Invoice, Payment, AuditLog)
    before = {t.__name__: t.select().count() for t in tables}
    result = runner.invoke(args=["demo"])
    assert result.exit_code == 1
    assert "1 real customer(s); the demo is not loaded" in result.output
    assert {t.__name__: t.select().count() for t in tables} == before
    assert User.by_email(demo.DEMO_EMAIL) is None
    with pytest.raises(demo.RealCustomers):
        demo.load(app.extensions["processor"])
    assert {t.__name__: t.select().count() for t in tables} == before
    database.close()


def test_demo_if_empty_leaves_a_real_database_alone(runner):
    make_customer()
    result = runner.invoke(args=["demo", "--if-empty"])
    assert "not loaded" in result.output
