"""The same ledger and pay-flow tests on a real PostgreSQL server, for ISPs that outgrow SQLite.

The server is started by the tests (initdb into a temp folder, loopback only) and each test gets its
own database. The tests below are imported from the SQLite suites, so both engines run the same code.
"""
import itertools
import os
import pathlib
import shutil
import socket
import subprocess
import tempfile

import pytest

from db import database, migrate, open_database
from db.models import Isp

PGBIN = os.environ.get("PGBIN", "/usr/lib/postgresql/15/bin")
pytestmark = pytest.mark.postgres
_dbs = itertools.count(1)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_postgres(*cmd):
    prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    return subprocess.run(prefix + list(cmd), check=True, capture_output=True, text=True)


@pytest.fixture(scope="session")
def pg_server():
    """A PostgreSQL server on 127.0.0.1 for this test session."""
    if not os.path.exists(f"{PGBIN}/initdb"):
        pytest.fail("PostgreSQL server binaries are missing: `make test` installs them (apt-get install postgresql)")
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        pytest.fail("runuser is needed to start PostgreSQL as root")
    # Not under pytest's temp folder: the postgres user must be able to reach it.
    top = pathlib.Path(tempfile.mkdtemp(prefix="portal-pg-"))
    data = top / "data"
    data.mkdir()
    if os.geteuid() == 0:
        shutil.chown(top, "postgres")
        shutil.chown(data, "postgres")
    port = _free_port()
    _as_postgres(f"{PGBIN}/initdb", "-D", str(data), "-U", "postgres", "-A", "trust", "--no-sync")
    _as_postgres(f"{PGBIN}/pg_ctl", "-D", str(data), "-l", str(data / "log"), "-w", "start", "-o",
                 f"-c listen_addresses=127.0.0.1 -p {port} -k {data} -c fsync=off")
    yield f"postgresql://postgres@127.0.0.1:{port}"
    _as_postgres(f"{PGBIN}/pg_ctl", "-D", str(data), "-m", "fast", "-w", "stop")
    shutil.rmtree(top, ignore_errors=True)


def _fresh_database(server):
    name = f"portal_{os.getpid()}_{next(_dbs)}"
    import psycopg2

    conn = psycopg2.connect(f"{server}/postgres")
    conn.autocommit = True
    conn.cursor().execute(f"CREATE DATABASE {name}")
    conn.close()
    return f"{server}/{name}"


@pytest.fixture
def database_url(pg_server):
    """Overrides conftest's SQLite file: the `app` fixture now runs on PostgreSQL."""
    return _fresh_database(pg_server)


@pytest.fixture
def ledger_db(pg_server):
    """Overrides conftest's: the Flask-free billing tests on PostgreSQL."""
    from billing import identity

    identity.configure(1, 1024)
    open_database(_fresh_database(pg_server))
    migrate.upgrade()
    Isp.create(name="Test ISP", max_prepay_cents=20000)
    yield database
    database.close()


def test_the_app_really_runs_on_postgresql(app):
    from peewee import PostgresqlDatabase

    assert isinstance(database.obj, PostgresqlDatabase)
    assert database.execute_sql("SELECT version()").fetchone()[0].startswith("PostgreSQL")


# The same behaviour, on PostgreSQL. ------------------------------------------------------
from tests.test_ledger import (  # noqa: E402,F401
    test_overpayment_becomes_credit_applied_to_later_invoices,
    test_partial_payment_leaves_invoice_partially_paid,
    test_payments_always_equal_allocations_plus_credit,
    test_the_same_success_reported_twice_allocates_once,
)
from tests.test_pages import (  # noqa: E402,F401
    test_demo_is_idempotent_and_shows_four_invoices,
    test_home_shows_balance_next_due_date_and_credit,
    test_statement_has_a_running_balance,
)
from tests.test_pay_flow import (  # noqa: E402,F401
    owing,
    test_a_declined_card_records_nothing_and_another_card_can_pay,
    test_ach_is_processing_then_settles_to_paid,
    test_card_payment_for_the_total_goes_to_the_oldest_invoice_first,
    test_double_click_on_pay_charges_once,
    test_popup_page_and_webhook_all_reporting_allocate_once,
    test_resubmitting_step_two_keeps_one_payment,
)
from tests.test_query_counts import (  # noqa: E402,F401
    test_a_compiled_query_is_built_once_and_converts_its_values_as_the_orm_does,
    test_a_session_lookup_reads_session_user_and_customer_in_one_statement,
    test_a_staff_session_lookup_is_one_statement_and_has_no_customer,
    test_autopay_status_is_one_statement_whether_on_or_off,
    test_home_runs_six_statements,
    test_the_invoices_tab_needs_no_count_when_its_list_fits_one_page,
)
from tests.test_schema import (  # noqa: E402,F401
    test_every_model_column_exists_in_the_migrated_schema,
    test_migrations_are_recorded_and_applied_once,
)
from tests.test_staff_held import (  # noqa: E402,F401
    invoices,
    owner,
    test_an_owner_accepts_a_held_payment_as_reported_once_through_the_ledger_rules,
    test_an_owner_refunds_and_closes_a_held_payment_once_and_the_customer_can_pay_again,
)
from tests.test_claim_expiry import (  # noqa: E402,F401
    processor,
    test_a_claim_the_processor_charged_but_nobody_recorded_is_recorded_once,
    test_an_abandoned_challenge_expires_after_the_claim_ttl_and_the_customer_can_pay_again,
)
from tests.test_invoice_in_flight import (  # noqa: E402,F401
    clerk,
    test_an_invoice_with_money_on_its_way_cannot_be_edited_or_voided,
)
