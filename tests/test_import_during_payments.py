"""A 100,000-row staff import while customers pay: every payment step answers without a 5xx, and the
import stays all-or-nothing. Against gunicorn with 4 workers, on SQLite and on PostgreSQL."""
import datetime as dt
import os
import subprocess
import sys
import threading
import time

from billing import accounts
from db.models import Customer, Invoice
from tests.factories import TEST_CONFIG
from tests.live_support import BILLING, ROOT, Session, ledger_holds, live, live_db, pay_in_window, start  # noqa: F401

CUSTOMERS = 10_000
INVOICES_EACH = 9  # 10,000 customer rows + 90,000 invoice rows = 100,000 rows


def _files(folder):
    cpath, ipath = folder / "customers.csv", folder / "invoices.csv"
    with cpath.open("w") as f:
        f.write("account_number,name,email,zip\n")
        for n in range(CUSTOMERS):
            f.write(f"B{n:06d},Bulk Customer {n},b{n}@example.com,78701\n")
    with ipath.open("w") as f:
        f.write("invoice_number,account_number,issue_date,due_date,description,amount\n")
        for month in range(INVOICES_EACH):
            issue = dt.date(2025, month + 1, 1)
            for n in range(CUSTOMERS):
                f.write(f"B{month:02d}-{n:06d},B{n:06d},{issue},{issue + dt.timedelta(days=20)},Internet,{50 + n % 50}.99\n")
    return cpath, ipath


def _import(database_url, *args):
    env = {**os.environ, "DATABASE_URL": database_url, "SECRET_KEY": TEST_CONFIG["SECRET_KEY"],
           "SANDBOX_WEBHOOK_SECRET": TEST_CONFIG["SANDBOX_WEBHOOK_SECRET"], "SANDBOX_WORKER": "false"}
    flask = os.path.join(os.path.dirname(sys.executable), "flask")
    return subprocess.run([flask, "--app", "app", "import", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)


def test_payment_steps_during_a_100k_row_import_never_answer_5xx(live, tmp_path):
    customers_csv, invoices_csv = _files(tmp_path)
    demo = Customer.get(Customer.account_number == "100-2001")
    session = Session(live.url).login()
    statuses, slowest, stop = [], [0.0], threading.Event()

    def pay_dollars():
        while not stop.is_set():
            t = time.monotonic()
            cont, csrf = start(session, 100)
            steps = [cont]
            if cont.status == 303:
                make = session.post(cont.location + "/billing", BILLING, csrf)
                steps.append(make)
                if make.status == 303 and "/sandbox/pay/" in make.location:
                    steps.append(pay_in_window(session, make.location))
                    steps.append(session.get(cont.location))
            statuses.extend(a.status for a in steps)
            slowest[0] = max(slowest[0], (time.monotonic() - t) / len(steps))

    tabs = [threading.Thread(target=pay_dollars) for _ in range(4)]
    for t in tabs:
        t.start()
    time.sleep(1)
    started = time.monotonic()
    first = _import(live.database_url, "customers", str(customers_csv))
    second = _import(live.database_url, "invoices", str(invoices_csv))
    took = time.monotonic() - started
    time.sleep(0.5)
    stop.set()
    for t in tabs:
        t.join(120)
    errors = [s for s in statuses if s >= 500]
    print(f"\nimport of {CUSTOMERS + CUSTOMERS * INVOICES_EACH} rows: {took:.1f} s; {len(statuses)} payment steps "
          f"meanwhile, {len(errors)} 5xx, slowest step {slowest[0]:.2f} s")
    assert first.returncode == 0 and second.returncode == 0, (first.stderr[-2000:], second.stderr[-2000:])
    assert Invoice.select().where(Invoice.number.startswith("B")).count() == CUSTOMERS * INVOICES_EACH
    assert len(statuses) > 20 and not errors, sorted(set(statuses))
    ledger_holds(demo.id)
    assert accounts.summary(demo.id).balance_cents >= 0


def test_an_import_with_one_bad_row_imports_nothing_while_payments_go_on(live, tmp_path):
    customers_csv, invoices_csv = _files(tmp_path)
    with invoices_csv.open("a") as f:
        f.write("B99-999999,NO-SUCH-ACCOUNT,2025-01-01,2025-01-21,Internet,10.00\n")
    assert _import(live.database_url, "customers", str(customers_csv)).returncode == 0
    before = Invoice.select().count()
    failed = _import(live.database_url, "invoices", str(invoices_csv))
    assert failed.returncode == 1 and "nothing was imported" in failed.stderr
    assert Invoice.select().count() == before
