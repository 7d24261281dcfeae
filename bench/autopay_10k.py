"""Benchmark: one autopay run over 10,000 enrolled customers with the sandbox processor.

    .venv/bin/python bench/autopay_10k.py                 # 10,000 customers, one due invoice each
    .venv/bin/python bench/autopay_10k.py --customers 2000 --keep --dir instance

It builds a fresh SQLite database in a temporary folder (same pragmas as the portal: WAL,
synchronous=FULL), enrols every customer with a saved sandbox card (1% decline for insufficient funds,
0.5% ask for authentication), gives each an invoice due today, then times:

1. ``autopay --dry-run`` (planning only),
2. the real run (every charge: UNIQUE attempt row, payment, processor intent, charge, allocation, email),
3. a second run the same day, which must charge nothing.

Data set-up is not timed. It prints the timings and checks the books: one payment per charged invoice.
"""
import argparse
import datetime as dt
import pathlib
import secrets
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

from billing import autopay, payments  # noqa: E402
from billing.processors.sandbox import SandboxProcessor  # noqa: E402
from db import database, migrate, open_database  # noqa: E402
from db.models import (  # noqa: E402
    AutopayCharge,
    AutopayEnrolment,
    Customer,
    Invoice,
    Isp,
    Outbox,
    Payment,
    PaymentMethod,
    SandboxMethod,
    utcnow,
)


def build(n, today):
    """n customers, each enrolled with a saved card and owing one invoice due today."""
    now = utcnow()
    with database.atomic():
        Isp.create(name="Bench Wireless", max_prepay_cents=0)
        Customer.insert_many([dict(account_number=f"B-{i:06d}", name=f"Customer {i}", email=f"c{i}@example.test",
                                   street=f"{i} Main St", city="Austin", state="TX", zip="78701", created_at=now)
                              for i in range(n)]).execute()
        ids = [c.id for c in Customer.select(Customer.id).order_by(Customer.id)]
        behaviours = ["insufficient_funds" if i % 100 == 7 else "authenticate" if i % 200 == 11 else "ok"
                      for i in range(n)]
        tokens = [f"pm_sbx_{secrets.token_hex(12)}" for _ in ids]
        for chunk in range(0, n, 2000):
            part = range(chunk, min(chunk + 2000, n))
            SandboxMethod.insert_many([dict(id=tokens[i], method_type="card", brand="Visa", last4="4242",
                                            exp_month=12, exp_year=today.year + 3, behaviour=behaviours[i],
                                            created_at=now) for i in part]).execute()
            PaymentMethod.insert_many([dict(customer=ids[i], processor="sandbox", processor_ref=tokens[i],
                                            method_type="card", brand="Visa", last4="4242", exp_month=12,
                                            exp_year=today.year + 3, created_at=now) for i in part]).execute()
        method_of = {m.customer_id: m.id for m in PaymentMethod.select(PaymentMethod.id, PaymentMethod.customer)}
        for chunk in range(0, n, 2000):
            part = ids[chunk:chunk + 2000]
            AutopayEnrolment.insert_many([dict(customer=cid, payment_method=method_of[cid], enabled=True,
                                               enrolled_at=now, updated_at=now) for cid in part]).execute()
            Invoice.insert_many([dict(customer=cid, number=f"INV-B{cid:07d}", issue_date=today - dt.timedelta(days=20),
                                      due_date=today, total_cents=5999, currency="USD", created_at=now)
                                 for cid in part]).execute()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--keep", action="store_true", help="keep the database file and print its path")
    parser.add_argument("--dir", default=None, help="folder for the throw-away database (default: the system's "
                        "temporary folder); use one on the disk the portal's database lives on")
    args = parser.parse_args()

    folder = tempfile.mkdtemp(prefix="autopay-bench-", dir=args.dir)
    path = pathlib.Path(folder) / "bench.sqlite3"
    open_database(f"sqlite:///{path}")
    migrate.upgrade()
    today = dt.date.today()
    t = time.perf_counter()
    build(args.customers, today)
    print(f"set-up: {args.customers:,} enrolled customers, one invoice each, in {time.perf_counter() - t:.1f}s")

    processor = SandboxProcessor(webhook_secret="bench")
    quiet = lambda line: None  # noqa: E731

    dry = autopay.run(processor, on=today, dry_run=True, echo=quiet)
    print(f"dry run:    {dry.seconds:6.1f}s  {dry.line()}")

    def progress(line):
        if "…" in line:
            print("           ", line.strip(), flush=True)

    real = autopay.run(processor, on=today, echo=progress, progress_every=2500)
    rate = (real.charged + real.failed) / real.seconds if real.seconds else 0
    print(f"real run:   {real.seconds:6.1f}s  {real.line()}  ({rate:,.0f} attempts/s; each charge is five "
          f"durable commits: attempt+payment, intent, its reference, the charge, the outcome+allocation+email)")
    again = autopay.run(processor, on=today, echo=quiet)
    print(f"second run: {again.seconds:6.1f}s  {again.line()}")

    succeeded = Payment.select().where(Payment.status == payments.SUCCEEDED).count()
    assert real.charged == succeeded == AutopayCharge.select().where(AutopayCharge.status == "charged").count()
    assert real.charged + real.failed == args.customers and again.charged == 0
    print(f"checked: {succeeded:,} payments succeeded, one per charged invoice; "
          f"{Outbox.select().count():,} emails queued")
    database.close()
    if args.keep:
        print(f"database kept at {path}")
    else:
        for p in pathlib.Path(folder).iterdir():
            p.unlink()
        pathlib.Path(folder).rmdir()


if __name__ == "__main__":
    main()
