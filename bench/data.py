"""The benchmark's database: the demo, customers for the browser runs and the load, and growth customers.

Everything is made through the portal's own service functions (the same code the views call), in a
throw-away SQLite file, so the server under test sees ordinary data.
"""
import datetime as dt
import re
import time
from urllib.parse import urlencode

from app import create_app
from billing import accounts, demo, identity, payments
from db import database, migrate, write_tx
from db.models import Customer

PASSWORD = "bench-portal-2026"
USER_AGENT = "portal-bench/1"  # Flask-Login's "strong" session protection ties a session to it
CARD = "number=4242+4242+4242+4242&expiry=12+%2F+34&cvc=123&zip=78701"
_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def make_app(db_url, secret_key, webhook_secret):
    """The portal as the benchmark's server runs it, without the sandbox's background worker."""
    return create_app({
        "DATABASE_URL": db_url, "SECRET_KEY": secret_key, "SANDBOX_WEBHOOK_SECRET": webhook_secret,
        "SANDBOX_WORKER": False,  # password hashes at the server's own cost, so a login costs one hash
    })


def customer(email, n_invoices=4, paid=0, cents=7999, start=None, per_payment=10):
    """A customer with ``n_invoices`` weekly invoices, the oldest ``paid`` of them paid by card, ``per_payment``
    invoices a payment."""
    today = dt.date.today()
    start = start or today - dt.timedelta(weeks=n_invoices - 2)
    with write_tx():
        c = Customer.create(account_number=f"B-{email.split('@')[0]}", name=email.split("@")[0].title(),
                            email=email, phone="512-555-0100", street="1 Main St", city="Austin", state="TX",
                            zip="78701")
    identity.create_user(email, PASSWORD, customer_id=c.id)
    proc = _processor()
    for i in range(n_invoices):
        issued = start + dt.timedelta(weeks=i)
        accounts.add_invoice(c.id, f"{c.account_number}-{i:05d}", issued, issued + dt.timedelta(days=20),
                             [("Internet service", 1, cents)])
    for first in range(0, paid, per_payment):  # oldest first
        demo._pay(c.id, None, cents * min(per_payment, paid - first), proc, on=today)
    return c


_app = None


def _processor():
    return _app.extensions["processor"]


def build(db_url, secret_key, webhook_secret, pool_sizes, growth=True):
    """Fill the database; returns what the load and browser runs need."""
    global _app
    _app = app = make_app(db_url, secret_key, webhook_secret)
    t0 = time.perf_counter()
    with app.app_context():
        database.connect(reuse_if_open=True)
        if db_url.startswith("sqlite"):
            database.execute_sql("PRAGMA synchronous=OFF")  # this set-up connection only: speed over durability
        migrate.upgrade()
        demo.load(app.extensions["processor"])
        out = {"browser": {}, "growth": {}, "pools": {}}
        for name in ("weights", "branded", "fast", "slow3g", "edge"):
            out["browser"][name] = customer(f"{name}@bench.test").email
        if growth:
            from bench import growth as growth_bench

            out["growth"] = growth_bench.add_customers()  # 10, 1,000 and 10,000 invoices, as bench.growth builds them
        payer = customer("payer@bench.test", 1, cents=100_000_000_00)
        for name, n in pool_sizes.items():
            out["pools"][name] = [_intent_url(app, payer.id) for _ in range(n)]
        database.close()
    out["setup_seconds"] = time.perf_counter() - t0
    out["session"] = login_cookie(app, demo.DEMO_EMAIL, demo.DEMO_PASSWORD)
    first = next(iter(out["pools"].values()), [None])[0]
    out["sandbox"] = sandbox_cookie(app, first) if first else None
    out["invoice_id"] = _first_invoice_id(app, demo.DEMO_EMAIL)
    return app, out


def _intent_url(app, customer_id):
    """A payment at the processor's card form, as the pop-up opens it: (path, form without card)."""
    proc = app.extensions["processor"]
    p = payments.start_payment(customer_id, amount_text="1.00", method_type="card",
                               idempotency_key=payments.new_idempotency_key(), processor_name=proc.name,
                               actor="bench")
    p = payments.confirm_billing(p, {"name": "Payer", "street": "1 Main St", "city": "Austin", "state": "TX",
                                     "zip": "78701", "email": "payer@bench.test", "phone": "512-555-0100"},
                                 proc, actor="bench")
    state = proc.retrieve_payment_intent(p.processor_ref)
    form = {"secret": state.client_secret, "mode": "popup", "back": f"/payments/{p.ref}"}
    return f"/sandbox/pay/{state.id}", urlencode(form)


def login_cookie(app, email, password):
    """A logged-in session cookie for the load generator."""
    client = app.test_client()
    headers = {"User-Agent": USER_AGENT}
    token = _TOKEN.search(client.get("/login", headers=headers).get_data(as_text=True)).group(1)
    r = client.post("/login", data={"csrf_token": token, "email": email, "password": password}, headers=headers)
    assert r.status_code == 302, r.status_code
    client.get("/", headers=headers)  # the first page adds the CSRF secret to the session
    token = _TOKEN.search(client.get("/payments", headers=headers).get_data(as_text=True)).group(1)
    return {"cookie": f"session={client.get_cookie('session').value}", "csrf": token}


def sandbox_cookie(app, intent):
    """An anonymous session and CSRF token for posting the sandbox's card form, as the pop-up has."""
    client = app.test_client()
    path, query = intent
    page = client.get(f"{path}?{query}", headers={"User-Agent": USER_AGENT}).get_data(as_text=True)
    return {"cookie": f"session={client.get_cookie('session').value}", "csrf": _TOKEN.search(page).group(1)}


def sample_logo(width=40, height=40):
    """A PNG of noise (it does not compress): a stand-in for an ISP's logo of about 5 KB."""
    import os
    import struct
    import zlib

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    rows = b"".join(b"\x00" + os.urandom(width * 3) for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def branding(app, accent, logo):
    """Set (or, with None, clear) the ISP's accent colour and logo, as staff do on the Settings page."""
    from billing import settings
    from db.models import Isp

    with app.app_context():
        database.connect(reuse_if_open=True)
        isp = Isp.current()
        with write_tx():
            Isp.update(accent_color=accent or "").where(Isp.id == isp.id).execute()
        settings.save_logo(logo, actor="bench")


def _first_invoice_id(app, email):
    with app.app_context():
        database.connect(reuse_if_open=True)
        c = Customer.get(Customer.email == email)
        inv = accounts.invoice_page(c.id, 1, 1).rows[0]
        database.close()
        return inv.invoice.id
