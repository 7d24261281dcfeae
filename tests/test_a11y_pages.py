"""Accessibility and small-screen structure of the pages, as served (the browser checks are in
test_browser_a11y.py)."""
import datetime as dt
import re

from tests.conftest import make_invoice
from tests.test_ledger import pay

TODAY = dt.date.today()


def test_invoice_list_gives_each_open_invoice_its_own_pay_now_and_view_bills(logged_in, customer):
    paid = make_invoice(customer, 5000, due=TODAY - dt.timedelta(days=40), number="INV-PAID")
    open_ = make_invoice(customer, 3000, due=TODAY + dt.timedelta(days=5), number="INV-OPEN")
    pay(customer, 5000)
    html = logged_in.get("/invoices").get_data(as_text=True)
    rows = dict(re.findall(r'<tr id="invoice-(\d+)">(.*?)</tr>', html, re.S))
    assert f'href="/invoices/{open_.id}/pay"' in rows[str(open_.id)]
    assert "/pay" not in rows[str(paid.id)]
    for inv in (paid, open_):  # each link says which invoice it is for, for screen readers
        assert re.search(rf'View Bills<span class="sr"> {inv.number}</span>', rows[str(inv.id)])
    assert 'class="stack"' in html and 'data-label="Balance"' in html


def test_a_missing_page_while_logged_in_is_a_404_page_not_a_server_error(logged_in):
    resp = logged_in.get("/no-such-page")
    assert resp.status_code == 404
    assert "We could not find that page." in resp.get_data(as_text=True)
