"""What test modules import: the test configuration, factories for customers and invoices, the CSRF-aware
portal client, and the live server and browser page the fixtures in conftest.py hand out.

conftest.py holds fixtures only; import these from here (``from tests.factories import make_customer``)."""
import contextlib
import datetime as dt
import itertools
import re
import secrets
import threading

from werkzeug.serving import make_server

from billing import accounts, identity
from db import database, write_tx
from db.models import Customer

PASSWORD = "correct horse battery"
TEST_CONFIG = {
    "TESTING": True,
    "SANDBOX_WORKER": False,
    "SANDBOX_ACH_SETTLE_SECONDS": 0,
    "SECRET_KEY": "test-secret-key",
    "SANDBOX_WEBHOOK_SECRET": "whsec_sandbox_test",
    "PASSWORD_HASH_TIME_COST": 1,
    "PASSWORD_HASH_MEMORY_COST": 1024,
}
_seq = itertools.count(1)


def make_customer(email=None, password=PASSWORD, **fields):
    """A customer with a login."""
    n = next(_seq)
    tag = secrets.token_hex(4)  # unique even if this module is imported twice
    email = email or f"customer{n}-{tag}@example.test"
    defaults = dict(account_number=f"ACC-{n:05d}-{tag}", name=f"Customer {n}", email=email, phone="512-555-0100",
                    street=f"{n} Main St", city="Austin", state="TX", zip="78701")
    defaults.update(fields)
    with write_tx():
        customer = Customer.create(**defaults)
    identity.create_user(email, password, customer_id=customer.id)
    return customer


def make_invoice(customer, cents=5000, due=None, number=None, issued=None, lines=None):
    """An invoice of ``cents`` for the customer (credit on the account is applied to it)."""
    due = due or (dt.date.today() + dt.timedelta(days=10))
    issued = issued or (due - dt.timedelta(days=20))
    number = number or f"INV-{next(_seq):06d}-{secrets.token_hex(2)}"
    lines = lines or [("Internet service", 1, cents)]
    return accounts.add_invoice(customer.id if hasattr(customer, "id") else customer, number, issued, due, lines)


_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


class Portal:
    """A Flask test client that logs in and sends CSRF tokens the way a browser would."""

    def __init__(self, client):
        self.client = client

    def csrf(self):
        page = self.client.get("/login").get_data(as_text=True)
        m = _TOKEN.search(page)
        if m is None:  # already logged in: /login redirects; take the token from any portal page
            m = _TOKEN.search(self.client.get("/").get_data(as_text=True))
        return m.group(1)

    def login(self, email, password=PASSWORD):
        return self.post("/login", {"email": email, "password": password})

    def get(self, url, htmx=False, **kw):
        headers = kw.pop("headers", {})
        if htmx:
            headers["HX-Request"] = "true"
        return self.client.get(url, headers=headers, **kw)

    def post(self, url, data=None, htmx=False, csrf=True, **kw):
        data = dict(data or {})
        if csrf:
            data.setdefault("csrf_token", self.csrf())
        headers = kw.pop("headers", {})
        if htmx:
            headers["HX-Request"] = "true"
        return self.client.post(url, data=data, headers=headers, **kw)


# --- Real Chromium ----------------------------------------------------------------

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


class LiveServer:
    """The app served over real HTTP on 127.0.0.1 in a background thread."""

    def __init__(self, app):
        self.app = app
        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.thread.join(5)


class Page:
    """A Playwright page that records console errors and page errors."""

    def __init__(self, context, base_url):
        self.context = context
        self.base_url = base_url
        self.page = context.new_page()
        self.errors = []
        self.page.on("console", lambda msg: msg.type == "error" and self.errors.append(msg.text))
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))

    def login(self, email, password=PASSWORD):
        p = self.page
        p.goto(self.base_url + "/login")
        p.fill("#email", email)
        p.fill("#password", password)
        p.click("button.primary")
        p.wait_for_url(self.base_url + "/")
        return p


@contextlib.contextmanager
def counting_queries():
    """A list that collects the SQL of every statement run on the database inside the ``with`` block."""
    db = database.obj
    seen = []
    real = db.execute_sql

    def counting(sql, params=None, *args, **kwargs):
        seen.append(sql)
        return real(sql, params, *args, **kwargs)

    db.execute_sql = counting
    try:
        yield seen
    finally:
        del db.execute_sql
