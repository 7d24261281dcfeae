"""Does a page stay as fast when a customer has a long history? Timed in process, median of N."""
import datetime as dt
import statistics
import time

from bench.data import PASSWORD, USER_AGENT, login_cookie
from db import database
from db.models import Customer

RUNS = 30
MAX_SECONDS = 10  # per page: stop early on a slow machine rather than run for ever


def _client(app, customer_id):
    """A test client logged in as the customer."""

    with app.app_context():
        database.connect(reuse_if_open=True)
        email = Customer.get_by_id(customer_id).email
    cookie = login_cookie(app, email, PASSWORD)["cookie"].split("=", 1)[1]
    client = app.test_client()
    client.set_cookie("session", cookie)
    return client


def median_ms(client, url, htmx=False):
    """Median wall time of GET url over RUNS requests (bounded by MAX_SECONDS)."""
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "gzip, deflate, br"}
    if htmx:
        headers["HX-Request"] = "true"
    r = client.get(url, headers=headers)
    assert r.status_code == 200, (url, r.status_code)
    times, deadline = [], time.monotonic() + MAX_SECONDS
    for _ in range(RUNS):
        t = time.perf_counter()
        client.get(url, headers=headers)
        times.append((time.perf_counter() - t) * 1000)
        if time.monotonic() > deadline:
            break
    return statistics.median(times)


def run(app, customers):
    """{page: {customer label: ms}} for Home, Invoices and the statement over one and ten years."""
    today = dt.date.today()
    pages = {
        "Home (full page)": ("/", False),
        "Invoices tab (htmx, page 1)": ("/invoices", True),
        "Invoices, last page (htmx)": (None, True),
        "Statement, 1 year (htmx)": (f"/statement?start={today - dt.timedelta(days=365)}&end={today}", True),
        "Statement, 10 years (htmx)": (f"/statement?start={today - dt.timedelta(days=3650)}&end={today}", True),
    }
    out = {page: {} for page in pages}
    for label, cid in customers.items():
        client = _client(app, cid)
        with app.app_context():
            n = Customer.get_by_id(cid).invoices.count()
        last = max((n + app.config["PER_PAGE"] - 1) // app.config["PER_PAGE"], 1)
        for page, (url, htmx) in pages.items():
            out[page][label] = median_ms(client, url or f"/invoices?page={last}", htmx)
    return out
