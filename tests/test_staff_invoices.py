"""Invoices on the staff pages: created with lines, edited until money touches them, voided with a reason,
adjusted by credit notes; each change audited, and payments always equal their allocations plus credit."""
import datetime as dt
import re

import pytest

from billing import accounts
from db.models import Allocation, AuditLog, CreditEntry, Invoice, InvoiceLine, Payment, PaymentReversal
from tests.factories import make_customer, make_invoice
from tests.staff_support import clerk  # noqa: F401
from tests.test_offline_payments import record

TODAY = dt.date.today()


def invoice_form(number="INV-T-1", lines=(("Fixed wireless 50 Mbps", "1", "59.99"),), **fields):
    data = {"number": number, "issue_date": TODAY.isoformat(), "due_date": (TODAY + dt.timedelta(days=20)).isoformat(),
            "period_start": "", "period_end": "", **fields}
    for i, (desc, qty, unit) in enumerate(lines):
        data.update({f"line{i}_description": desc, f"line{i}_quantity": qty, f"line{i}_unit": unit})
    return data


def ledger_invariant_holds():
    """Every payment's allocations plus its credit equal what it received less what was taken back."""
    for p in Payment.select():
        alloc = sum(a.amount_cents for a in Allocation.select().where(Allocation.payment == p.id))
        credit = sum(c.amount_cents for c in CreditEntry.select().where(CreditEntry.payment == p.id))
        taken = sum(r.amount_cents for r in PaymentReversal.select().where(PaymentReversal.payment == p.id))
        received = p.amount_cents if p.status in ("succeeded", "refunded", "reversed", "disputed") else 0
        if alloc + credit != received - taken:
            return False
    return True


def test_a_clerk_creates_an_invoice_with_lines_once(app, clerk):
    c = make_customer()
    page = clerk.get(f"/staff/customers/{c.id}/invoices/new").get_data(as_text=True)
    assert re.search(r'name="number" type="text" value="INV-\d{4}-\d{4}"', page)
    form = invoice_form(lines=(("Plan", "1", "59.99"), ("Static IP", "2", "5.00")))
    first = clerk.post(f"/staff/customers/{c.id}/invoices/new", form)
    second = clerk.post(f"/staff/customers/{c.id}/invoices/new", form)  # a double click
    assert first.status_code == second.status_code == 303 and first.location == second.location
    inv = Invoice.get(Invoice.number == "INV-T-1")
    assert inv.total_cents == 6999 and Invoice.select().count() == 1
    assert [(x.description, x.amount_cents) for x in accounts.invoice_lines(inv.id)] == [("Plan", 5999),
                                                                                         ("Static IP", 1000)]
    assert AuditLog.get(AuditLog.action == "invoice.created").actor.startswith("staff:")
    other = clerk.post(f"/staff/customers/{c.id}/invoices/new", invoice_form(lines=(("Other", "1", "1.00"),)))
    assert other.status_code == 422 and "INV-T-1 is already used" in other.get_data(as_text=True)


def test_a_new_invoice_takes_the_credit_the_customer_holds(app, clerk):
    c = make_customer()
    record(clerk, c, amount="20.00")  # no invoice yet: all credit
    clerk.post(f"/staff/customers/{c.id}/invoices/new", invoice_form(lines=(("Plan", "1", "59.99"),)))
    inv = Invoice.get(Invoice.number == "INV-T-1")
    assert accounts.invoice_view(c.id, inv.id).paid_cents == 2000 and CreditEntry.balance(c.id) == 0
    assert ledger_invariant_holds()


def test_bad_invoice_fields_are_shown_by_field_and_nothing_is_written(app, clerk):
    c = make_customer()
    bad = invoice_form(number="no spaces allowed", due_date=(TODAY - dt.timedelta(days=1)).isoformat(),
                       lines=(("", "1", "5.00"), ("Thing", "0", "5.00"), ("Thing", "1", "-5"), ("Ok", "1", "1.234")))
    resp = clerk.post(f"/staff/customers/{c.id}/invoices/new", bad)
    assert resp.status_code == 422
    page = resp.get_data(as_text=True)
    for field in ("number", "due_date", "line0", "line1", "line2", "line3"):
        assert f'id="{field}-error"' in page, field
    empty = clerk.post(f"/staff/customers/{c.id}/invoices/new", invoice_form(lines=()))
    assert empty.status_code == 422 and "Add at least one line." in empty.get_data(as_text=True)
    huge = clerk.post(f"/staff/customers/{c.id}/invoices/new",
                      invoice_form(lines=(("Plan", "10000", "9999999.99"),)))
    assert huge.status_code == 422
    assert Invoice.select().count() == 0 and InvoiceLine.select().count() == 0


def test_an_invoice_is_edited_until_money_is_applied_to_it(app, clerk):
    c = make_customer()
    clerk.post(f"/staff/customers/{c.id}/invoices/new", invoice_form())
    inv = Invoice.get(Invoice.number == "INV-T-1")
    form = clerk.get(f"/staff/invoices/{inv.id}/edit").get_data(as_text=True)
    assert 'value="Fixed wireless 50 Mbps"' in form and 'value="59.99"' in form
    resp = clerk.post(f"/staff/invoices/{inv.id}/edit", invoice_form(lines=(("Fixed wireless 25 Mbps", "1", "39.99"),)))
    assert resp.status_code == 303
    assert Invoice.get_by_id(inv.id).total_cents == 3999
    entry = AuditLog.get(AuditLog.action == "invoice.updated")
    assert '"total_before": 5999' in entry.detail and '"total_after": 3999' in entry.detail
    record(clerk, c, amount="10.00")
    refused = clerk.post(f"/staff/invoices/{inv.id}/edit", invoice_form(lines=(("Cheaper", "1", "1.00"),)))
    assert refused.status_code == 409 and "Payments were applied to it" in refused.get_data(as_text=True)
    assert clerk.get(f"/staff/invoices/{inv.id}/edit").status_code == 409
    assert Invoice.get_by_id(inv.id).total_cents == 3999
    assert [x.description for x in accounts.invoice_lines(inv.id)] == ["Fixed wireless 25 Mbps"]


def test_voiding_a_paid_invoice_turns_its_money_into_credit_for_the_next_invoice(app, clerk):
    c = make_customer()
    wrong = make_invoice(c, cents=5000, due=TODAY - dt.timedelta(days=10), number="WRONG-1")
    later = make_invoice(c, cents=3000, due=TODAY + dt.timedelta(days=10), number="LATER-1")
    record(clerk, c, amount="50.00")
    before = [(a.id, a.amount_cents) for a in Allocation.select()]
    missing = clerk.post(f"/staff/invoices/{wrong.id}/void", {"void_reason": ""})
    assert missing.status_code == 422 and 'id="void_reason-error"' in missing.get_data(as_text=True)
    assert clerk.post(f"/staff/invoices/{wrong.id}/void", {"void_reason": "Billed the wrong plan"}).status_code == 303
    wrong = Invoice.get_by_id(wrong.id)
    assert wrong.void and wrong.void_reason == "Billed the wrong plan"
    assert [(a.id, a.amount_cents) for a in Allocation.select().where(Allocation.id.in_([i for i, _ in before]))] \
        == before  # old rows untouched
    assert sum(a.amount_cents for a in Allocation.select().where(Allocation.invoice == wrong.id)) == 0
    assert accounts.invoice_view(c.id, later.id).paid_cents == 3000  # the released $50 paid LATER-1 ...
    assert CreditEntry.balance(c.id) == 2000  # ... and $20 stays as credit
    assert ledger_invariant_holds()
    assert clerk.post(f"/staff/invoices/{wrong.id}/void", {"void_reason": "again"}).status_code == 303
    assert AuditLog.select().where(AuditLog.action == "invoice.voided").count() == 1
    page = clerk.get(f"/staff/invoices/{wrong.id}").get_data(as_text=True)
    assert "Billed the wrong plan" in page and 'id="reissue"' in page and 'id="void-form"' not in page
    # Re-issue: the form comes filled with the void invoice's lines under a new number.
    form = clerk.get(f"/staff/customers/{c.id}/invoices/new?from={wrong.id}").get_data(as_text=True)
    assert "re-issuing void invoice WRONG-1" in form and 'value="50.00"' in form and 'value="WRONG-1"' not in form
    assert clerk.post(f"/staff/invoices/{wrong.id}/adjust", {"adj_description": "x", "adj_amount": "1.00",
                                                           "adj_key": "k" * 20}).status_code == 422


def test_sums_of_cents_are_integers_on_every_engine(app, clerk):
    """PostgreSQL's SUM of a BIGINT is numeric (a Decimal); audit details would then store "1500", not 1500."""
    from billing import invoicing, payments, refunds

    c = make_customer()
    inv = make_invoice(c, cents=6000, number="SUM-1")
    record(clerk, c, amount="60.00", invoice=str(inv.id))
    paid = Payment.get(Payment.customer == c.id)
    for cents in (invoicing.applied_cents(inv.id), invoicing.pending_cents(inv.id), payments.taken_back(paid.id),
                  refunds.in_flight(paid.id), payments.room(c.id).others_cents):
        assert type(cents) is int, (cents, type(cents))
    assert invoicing.applied_cents(inv.id) == 6000


def test_an_adjustment_lowers_the_invoice_and_an_overpaid_part_becomes_credit(app, clerk):
    c = make_customer()
    inv = make_invoice(c, cents=6000, due=TODAY - dt.timedelta(days=5), number="ADJ-1")
    nxt = make_invoice(c, cents=4000, due=TODAY + dt.timedelta(days=25), number="ADJ-2")
    record(clerk, c, amount="60.00", invoice=str(inv.id))
    page = clerk.get(f"/staff/invoices/{inv.id}").get_data(as_text=True)
    key = re.search(r'name="adj_key" value="([^"]+)"', page).group(1)
    form = {"adj_description": "Credit for 3 days without service", "adj_amount": "15.00", "adj_key": key}
    assert clerk.post(f"/staff/invoices/{inv.id}/adjust", form).status_code == 303
    assert clerk.post(f"/staff/invoices/{inv.id}/adjust", form).status_code == 303  # double submit: once
    assert Invoice.get_by_id(inv.id).total_cents == 4500
    line = InvoiceLine.get(InvoiceLine.kind == "adjustment")
    assert line.amount_cents == -1500 and line.added_by.startswith("staff:")
    assert accounts.invoice_view(c.id, inv.id).balance_cents == 0
    assert accounts.invoice_view(c.id, nxt.id).paid_cents == 1500  # the overpaid $15 went to the next invoice
    assert ledger_invariant_holds()
    too_much = clerk.post(f"/staff/invoices/{inv.id}/adjust",
                          {"adj_description": "x", "adj_amount": "45.01", "adj_key": "b" * 20})
    assert too_much.status_code == 422 and "down to zero at most" in too_much.get_data(as_text=True)
    entry = AuditLog.get(AuditLog.action == "invoice.adjusted")
    assert '"amount_cents": -1500' in entry.detail and '"released_to_credit_cents": 1500' in entry.detail
    # The statement keeps what was billed and shows the credit note as its own row.
    st = accounts.statement(c.id, TODAY - dt.timedelta(days=60), TODAY + dt.timedelta(days=30))
    rows = {(r.kind, r.charge_cents, r.payment_cents) for r in st.rows}
    assert ("invoice", 6000, 0) in rows and ("invoice", 4000, 0) in rows and ("adjustment", 0, 1500) in rows
    assert st.closing_cents == 6000 + 4000 - 1500 - 6000 == accounts.summary(c.id).balance_cents
    later = accounts.statement(c.id, TODAY + dt.timedelta(days=31), TODAY + dt.timedelta(days=32))
    assert later.opening_cents == st.closing_cents  # the opening balance counts the adjustment once


def test_a_statement_before_the_adjustment_shows_the_invoice_as_billed(app, clerk):
    c = make_customer()
    inv = make_invoice(c, cents=5000, due=TODAY - dt.timedelta(days=10), number="OLD-ADJ",
                       issued=TODAY - dt.timedelta(days=30))
    clerk.post(f"/staff/invoices/{inv.id}/adjust", {"adj_description": "Goodwill", "adj_amount": "5.00",
                                                   "adj_key": "c" * 20})
    earlier = accounts.statement(c.id, TODAY - dt.timedelta(days=40), TODAY - dt.timedelta(days=1))
    assert earlier.closing_cents == 5000
    today = accounts.statement(c.id, TODAY, TODAY)
    assert today.opening_cents == 5000 and today.closing_cents == 4500


def _adjust(invoice, cents, key):
    from billing import invoicing

    return invoicing.adjust(invoice.id, {"adj_description": f"Credit {key}", "adj_amount": f"{cents / 100:.2f}",
                                         "adj_key": key * 16}, "staff:test")


def test_a_statement_reads_only_its_customers_adjustments_and_reads_them_once(app):
    from tests.factories import counting_queries

    c, other = make_customer(), make_customer()
    invs = [make_invoice(c, cents=3000, number=f"ST-{i}", issued=TODAY - dt.timedelta(days=70 - 7 * i),
                         due=TODAY - dt.timedelta(days=50 - 7 * i)) for i in range(6)]
    _adjust(invs[1], 500, "a")
    _adjust(invs[4], 250, "b")
    gone = make_invoice(c, cents=2000, number="ST-VOID", issued=TODAY - dt.timedelta(days=20))
    _adjust(gone, 100, "c")
    from billing import invoicing
    assert invoicing.void(gone.id, "Billed in error", "staff:test")
    _adjust(make_invoice(other, cents=4000, number="ST-OTHER", issued=TODAY - dt.timedelta(days=40)), 700, "d")

    with counting_queries() as seen:
        st = accounts.statement(c.id, TODAY - dt.timedelta(days=40), TODAY)
    assert sum("invoice_line" in sql for sql in seen) == 1, seen
    assert sorted(r.payment_cents for r in st.rows if r.kind == "adjustment") == [250, 500]
    assert st.closing_cents == 6 * 3000 - 500 - 250 == accounts.summary(c.id).balance_cents
    assert st.opening_cents == 5 * 3000  # five issued before the window, as billed: both credit notes are of today
    assert accounts.statement(c.id, TODAY + dt.timedelta(days=1), TODAY + dt.timedelta(days=1)).opening_cents == \
        st.closing_cents


@pytest.mark.sqlite_only(reason="reads SQLite's query plan")
def test_a_statements_adjustments_are_found_through_the_index_of_adjustment_lines(app):
    from db import database

    c = make_customer()
    for i in range(30):
        make_invoice(c, cents=3000, number=f"PLAN-{i}")
    sql, params = (InvoiceLine.select(InvoiceLine, Invoice).join(Invoice)
                   .where((Invoice.customer == c.id) & (Invoice.void == False)  # noqa: E712
                          & (InvoiceLine.kind == "adjustment")).sql())
    plan = " / ".join(row[-1] for row in database.execute_sql("EXPLAIN QUERY PLAN " + sql, params).fetchall())
    assert "invoice_line_adjustment" in plan, plan
