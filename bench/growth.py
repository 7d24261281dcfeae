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


def _headers(htmx):
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "gzip, deflate, br"}
    if htmx:
        headers["HX-Request"] = "true"
    return headers


def sqlite_steps(client, url, htmx=False):
    """Thousands of SQLite virtual-machine steps one request takes: the database's work, free of timing noise."""
    steps = [0]

    def tick():
        steps[0] += 1
        return 0

    client.get(url, headers=_headers(htmx))  # the connection is open (and kept) from here on
    conn = database.connection()
    conn.set_progress_handler(tick, 100)
    try:
        client.get(url, headers=_headers(htmx))
    finally:
        conn.set_progress_handler(None, 0)
    return steps[0] / 10


def medians_ms(clients, url_for, htmx=False):
    """Median wall time of one GET per client, interleaved so that both see the same machine noise."""
    times = {label: [] for label in clients}
    for label, client in clients.items():
        r = client.get(url_for(label), headers=_headers(htmx))
        assert r.status_code == 200, (url_for(label), r.status_code)
    deadline = time.monotonic() + MAX_SECONDS
    for _ in range(RUNS):
        for label, client in clients.items():
            t = time.perf_counter()
            client.get(url_for(label), headers=_headers(htmx))
            times[label].append((time.perf_counter() - t) * 1000)
        if time.monotonic() > deadline:
            break
    return {label: statistics.median(t) for label, t in times.items()}


def run(app, customers):
    """{page: {customer label: (median ms, SQLite kilo-steps)}} for Home, Invoices and statements."""
    today = dt.date.today()
    pages = {
        "Home (full page)": ("/", False),
        "Invoices tab (htmx, page 1)": ("/invoices", True),
        "Invoices, last page (htmx)": (None, True),
        "Statement, 1 year (htmx)": (f"/statement?start={today - dt.timedelta(days=365)}&end={today}", True),
        "Statement, 10 years (htmx)": (f"/statement?start={today - dt.timedelta(days=3650)}&end={today}", True),
    }
    clients, last = {}, {}
    for label, cid in customers.items():
        clients[label] = _client(app, cid)
        with app.app_context():
            n = Customer.get_by_id(cid).invoices.count()
        last[label] = max((n + app.config["PER_PAGE"] - 1) // app.config["PER_PAGE"], 1)
    out = {}
    for page, (url, htmx) in pages.items():
        def url_for(label, url=url):
            return url or f"/invoices?page={last[label]}"
        ms = medians_ms(clients, url_for, htmx)
        out[page] = {label: (ms[label], sqlite_steps(clients[label], url_for(label), htmx)) for label in clients}
    return out
