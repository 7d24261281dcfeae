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


SIZES = {"10 invoices": 10, "1,000 invoices": 1000, "10,000 invoices": 10000}


def add_customers(sizes=SIZES):
    """One growth customer per size, each paid but its two newest invoices: {label: customer id}.

    Inside an app context with the database migrated; `make bench` (bench.data.build) and `python -m
    bench.growth` both build them here, so their figures are for the same customers.
    """
    from bench import data

    # a payment for every 10 invoices, or every 100 for the largest, to keep the set-up to minutes
    return {label: data.customer(f"g{n}@bench.test", n, paid=n - 2, per_payment=10 if n <= 1000 else 100).id
            for label, n in sizes.items()}


def build(url, sizes=SIZES):
    """A throw-away portal with one growth customer per size (each paid but its two newest invoices)."""
    import secrets

    from bench import data
    from billing import demo
    from db import migrate

    app = data.make_app(url, secrets.token_hex(16), "w")
    data._app = app
    with app.app_context():
        database.connect(reuse_if_open=True)
        database.execute_sql("PRAGMA synchronous=OFF")  # this set-up connection only: speed over durability
        migrate.upgrade()
        demo.load(app.extensions["processor"])  # the ISP and its settings, as the main bench builds them
        out = add_customers(sizes)
        database.execute_sql("ANALYZE")
        database.close()
    return app, out


def explain(app, customer_id):
    """SQLite's plan for Home's summary statement, one line per step."""
    from billing import accounts

    with app.app_context():
        database.connect(reuse_if_open=True)
        sql, params = accounts.summary_sql(customer_id, dt.date.today())
        return [row[-1] for row in database.execute_sql("EXPLAIN QUERY PLAN " + sql, params).fetchall()]


def main(argv=None):
    """`python -m bench.growth`: Home, Invoices and statements for customers with 10, 1,000 and 10,000 invoices."""
    import argparse
    import pathlib
    import shutil
    import tempfile

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--explain", action="store_true", help="also print the summary statement's query plan")
    args = parser.parse_args(argv)
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="portal-growth-"))
    try:
        t = time.perf_counter()
        app, customers = build(f"sqlite:///{tmp / 'growth.db'}")
        print(f"built in {time.perf_counter() - t:.0f} s")
        results = run(app, customers)
        labels = list(customers)
        print("| page | " + " | ".join(labels) + " | largest ÷ smallest |")
        print("|---|" + "---|" * len(labels) + "---|")
        for page, by in results.items():
            cells = [f"{by[label][0]:.1f} ms ({by[label][1]:.1f}k steps)" for label in labels]
            print(f"| {page} | " + " | ".join(cells) + f" | ×{by[labels[-1]][0] / by[labels[0]][0]:.2f} |")
        if args.explain:
            print("\nHome's summary, SQLite's plan for the customer with the most invoices:")
            for line in explain(app, customers[labels[-1]]):
                print("  " + line)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
