"""Migrations: numbered, applied once, upgrade keeps rows, and the models match the schema."""
import datetime as dt

import pytest
from peewee import SqliteDatabase

from app import create_app
from db import database, migrate, open_database
from db.models import BaseModel, Customer, Invoice
from tests.factories import TEST_CONFIG


def all_models():
    seen, todo = [], list(BaseModel.__subclasses__())
    while todo:
        m = todo.pop()
        seen.append(m)
        todo.extend(m.__subclasses__())
    return seen


def test_every_model_column_exists_in_the_migrated_schema(ledger_db):
    for model in all_models():
        columns = {c.name for c in database.get_columns(model._meta.table_name)}
        assert columns, f"no table {model._meta.table_name}"
        for field in model._meta.sorted_fields:
            assert field.column_name in columns, f"{model.__name__}.{field.name} is not in a migration"


def test_migrations_are_recorded_and_applied_once(ledger_db):
    versions = [v for v, _ in migrate.available()]
    assert versions == sorted(versions) and len(set(versions)) == len(versions)
    assert migrate.applied() == set(versions)
    assert migrate.upgrade() == []


def test_db_upgrade_keeps_rows_of_a_database_built_by_an_older_migration(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.sqlite3'}"
    open_database(url)
    assert migrate.upgrade(target=1) == [1]
    database.execute_sql("INSERT INTO customer (account_number, name, created_at) VALUES ('A-1', 'Old Row', '2025-01-01')")
    database.execute_sql(
        "INSERT INTO invoice (customer_id, number, issue_date, due_date, total_cents, created_at) "
        "VALUES (1, 'OLD-1', '2025-01-01', '2025-01-15', 4200, '2025-01-01')")
    database.close()

    app = create_app({**TEST_CONFIG, "DATABASE_URL": url})
    result = app.test_cli_runner().invoke(args=["db-upgrade"])
    assert result.exit_code == 0, result.output
    assert "applied 0002_payments.sql" in result.output
    assert Customer.get(Customer.account_number == "A-1").name == "Old Row"
    assert Invoice.get(Invoice.number == "OLD-1").total_cents == 4200
    assert migrate.applied() == {v for v, _ in migrate.available()}
    again = app.test_cli_runner().invoke(args=["db-upgrade"])
    assert "0 migration(s) applied" in again.output


@pytest.mark.sqlite_only(reason="checks SQLite's own pragmas")
def test_sqlite_runs_with_wal_foreign_keys_and_full_sync(ledger_db):
    assert isinstance(database.obj, SqliteDatabase)
    assert database.execute_sql("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert database.execute_sql("PRAGMA foreign_keys").fetchone()[0] == 1
    assert database.execute_sql("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert database.execute_sql("PRAGMA busy_timeout").fetchone()[0] >= 1000


def test_money_columns_reject_negative_invoice_totals(ledger_db):
    import pytest
    from peewee import IntegrityError

    c = Customer.create(account_number="X", name="X")
    with pytest.raises(IntegrityError):
        Invoice.create(customer=c, number="NEG", issue_date=dt.date.today(), due_date=dt.date.today(),
                       total_cents=-1)


def test_upgrade_to_payment_origin_marks_pay_link_payments_from_the_audit_log(tmp_path):
    url = f"sqlite:///{tmp_path / 'v6.sqlite3'}"
    open_database(url)
    migrate.upgrade(target=6)
    database.execute_sql("INSERT INTO customer (account_number, name, created_at) VALUES ('A-1', 'C', '2026-01-01')")
    database.execute_sql(
        "INSERT INTO invoice (customer_id, number, issue_date, due_date, total_cents, created_at) "
        "VALUES (1, 'I-1', '2026-01-01', '2026-01-15', 4200, '2026-01-01')")
    for ref, key in (("PAY-LINK", "k1" * 10), ("PAY-PORTAL", "k2" * 10)):
        database.execute_sql(
            "INSERT INTO payment (ref, customer_id, idempotency_key, amount_cents, method_type, status, "
            "processor, target_invoice_id, created_at, updated_at) "
            f"VALUES ('{ref}', 1, '{key}', 4200, 'card', 'created', 'sandbox', 1, '2026-01-02', '2026-01-02')")
    database.execute_sql("INSERT INTO audit_log (at, actor, action, entity, entity_id) "
                         "VALUES ('2026-01-02', 'paylink:1', 'payment.created', 'payment', 'PAY-LINK')")
    assert 7 in migrate.upgrade()
    origins = dict(database.execute_sql("SELECT ref, origin FROM payment").fetchall())
    assert origins == {"PAY-LINK": "paylink", "PAY-PORTAL": "portal"}
    database.close()
