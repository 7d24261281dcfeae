"""The portal on a real PostgreSQL server, for ISPs that outgrow SQLite.

Every database test runs on PostgreSQL too with ``--db=postgresql`` (the second pass of ``make test``);
this module only checks that such a run really is on PostgreSQL.
"""
import pytest
from peewee import PostgresqlDatabase

from db import database


def test_the_app_really_runs_on_the_engine_chosen_by_db(app, request):
    on_postgres = isinstance(database.obj, PostgresqlDatabase)
    assert on_postgres == (request.config.getoption("--db") == "postgresql")
    if on_postgres:
        assert database.execute_sql("SELECT version()").fetchone()[0].startswith("PostgreSQL")


@pytest.mark.postgres
def test_each_test_gets_its_own_migrated_postgresql_database(copy_of_template):
    import psycopg2

    conn = psycopg2.connect(copy_of_template)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT COUNT(*) FROM schema_migration")
            assert cur.fetchone()[0] > 0
            cur.execute("SELECT COUNT(*) FROM customer")
            assert cur.fetchone()[0] == 0
    finally:
        conn.close()
