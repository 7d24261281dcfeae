"""Accessibility and small-screen structure of the pages, as served (the browser checks are in
test_browser_a11y.py)."""
import datetime as dt
import re

from tests.factories import make_invoice
from tests.test_pay_flow import BILLING, start
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


def h1s(html):
    return re.findall(r"<h1[ >]", html)


def test_every_customer_page_and_pay_step_has_exactly_one_h1(logged_in, customer):
    inv = make_invoice(customer, 5000, due=TODAY + dt.timedelta(days=5))
    pages = ["/", "/invoices", f"/invoices/{inv.id}", "/statement", "/payments", "/methods",
             f"/invoices/{inv.id}/pay", "/no-such-page"]
    for url in pages:
        assert len(h1s(logged_in.get(url).get_data(as_text=True))) == 1, url
    # Pay Now swaps the whole main area: its fragment brings the page's h1 with it.
    assert len(h1s(logged_in.get(f"/invoices/{inv.id}/pay", htmx=True).get_data(as_text=True))) == 1
    ref = start(logged_in).location.rsplit("/", 1)[1]
    for url in (f"/payments/{ref}",):  # Billing Information as a full page
        assert len(h1s(logged_in.get(url).get_data(as_text=True))) == 1, url
    entry = logged_in.post(f"/payments/{ref}/billing", BILLING)
    assert entry.status_code == 303
    assert len(h1s(logged_in.get(f"/payments/{ref}").get_data(as_text=True))) == 1  # Make the payment
    assert len(h1s(logged_in.get(entry.location).get_data(as_text=True))) == 1  # the processor's window


def test_logged_out_pages_have_exactly_one_h1(client):
    for url in ("/login", "/signup", "/reset"):
        assert len(h1s(client.get(url).get_data(as_text=True))) == 1, url


def test_no_heading_carries_a_live_region_role_so_results_stay_headings():
    import pathlib

    for path in pathlib.Path("templates").rglob("*.html"):
        assert not re.search(r"<h[1-6][^>]*\brole=", path.read_text()), path


def test_billing_errors_are_summarised_at_the_top_with_a_link_to_each_field(logged_in, customer):
    make_invoice(customer, 5000)
    ref = start(logged_in).location.rsplit("/", 1)[1]
    html = logged_in.post(f"/payments/{ref}/billing", {**BILLING, "name": "", "zip": "12"}, htmx=True) \
        .get_data(as_text=True)
    summary = re.search(r'<div class="error-summary" role="alert"[^>]*>(.*?)</div>', html, re.S).group(1)
    assert re.findall(r'href="#(b-[a-z]+)"', summary) == ["b-name", "b-zip"]
    for field in ("name", "zip"):
        assert f'id="b-{field}"' in html
        assert re.search(rf'id="b-{field}"[^>]*aria-describedby="{field}-error"', html)
        assert f'<span class="error" id="{field}-error">' in html
    assert html.index("error-summary") < html.index('id="b-name"')


def test_the_street_field_asks_for_one_address_line(logged_in, customer):
    make_invoice(customer, 5000)
    ref = start(logged_in).location.rsplit("/", 1)[1]
    html = logged_in.get(f"/payments/{ref}").get_data(as_text=True)
    assert re.search(r'id="b-street"[^>]*autocomplete="address-line1"', html)
    assert "street-address" not in html


def test_an_invalid_date_is_not_echoed_into_the_date_input(logged_in):
    html = logged_in.get("/statement?start=2026-02-31&end=2026-13-01").get_data(as_text=True)
    assert re.search(r'id="start" name="start" type="date" value=""', html)
    assert re.search(r'id="end" name="end" type="date" value=""', html)
    assert 'id="start-error"' in html and 'href="#start"' in html
    good = logged_in.get("/statement?start=2026-01-05&end=2026-02-01").get_data(as_text=True)
    assert 'value="2026-01-05"' in good and 'value="2026-02-01"' in good


def test_readable_dates_in_a_wrong_order_stay_in_their_inputs(logged_in):
    html = logged_in.get("/statement?start=2026-03-01&end=2026-02-01").get_data(as_text=True)
    assert 'value="2026-03-01"' in html and 'value="2026-02-01"' in html and 'id="end-error"' in html
