"""Shared fixtures: a real temp-file SQLite portal, factories, a CSRF-aware client, and Chromium."""
import datetime as dt
import itertools
import re
import secrets
import threading

import pytest
from werkzeug.serving import make_server

from app import create_app
from billing import accounts, identity
from db import database, migrate, open_database, write_tx
from db.models import Customer, Isp

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


@pytest.fixture
def db_path(tmp_path):
    return tmp_path / "portal.sqlite3"


@pytest.fixture
def database_url(db_path):
    return f"sqlite:///{db_path}"


@pytest.fixture
def app(database_url, tmp_path):
    """A portal on its own SQLite file, migrated, with one ISP set up."""
    app = create_app({**TEST_CONFIG, "DATABASE_URL": database_url})
    migrate.upgrade()
    Isp.create(name="Test ISP", support_phone="555-0100", help_url="https://help.example.test",
               chat_url="https://chat.example.test", max_prepay_cents=20000)
    yield app
    database.close()


@pytest.fixture
def ledger_db(tmp_path):
    """The database alone, with no Flask app: for the Flask-free billing package."""
    identity.configure(1, 1024)
    open_database(f"sqlite:///{tmp_path / 'ledger.sqlite3'}")
    migrate.upgrade()
    Isp.create(name="Test ISP", max_prepay_cents=20000)
    yield database
    database.close()


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


@pytest.fixture
def factories():
    return type("Factories", (), {"customer": staticmethod(make_customer), "invoice": staticmethod(make_invoice)})


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


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def portal(client):
    return Portal(client)


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def customer(app):
    return make_customer()


@pytest.fixture
def logged_in(app, portal, customer):
    """A portal client logged in as ``customer``."""
    resp = portal.login(customer.email)
    assert resp.status_code == 302, resp.get_data(as_text=True)
    return portal


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


@pytest.fixture
def live_server(app):
    server = LiveServer(app)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def browser():
    """Debian's Chromium, driven by Playwright."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


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


@pytest.fixture
def open_page(browser, live_server):
    """Make a new browser context (options as for ``browser.new_context``) and a logged-out page."""
    contexts = []

    def make(init_script=None, **options):
        context = browser.new_context(**options)
        contexts.append(context)
        if init_script:
            context.add_init_script(init_script)
        return Page(context, live_server.url)

    yield make
    for c in contexts:
        c.close()
