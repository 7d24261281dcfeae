"""Moving from SQLite to PostgreSQL: `copy-to-postgres` copies everything, checks the copy, and is safe to retry."""
import psycopg2
import pytest

from app import create_app
from billing import accounts
from db import database
from db.models import Customer, Invoice
from tests.factories import TEST_CONFIG, make_customer, make_invoice
from tests.pg_support import fresh_database as _fresh_database

pytestmark = pytest.mark.postgres


def _pg_count(url, sql):
    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetchone()[0]
    finally:
        conn.close()


@pytest.fixture
def loaded(app, runner):
    """The demo's ISP, customers, invoices and payments, plus a customer with a few hundred invoices."""
    assert runner.invoke(args=["demo"]).exit_code == 0
    big = make_customer(name="Ana Reyes")
    for i in range(300):
        make_invoice(big, cents=1999 + i)
    return runner


def test_copy_to_postgres_copies_every_row_and_the_ledger_matches(loaded, pg_server, db_path):
    target = _fresh_database(pg_server)
    balances = {c.account_number: accounts.summary(c.id).balance_cents for c in Customer.select()}
    invoices = Invoice.select().count()
    result = loaded.invoke(args=["copy-to-postgres", target])
    assert result.exit_code == 0, result.output
    assert "row counts and ledger totals match" in result.output
    assert "MISMATCH" not in result.output
    assert _pg_count(target, "SELECT COUNT(*) FROM invoice") == invoices > 300
    assert _pg_count(target, "SELECT COUNT(*) FROM payment") > 0

    # Run again: the target already holds exactly this data, so nothing is written.
    again = loaded.invoke(args=["copy-to-postgres", target])
    assert again.exit_code == 0, again.output
    assert "nothing was written" in again.output

    # The portal itself runs on the copy: same balances, and new rows get new ids.
    database.close()
    pg_app = create_app({**TEST_CONFIG, "DATABASE_URL": target})
    with pg_app.app_context():
        for c in Customer.select():
            assert accounts.summary(c.id).balance_cents == balances[c.account_number]
        fresh = make_customer()
        assert fresh.id > max(c.id for c in Customer.select() if c.id != fresh.id)
    database.close()


def test_copy_refuses_a_database_with_other_data_unless_replace(loaded, pg_server):
    target = _fresh_database(pg_server)
    assert loaded.invoke(args=["copy-to-postgres", target]).exit_code == 0
    make_customer(name="Added after the first copy")
    refused = loaded.invoke(args=["copy-to-postgres", target])
    assert refused.exit_code != 0
    assert "already holds other portal data" in refused.output
    replaced = loaded.invoke(args=["copy-to-postgres", target, "--replace"])
    assert replaced.exit_code == 0, replaced.output
    assert _pg_count(target, "SELECT COUNT(*) FROM customer WHERE name = 'Added after the first copy'") == 1


def test_a_copy_that_fails_half_way_writes_nothing_and_can_be_run_again(loaded, pg_server):
    target = _fresh_database(pg_server)
    # Build the schema, then make one late table refuse its rows, so the copy fails after earlier tables.
    assert loaded.invoke(args=["copy-to-postgres", target]).exit_code == 0
    conn = psycopg2.connect(target)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("TRUNCATE customer, invoice, invoice_line, payment, isp CASCADE")
        cur.execute("ALTER TABLE invoice_line ADD CONSTRAINT no_big CHECK (amount_cents < 2100)")
    failed = loaded.invoke(args=["copy-to-postgres", target, "--replace"])
    assert failed.exit_code != 0
    assert _pg_count(target, "SELECT COUNT(*) FROM customer") == 0  # all or nothing
    with conn.cursor() as cur:
        cur.execute("ALTER TABLE invoice_line DROP CONSTRAINT no_big")
    conn.close()
    retried = loaded.invoke(args=["copy-to-postgres", target, "--replace"])
    assert retried.exit_code == 0, retried.output
    assert _pg_count(target, "SELECT COUNT(*) FROM invoice") == Invoice.select().count()


def test_copy_to_postgres_checks_its_arguments(app, runner):
    result = runner.invoke(args=["copy-to-postgres", "mysql://nope"])
    assert result.exit_code != 0
    assert "postgresql://" in result.output
