"""Page-weight budgets (issue 7): bytes on the wire, compressed, cold cache, the portal's own bytes.

Bytes are deterministic, so these are tests, not benchmarks; timings live in ``make bench``.
A kilobyte here is 1,000 bytes, and a response counts its status line and headers as well as its body.
"""
import datetime as dt
import gzip

import brotli
import pytest

from bench import flow
from db import write_tx
from db.models import Payment
from tests.factories import PASSWORD, make_customer, make_invoice
from views import assets

LOGIN_PAGE_BYTES = 14_000  # what fits in TCP's first round trip (10 segments)
HTMX_STEP_BYTES = 2_000
FLOW_BYTES = 45_000
FLOW_REQUESTS = 10
HTMX_STEPS = ("Payments tab (htmx)", "Continue (htmx)", "Make Payment (htmx)", "Result (htmx poll)")


def _customer_with_bills():
    """A customer like the demo's: paid, partly paid, overdue and open invoices."""
    c = make_customer()
    today = dt.date.today()
    for months, cents in ((3, 6500), (2, 6500), (1, 7999), (0, 7999)):
        make_invoice(c, cents=cents, due=today - dt.timedelta(days=30 * months - 10))
    return c


@pytest.fixture
def walk(app):
    c = _customer_with_bills()
    return flow.pay_by_card(app.test_client(), c.email, PASSWORD)


def test_login_page_fits_in_the_first_round_trip(app):
    walk = flow.login_page(app.test_client())
    assert walk.bytes <= LOGIN_PAGE_BYTES, [(h.url, h.bytes) for h in walk.hits]
    assert walk.requests == 1, "the login page needs nothing but itself to render"


def test_login_page_has_no_script(client):
    html = flow._decoded(client.get("/login", headers={"Accept-Encoding": flow.ACCEPT_ENCODING}))
    assert "<script" not in html


@pytest.mark.parametrize("step", HTMX_STEPS)
def test_each_htmx_step_of_the_pay_flow_is_one_small_request(walk, step):
    hits = walk.step(step)
    assert len(hits) == 1, [h.url for h in hits]
    assert hits[0].bytes <= HTMX_STEP_BYTES, (hits[0].url, hits[0].bytes)


def test_whole_card_payment_from_the_login_page_fits_the_budget(walk):
    assert walk.requests <= FLOW_REQUESTS, [h.url for h in walk.hits]
    assert walk.bytes <= FLOW_BYTES, [(h.url, h.bytes) for h in walk.hits]
    assert all(h.encoding in ("br", "gzip") for h in walk.hits if h.body_bytes >= 500), \
        [(h.url, h.encoding) for h in walk.hits]


def test_payments_tab_with_a_full_page_of_history_stays_within_a_step_budget(app, logged_in, customer):
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    with write_tx():
        for i in range(20):
            Payment.create(ref=f"PAY-HIST{i:04d}", customer=customer.id, idempotency_key=f"hist-{i}",
                           amount_cents=7999, method_type="card", status="succeeded", processor="sandbox",
                           method_brand="Visa", method_last4="4242", created_at=now - dt.timedelta(days=30 * i),
                           settled_at=now - dt.timedelta(days=30 * i))
    r = logged_in.get("/payments", htmx=True, headers={"Accept-Encoding": flow.ACCEPT_ENCODING})
    assert r.status_code == 200
    assert len(r.get_data()) + flow._header_bytes(r) <= HTMX_STEP_BYTES


def test_static_files_have_content_hashed_names_cached_for_a_year(app, client):
    with app.test_request_context():
        url = assets.static_url("app.js")
    assert url.startswith("/assets/app.") and url.endswith(".js")
    r = client.get(url, headers={"Accept-Encoding": "br"})
    assert r.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert r.headers["Content-Encoding"] == "br"
    bundle = brotli.decompress(r.get_data())
    assert b"htmx" in bundle and b"portal-payment" in bundle
    gz = client.get(url, headers={"Accept-Encoding": "gzip"})
    assert gzip.decompress(gz.get_data()) == bundle
    assert client.get(url).get_data() == bundle  # no compression asked for, none given
    assert client.get("/assets/app.000000000000.js").status_code == 404


def test_a_changed_file_gets_a_new_name():
    assert assets._hashed_name("app.css", b"a{}") != assets._hashed_name("app.css", b"b{}")


def test_assets_are_compressed_once_per_process_and_again_when_a_file_changes(tmp_path):
    for name in assets.BUNDLES["app.js"]:
        (tmp_path / name).write_text(f"// {name}\n")
    (tmp_path / "app.css").write_text("a{color:red}")
    first = assets.load(tmp_path)
    assert assets.load(tmp_path) is first  # a second app in the same process reuses the build
    (tmp_path / "app.css").write_text("a{color:blue}")
    changed = assets.load(tmp_path)
    assert changed is not first
    assert changed["app.css"].raw == b"a{color:blue}"
    assert changed["app.css"].name != first["app.css"].name
    assert brotli.decompress(changed["app.css"].br) == b"a{color:blue}"


@pytest.mark.parametrize("accept, encoding", [
    ("gzip, deflate, br", "br"), ("gzip", "gzip"), ("br;q=0, gzip", "gzip"), ("br;q=0.5, gzip", "gzip"),
    ("identity", None), ("", None),
])
def test_static_files_follow_the_accept_encoding_weights(app, client, accept, encoding):
    with app.test_request_context():
        url = assets.static_url("app.js")
    r = client.get(url, headers={"Accept-Encoding": accept})
    assert r.headers.get("Content-Encoding") == encoding


def test_inline_stylesheet_is_allowed_by_its_hash_in_the_csp(app, client):
    r = client.get("/login")
    css = app.extensions["assets"]["css_text"]
    assert f"<style>{css}</style>" in r.get_data(as_text=True)
    assert assets.style_hash(css) in r.headers["Content-Security-Policy"]
    assert "unsafe-inline" not in r.headers["Content-Security-Policy"]


def test_pages_and_fragments_are_compressed_with_brotli_or_gzip(logged_in):
    assert logged_in.get("/", headers={"Accept-Encoding": "gzip, deflate, br"}).headers["Content-Encoding"] == "br"
    assert logged_in.get("/", headers={"Accept-Encoding": "gzip"}).headers["Content-Encoding"] == "gzip"
    assert "Accept-Encoding" in logged_in.get("/", headers={"Accept-Encoding": "gzip"}).headers["Vary"]
