"""Backups taken while payments are being written restore to a consistent ledger (a restore drill)."""
import shutil
import sqlite3
import threading
import time

import pytest

from app import create_app
from billing import accounts, demo
from db import database
from tests.factories import TEST_CONFIG, make_customer, make_invoice

LEDGER = {
    "payments received": "SELECT COALESCE(SUM(amount_cents), 0) FROM payment WHERE status = 'succeeded'",
    "allocations": "SELECT COALESCE(SUM(amount_cents), 0) FROM allocation",
    "credit": "SELECT COALESCE(SUM(amount_cents), 0) FROM credit_entry",
    "payments": "SELECT COUNT(*) FROM payment",
}


def _figures(path):
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        return {k: conn.execute(sql).fetchone()[0] for k, sql in LEDGER.items()}
    finally:
        conn.close()


@pytest.mark.sqlite_only(reason="`flask backup` copies the SQLite file; on PostgreSQL backups are pg_dump's job")
def test_a_backup_under_payment_traffic_restores_to_a_consistent_ledger(app, runner, db_path, tmp_path):
    processor = app.extensions["processor"]
    customer = make_customer()
    for _ in range(40):
        make_invoice(customer, cents=1000)
    stop = threading.Event()
    paid, failed = [], []
    today = accounts.today()

    def traffic():
        try:
            while not stop.is_set() and len(paid) < 60:
                paid.append(demo._pay(customer.id, None, 700, processor, today).ref)  # the real flow, sandbox card
        except Exception as e:  # reported by the main thread, which must not wait for payments forever
            failed.append(e)
        finally:
            database.close()

    worker = threading.Thread(target=traffic)
    worker.start()
    try:
        deadline = time.monotonic() + 60
        while len(paid) < 5:
            assert not failed, failed
            assert worker.is_alive() and time.monotonic() < deadline, "the payment traffic stopped"
            time.sleep(0.05)
        during = tmp_path / "during.sqlite3"
        result = runner.invoke(args=["backup", str(during)])
        assert result.exit_code == 0, result.output
        assert "integrity check ok" in result.output
    finally:
        stop.set()
        worker.join(60)
    assert not failed, failed
    snap = _figures(during)
    # Taken mid-traffic, yet whole: every payment received is allocated or credit, none half-recorded.
    assert snap["payments received"] == snap["allocations"] + snap["credit"]
    assert 0 < snap["payments"]
    # Once the traffic has stopped, a second backup equals the live ledger exactly.
    after = tmp_path / "after.sqlite3"
    assert runner.invoke(args=["backup", str(after)]).exit_code == 0
    assert _figures(after) == _figures(db_path)
    # The refusal to overwrite keeps an existing backup.
    again = runner.invoke(args=["backup", str(after)])
    assert again.exit_code != 0 and "already exists" in again.output
    # Restore: the portal runs on the copy and sees the same balance.
    database.close()
    restored = tmp_path / "restored.sqlite3"
    shutil.copy(after, restored)
    live_balance = None
    create_app({**TEST_CONFIG, "DATABASE_URL": f"sqlite:///{db_path}"})
    live_balance = accounts.summary(customer.id).balance_cents
    database.close()
    create_app({**TEST_CONFIG, "DATABASE_URL": f"sqlite:///{restored}"})
    assert accounts.summary(customer.id).balance_cents == live_balance
    database.close()


def test_backup_on_postgresql_says_what_to_run(tmp_path):
    from db import open_database

    from views.cli import register_cli  # noqa: F401 (the command's module loads)

    open_database("postgresql://portal@db.internal:5432/portal")
    from db.backup import pg_dump_command

    cmd = pg_dump_command(tmp_path / "x.dump")
    assert cmd.startswith("pg_dump --format=custom --file=") and "--host=db.internal" in cmd and cmd.endswith("portal")
