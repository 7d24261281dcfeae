"""Issue 17: the rough edges of a first walk through the portal, through HTTP (the browser walks are in
tests/test_browser_first_walk.py)."""
import datetime as dt
import re

import pytest

from billing import accounts
from db.models import Payment
from tests.conftest import make_invoice
from tests.test_pay_flow import ACH_OK, BILLING, GOOD_CARD, pay_at_processor, ref_of, start
from views.sandbox import tick

TODAY = dt.date.today()
TAB = {"X-Payments-Tab": "1"}


def text(html):
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def day(d):
    return d.strftime("%b %-d, %Y")


def pay_ach(portal, amount, account="000123456789"):
    """An ACH debit through the sandbox's same-tab page, back on the portal: processing."""
    ref = ref_of(start(portal, amount, method_type="ach"))
    entry = portal.post(f"/payments/{ref}/billing", BILLING).location
    pay_at_processor(portal, entry, {**ACH_OK, "account": account})
    portal.get(f"/payments/{ref}")
    return ref


def entry_of(html):
    return re.search(r'href="(/sandbox/pay/[^"]+mode=page[^"]*)"', html).group(1).replace("&amp;", "&")


# --- 1. The result and the history in the same response. -----------------------------------------


def test_the_result_step_on_the_payments_tab_carries_the_updated_history(logged_in, customer):
    make_invoice(customer, 3000, due=TODAY + dt.timedelta(days=5))
    ref = ref_of(start(logged_in, "30.00"))
    step = logged_in.post(f"/payments/{ref}/billing", BILLING, htmx=True, headers=dict(TAB)).get_data(as_text=True)
    assert 'id="pay-history"' not in step  # still waiting: nothing below has changed yet
    pay_at_processor(logged_in, entry_of(step), GOOD_CARD)
    html = logged_in.get(f"/payments/{ref}/status?seen=awaiting_details", htmx=True,
                         headers=dict(TAB)).get_data(as_text=True)
    assert "Payment was successful" in html
    history = html[html.index('<div id="pay-history" hx-swap-oob="true">'):]
    assert ref in history and "Succeeded" in history and "No payments yet" not in history
    assert '<div id="pay-in-flight" hx-swap-oob="true">' in html


def test_the_result_step_outside_the_payments_tab_sends_no_out_of_band_parts(logged_in, customer):
    inv = make_invoice(customer, 3000, due=TODAY + dt.timedelta(days=5))
    ref = ref_of(start(logged_in, "30.00", invoice_id=str(inv.id)))
    step = logged_in.post(f"/payments/{ref}/billing", BILLING, htmx=True).get_data(as_text=True)
    pay_at_processor(logged_in, entry_of(step), GOOD_CARD)
    html = logged_in.get(f"/payments/{ref}/status", htmx=True).get_data(as_text=True)
    assert "Payment was successful" in html and "hx-swap-oob" not in html


# --- 2 and 3. Home's dates: the next future due date, overdue with its date, settling is not overdue. --


def test_home_shows_the_next_future_due_date_and_overdue_money_with_its_date(logged_in, customer):
    make_invoice(customer, 2500, due=TODAY - dt.timedelta(days=40))
    make_invoice(customer, 1500, due=TODAY - dt.timedelta(days=10))
    make_invoice(customer, 5000, due=TODAY + dt.timedelta(days=12))
    make_invoice(customer, 5000, due=TODAY + dt.timedelta(days=42))
    page = text(logged_in.get("/").get_data(as_text=True))
    assert f"Next due date {day(TODAY + dt.timedelta(days=12))}" in page
    assert f"Overdue $40.00 due {day(TODAY - dt.timedelta(days=40))}" in page


def test_an_invoice_due_today_is_due_not_overdue(logged_in, customer):
    make_invoice(customer, 2500, due=TODAY)
    page = text(logged_in.get("/").get_data(as_text=True))
    assert f"Next due date {day(TODAY)}" in page and "Overdue" not in page


def test_with_only_overdue_money_nothing_else_is_due(logged_in, customer):
    make_invoice(customer, 2500, due=TODAY - dt.timedelta(days=3))
    page = text(logged_in.get("/").get_data(as_text=True))
    assert "Next due date Nothing else due" in page and "Overdue $25.00" in page


def test_money_settling_for_an_overdue_invoice_is_processing_not_overdue(app, logged_in, customer):
    old = make_invoice(customer, 6499, due=TODAY - dt.timedelta(days=10))
    make_invoice(customer, 6499, due=TODAY + dt.timedelta(days=20))
    ref = pay_ach(logged_in, "64.99")
    assert Payment.get(Payment.ref == ref).status == "processing"
    page = text(logged_in.get("/").get_data(as_text=True))
    assert "Processing $64.99" in page and "Overdue" not in page
    assert f"Next due date {day(TODAY + dt.timedelta(days=20))}" in page
    invoice = text(logged_in.get(f"/invoices/{old.id}").get_data(as_text=True))
    assert "Pending" in invoice and "Overdue" not in invoice
    assert accounts.summary(customer.id).overdue_cents == 0
    tick(app, force=True)  # it settles: paid, and still not overdue
    page = text(logged_in.get("/").get_data(as_text=True))
    assert "Overdue" not in page and "Processing" not in page


def test_a_failed_debit_makes_the_money_overdue_again(app, logged_in, customer):
    make_invoice(customer, 6499, due=TODAY - dt.timedelta(days=10))
    ref = pay_ach(logged_in, "64.99", account="000111111116")
    tick(app, force=True)
    assert Payment.get(Payment.ref == ref).status == "failed"
    assert f"Overdue $64.99 due {day(TODAY - dt.timedelta(days=10))}" in text(logged_in.get("/").get_data(as_text=True))


# --- 5. Only attempts that still need the customer are offered to continue. ------------------------


def test_a_processing_debit_is_shown_but_not_offered_to_continue(logged_in, customer):
    make_invoice(customer, 6499, due=TODAY + dt.timedelta(days=10))
    waiting = ref_of(start(logged_in, "10.00"))
    logged_in.post(f"/payments/{waiting}/billing", BILLING)
    ach = pay_ach(logged_in, "20.00")
    html = logged_in.get("/payments").get_data(as_text=True)
    notices = html[html.index('id="pay-in-flight"'):html.index('id="pay-step"')]
    lines = {ref: line for line in notices.split("</p>") for ref in (waiting, ach) if ref in line}
    assert "Continue this payment" in lines[waiting]
    assert "Processing" in lines[ach] and "Continue this payment" not in lines[ach] and "See it" in lines[ach]
