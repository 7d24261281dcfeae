"""Two app hosts on one PostgreSQL: one customer's whole card payment, each request alternating between them.

Each "host" is its own gunicorn (2 workers) with the same settings, as two app servers behind a load
balancer with no sticky sessions would be. Nothing a request needs may live in one process: the login
session, the CSRF token, the payment attempt and the processor's intent must all be found by the other host.
"""
import html
import http.cookiejar
import itertools
import re
import urllib.error
import urllib.parse
import urllib.request

import pytest

from bench.server import gunicorn
from db import database
from db.models import Allocation, Payment
from tests.factories import PASSWORD, TEST_CONFIG, make_customer, make_invoice
from tests.pg_support import fresh_database as _fresh_database

pytestmark = [pytest.mark.postgres]
CARD = {"number": "4242 4242 4242 4242", "expiry": "12 / 34", "cvc": "123", "zip": "78701"}
BILLING = {"name": "Dana Demo", "street": "12 Ridge Road", "city": "Austin", "state": "TX", "zip": "78701",
           "email": "dana@example.test", "phone": "512-555-0100"}


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


class Browser:
    """One customer's browser (one cookie jar), sending each request to the next host in turn."""

    def __init__(self, hosts):
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar), NoRedirect)
        self.hosts = itertools.cycle(hosts)
        self.used = []

    def request(self, path, data=None):
        host = next(self.hosts)
        self.used.append(host)
        body = urllib.parse.urlencode(data).encode() if data is not None else None
        req = urllib.request.Request(host + path, data=body, headers={"User-Agent": "two-hosts-test"})
        # Both hosts are 127.0.0.1 on other ports: cookies do not depend on the port, so the jar sends
        # the one session cookie to either, as a browser would to one site behind a load balancer.
        try:
            with self.opener.open(req, timeout=30) as resp:
                return resp.status, resp.headers, resp.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.headers, e.read().decode()


def _field(page, name):
    m = re.search(rf'name="{name}" value="([^"]*)"', page)
    assert m, f"no {name} in the page"
    return html.unescape(m.group(1))


def test_one_customers_payment_alternates_between_two_hosts_on_one_postgresql(pg_server):
    from app import create_app

    url = _fresh_database(pg_server)
    app = create_app({**TEST_CONFIG, "DATABASE_URL": url})
    from db import migrate
    from db.models import Isp

    migrate.upgrade()
    Isp.create(name="Two Hosts ISP", max_prepay_cents=0)
    customer = make_customer()
    invoice = make_invoice(customer, cents=4599)
    database.close()
    env = {"DATABASE_URL": url, "SECRET_KEY": TEST_CONFIG["SECRET_KEY"], "SANDBOX_WORKER": "false",
           "SANDBOX_WEBHOOK_SECRET": app.config["SANDBOX_WEBHOOK_SECRET"], "SMTP_URL": "console"}
    with gunicorn("app:create_app()", env=env, workers=2, threads=2) as a, \
            gunicorn("app:create_app()", env=env, workers=2, threads=2) as b:
        browser = Browser([a, b])
        status, _, page = browser.request("/login")
        status, headers, _ = browser.request("/login", {"csrf_token": _field(page, "csrf_token"),
                                                        "email": customer.email, "password": PASSWORD})
        assert status == 302, "the login on one host failed"
        status, _, page = browser.request(f"/invoices/{invoice.id}/pay")
        assert status == 200 and 'value="45.99"' in page, "the other host did not know the session"
        status, headers, _ = browser.request("/pay", {"csrf_token": _field(page, "csrf_token"),
                                                      "key": _field(page, "key"), "amount": "45.99",
                                                      "method_type": "card", "invoice_id": str(invoice.id),
                                                      "saved_method": "new"})
        assert status == 303, "Continue failed"
        pay_path = urllib.parse.urlsplit(headers["Location"]).path
        status, _, page = browser.request(pay_path)
        assert status == 200 and "Billing Information" in page
        status, headers, _ = browser.request(f"{pay_path}/billing",
                                             {"csrf_token": _field(page, "csrf_token"), **BILLING})
        assert status == 303, "Make Payment failed"
        entry = urllib.parse.urlsplit(headers["Location"])
        status, _, page = browser.request(f"{entry.path}?{entry.query}")
        assert status == 200 and "4599" not in page and "$45.99" in page
        form = {k: _field(page, k) for k in ("csrf_token", "secret", "mode", "back")}
        status, headers, _ = browser.request(entry.path, {**form, **CARD})
        assert status in (302, 303), "Pay failed"
        status, _, page = browser.request(pay_path)
        assert status == 200 and "Payment was successful" in page
        assert set(browser.used) == {a, b}
    app = create_app({**TEST_CONFIG, "DATABASE_URL": url})
    payments = list(Payment.select())
    assert [p.status for p in payments] == ["succeeded"]
    assert [(a.invoice_id, a.amount_cents) for a in Allocation.select()] == [(invoice.id, 4599)]
    database.close()
