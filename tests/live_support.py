"""The portal under a real gunicorn (4 workers) on SQLite or PostgreSQL, and browser-like HTTP tabs.

``live`` (parametrized: sqlite, postgresql) migrates a fresh database, loads the demo ISP, and serves it
with gunicorn as production does; the test process keeps its own connection to the same database to
look at the ledger. ``Tab`` is one browser tab: it shares its login's cookies with the other tabs of the
same ``Session``, reads CSRF tokens and idempotency keys from the pages, and never follows redirects, so
a test sees each step's answer.
"""
import contextlib
import http.cookiejar
import os
import pathlib
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest
from peewee import fn

from app import create_app
from billing import demo
from db import database, migrate
from db.models import Allocation, CreditEntry, Invoice, Payment
from tests.factories import TEST_CONFIG
from tests.pg_support import fresh_database as _fresh_database

ROOT = pathlib.Path(__file__).resolve().parent.parent
WORKERS = 4
BILLING = {"name": "Dana Demo", "street": "12 Ridge Road", "city": "Austin", "state": "TX", "zip": "78701",
           "email": "demo@example.com", "phone": "512-555-0100"}
CARD = {"number": "4242 4242 4242 4242", "expiry": "12 / 34", "cvc": "123", "zip": "78701"}
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
_KEY = re.compile(r'name="key" value="([^"]+)"')


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Gunicorn:
    """``gunicorn --workers 4 'app:create_app()'`` on 127.0.0.1, configured through the environment."""

    def __init__(self, database_url, workers=WORKERS, extra_env=None):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "DATABASE_URL": database_url, "SECRET_KEY": TEST_CONFIG["SECRET_KEY"],
               "SANDBOX_WEBHOOK_SECRET": TEST_CONFIG["SANDBOX_WEBHOOK_SECRET"], "SANDBOX_WORKER": "false",
               "SANDBOX_ACH_SETTLE_SECONDS": "0", "PASSWORD_HASH_TIME_COST": "1",
               "PASSWORD_HASH_MEMORY_COST": "1024", "PAYMENT_PROCESSOR": "sandbox", **(extra_env or {})}
        cmd = [str(pathlib.Path(sys.executable).parent / "gunicorn"), "--workers", str(workers), "--threads", "2",
               "--bind", f"127.0.0.1:{self.port}", "--log-level", "warning", "--timeout", "60", "app:create_app()"]
        self.log = open(pathlib.Path(os.environ.get("TMPDIR", "/tmp")) / f"gunicorn-{self.port}.log", "w+")
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=self.log, stderr=self.log,
                                     start_new_session=True)
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(self.url + "/login", timeout=2).read()
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("gunicorn did not start: " + self.output())
                time.sleep(0.2)

    def output(self):
        self.log.flush()
        self.log.seek(0)
        return self.log.read()

    def kill9(self):
        """SIGKILL the master and every worker at once: no request finishes, nothing is cleaned up."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self):
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill9()
        self.log.close()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


class Answer:
    """One HTTP answer: status, Location and body text."""

    def __init__(self, status, headers, body):
        self.status = status
        self.location = headers.get("Location", "")
        self.text = body.decode("utf-8", "replace")

    def csrf(self):
        m = _CSRF.search(self.text)
        return m.group(1) if m else None

    def key(self):
        return _KEY.search(self.text).group(1)


class Session:
    """One login (one cookie jar) that any number of tabs share."""

    def __init__(self, base_url):
        self.base = base_url
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar), _NoRedirect())

    def request(self, method, path, data=None, headers=None):
        url = path if path.startswith("http") else self.base + path
        body = urllib.parse.urlencode(data).encode() if data is not None else None
        req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
        try:
            with self.opener.open(req, timeout=60) as resp:
                return Answer(resp.status, resp.headers, resp.read())
        except urllib.error.HTTPError as e:
            return Answer(e.code, e.headers, e.read())

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, data, csrf, **kw):
        return self.request("POST", path, {**data, "csrf_token": csrf}, **kw)

    def login(self, email=demo.DEMO_EMAIL, password=demo.DEMO_PASSWORD):
        page = self.get("/login")
        answer = self.post("/login", {"email": email, "password": password}, page.csrf())
        assert answer.status == 302, answer.text[:500]
        self.get(answer.location)  # where the browser goes next: Home (it gives the session its CSRF token)
        return self


def start(session, cents, invoice_id=None, saved_method="new"):
    """Pay Now (or the Payments tab) and Continue: returns (the Continue answer, the tab's CSRF token)."""
    page = session.get(f"/invoices/{invoice_id}/pay" if invoice_id else "/payments")
    data = {"amount": f"{cents // 100}.{cents % 100:02d}", "method_type": "card", "key": page.key(),
            "saved_method": saved_method}
    if invoice_id:
        data["invoice_id"] = str(invoice_id)
    return session.post("/pay", data, page.csrf()), page.csrf()


def pay_in_window(session, location, card=CARD):
    """The processor's window at ``location`` (the sandbox's page): the card details, then Pay."""
    parts = urllib.parse.urlsplit(location)
    fields = dict(urllib.parse.parse_qsl(parts.query))
    entry = session.get(location)
    return session.post(parts.path, {**card, "secret": fields["secret"], "mode": "page", "back": fields["back"]},
                        entry.csrf())


def pay_steps(session, invoice_id, cents):
    """One tab's whole way, Pay Now to the processor's Pay: (Continue, Make Payment, Pay) answers.

    A step that did not go on leaves the later ones None.
    """
    cont, csrf = start(session, cents, invoice_id)
    if cont.status != 303:
        return cont, None, None
    make = session.post(cont.location + "/billing", BILLING, csrf)
    if make.status != 303 or "/sandbox/pay/" not in make.location:
        return cont, make, None
    return cont, make, pay_in_window(session, make.location)


def ledger_holds(customer_id):
    """The ledger invariant for one customer: every succeeded payment is exactly its allocations plus its
    credit, and no invoice has more applied than its total. Returns (received, allocated, credit)."""
    received = (Payment.select(fn.COALESCE(fn.SUM(Payment.amount_cents), 0))
                .where((Payment.customer == customer_id) & (Payment.status == "succeeded")).scalar())
    allocated = (Allocation.select(fn.COALESCE(fn.SUM(Allocation.amount_cents), 0)).join(Payment)
                 .where(Payment.customer == customer_id).scalar())
    credit = CreditEntry.balance(customer_id)
    credit_in = (CreditEntry.select(fn.COALESCE(fn.SUM(CreditEntry.amount_cents), 0))
                 .where((CreditEntry.customer == customer_id) & CreditEntry.invoice.is_null()).scalar())
    spent = -(CreditEntry.select(fn.COALESCE(fn.SUM(CreditEntry.amount_cents), 0))
              .where((CreditEntry.customer == customer_id) & CreditEntry.invoice.is_null(False)).scalar())
    assert int(received) == int(allocated) - int(spent) + int(credit_in), (received, allocated, spent, credit_in)
    for inv in Invoice.for_customer(customer_id):
        assert inv.paid_cents <= inv.total_cents, (inv.number, inv.paid_cents, inv.total_cents)
    for inv in Invoice.select().where(Invoice.customer == customer_id):  # the kept total is its allocations' sum
        rows = Allocation.select(fn.COALESCE(fn.SUM(Allocation.amount_cents), 0)).where(Allocation.invoice == inv.id)
        assert inv.paid_cents == int(rows.scalar()), (inv.number, inv.paid_cents)
    return int(received), int(allocated), int(credit)


@pytest.fixture(params=["sqlite", "postgresql"])
def live_db(request, tmp_path):
    """A fresh, migrated database with the demo ISP loaded, on either engine; yields (url, app)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'live.sqlite3'}"
    else:
        url = _fresh_database(request.getfixturevalue("pg_server"))
    app = create_app({**TEST_CONFIG, "DATABASE_URL": url})
    migrate.upgrade()
    demo.load(app.extensions["processor"])
    yield url, app
    database.close()


@pytest.fixture
def live(live_db):
    """The demo portal served by gunicorn with 4 workers; yields the Gunicorn (``.url``, ``.app``)."""
    url, app = live_db
    server = Gunicorn(url)
    server.app = app
    server.database_url = url
    yield server
    server.stop()
