"""Benchmark: import 10,000 customers and 100,000 invoices from CSV into a fresh SQLite database.

    .venv/bin/python bench/import_100k.py [--customers 10000] [--invoices-each 10]

Standalone: it builds its own temporary database and CSV files, times the
customer import, the invoice import, and a re-import of both (which must change
nothing), and prints the timings. Nothing outside the temporary folder is touched.
"""
import argparse
import datetime as dt
import pathlib
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

from billing import identity, imports  # noqa: E402
from db import database, migrate, open_database  # noqa: E402
from db.models import Invoice, Isp  # noqa: E402


def make_files(folder, customers, each):
    """Write customers.csv and invoices.csv; return their paths."""
    cpath, ipath = folder / "customers.csv", folder / "invoices.csv"
    with cpath.open("w") as f:
        f.write("account_number,name,email,phone,street,city,state,zip\n")
        for n in range(customers):
            f.write(f"A{n:06d},Customer {n},c{n}@example.com,512-555-{n % 10000:04d},{n} Main St,Austin,TX,78701\n")
    start = dt.date(2025, 1, 1)
    with ipath.open("w") as f:
        f.write("invoice_number,account_number,issue_date,due_date,period_start,period_end,description,amount\n")
        for month in range(each):
            issue = dt.date(start.year + (start.month + month - 1) // 12, (start.month + month - 1) % 12 + 1, 1)
            due = issue + dt.timedelta(days=20)
            for n in range(customers):
                f.write(f"I{month:02d}-{n:06d},A{n:06d},{issue},{due},,,Internet service,{50 + n % 50}.99\n")
    return cpath, ipath


def timed(label, fn, *args, **kwargs):
    t = time.perf_counter()
    result = fn(*args, **kwargs)
    took = time.perf_counter() - t
    print(f"{label:<28} {took:7.2f} s   {result.message()}")
    return took


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--invoices-each", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = pathlib.Path(tmp)
        identity.configure(1, 1024)
        open_database(f"sqlite:///{folder / 'bench.sqlite3'}")
        migrate.upgrade()
        Isp.create(name="Bench ISP")
        t = time.perf_counter()
        cpath, ipath = make_files(folder, args.customers, args.invoices_each)
        print(f"{'writing the CSV files':<28} {time.perf_counter() - t:7.2f} s")
        total = timed(f"import {args.customers} customers", imports.import_customers, cpath.read_bytes())
        total += timed(f"import {args.customers * args.invoices_each} invoices", imports.import_invoices,
                       ipath.read_bytes())
        print(f"{'first import, total':<28} {total:7.2f} s")
        timed("re-import customers", imports.import_customers, cpath.read_bytes())
        timed("re-import invoices", imports.import_invoices, ipath.read_bytes())
        timed("dry run of invoices", imports.import_invoices, ipath.read_bytes(), dry_run=True)
        assert Invoice.select().count() == args.customers * args.invoices_each
        database.close()


if __name__ == "__main__":
    main()
