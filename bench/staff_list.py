"""The staff payments list and CSV export over many payments: page 1, a deep page, a filtered page, the export.

    .venv/bin/python -m bench.staff_list [--payments 1000000]

Builds a throw-away SQLite database with one ISP, 1,000 customers and N succeeded payments (inserted in bulk with
INSERT ... SELECT, each with one allocation), then times, in process with a staff login, the list's first page,
page 5,000, a status-and-date filtered page, and the whole CSV export streamed to nowhere, with the process's peak
memory before and after the export.
"""
import argparse
import re
import resource
import secrets
import tempfile
import time

from app import create_app
from billing import identity
from db import database, migrate, write_tx
from db.models import Customer, Invoice, Isp

PASSWORD = "bench-staff-2026"


def build(url, n):
    app = create_app({"DATABASE_URL": url, "SECRET_KEY": secrets.token_hex(16), "SANDBOX_WEBHOOK_SECRET": "w",
                      "SANDBOX_WORKER": False})
    migrate.upgrade()
    database.execute_sql("PRAGMA synchronous=OFF")
    with write_tx():
        Isp.create(name="Bench ISP")
        for i in range(1000):
            c = Customer.create(account_number=f"S-{i:05d}", name=f"Customer {i}")
            Invoice.insert(customer=c.id, number=f"SINV-{i:05d}", issue_date="2026-01-01", due_date="2026-01-21",
                           total_cents=10**9).execute()
    identity.create_user("staff@bench.test", PASSWORD, role="staff")
    with write_tx():
        database.execute_sql(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?) "
            "INSERT INTO payment (ref, customer_id, idempotency_key, amount_cents, currency, method_type, status, "
            "processor, created_at, updated_at, settled_at) "
            "SELECT printf('PAY-B%08d', i), 1 + i % 1000, printf('bench-%d', i), 1000 + i % 5000, 'USD', "
            "CASE WHEN i % 3 THEN 'card' ELSE 'ach' END, CASE WHEN i % 17 THEN 'succeeded' ELSE 'failed' END, "
            "'sandbox', datetime('2025-01-01', printf('+%d seconds', i * 30)), "
            "datetime('2025-01-01', printf('+%d seconds', i * 30)), datetime('2025-01-01', printf('+%d seconds', i * 30)) "
            "FROM n", (n,))
        database.execute_sql(
            "INSERT INTO allocation (payment_id, invoice_id, amount_cents, created_at) "
            "SELECT p.id, i.id, p.amount_cents, p.created_at FROM payment p JOIN invoice i ON i.customer_id = p.customer_id "
            "WHERE p.status = 'succeeded'")
    database.execute_sql("ANALYZE")
    return app


def timed(fn, repeat=3):
    best = None
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best or 1e9, time.perf_counter() - t)
    return best


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.staff_list")
    parser.add_argument("--payments", type=int, default=1_000_000)
    args = parser.parse_args(argv)
    tmp = tempfile.mkdtemp(prefix="portal-bench-")
    t0 = time.perf_counter()
    app = build(f"sqlite:///{tmp}/staff.sqlite3", args.payments)
    print(f"built {args.payments:,} payments in {time.perf_counter() - t0:.0f} s")
    client = app.test_client()
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").get_data(as_text=True)).group(1)
    assert client.post("/login", data={"csrf_token": token, "email": "staff@bench.test",
                                       "password": PASSWORD}).status_code == 302

    def get(url):
        def go():
            r = client.get(url)
            assert r.status_code == 200, (url, r.status_code)
        return go

    print(f"list, page 1:        {timed(get('/staff/payments')) * 1000:,.1f} ms")
    print(f"list, page 5,000:    {timed(get('/staff/payments?page=5000'), 1) * 1000:,.1f} ms")
    print(f"list, filtered:      "
          f"{timed(get('/staff/payments?status=failed&method=ach&start=2025-03-01&end=2025-03-31')) * 1000:,.1f} ms")
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t = time.perf_counter()
    size = 0
    with client.get("/staff/payments.csv", buffered=False) as r:
        for chunk in r.response:
            size += len(chunk)
    took = time.perf_counter() - t
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"export, all:         {took:,.1f} s, {size / 1e6:,.1f} MB of CSV; peak memory {rss_before / 1024:,.0f} MB "
          f"before, {rss_after / 1024:,.0f} MB after")


if __name__ == "__main__":
    main()
