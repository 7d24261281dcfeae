"""Shared fixtures: a real portal on a fresh database, a CSRF-aware client, and Chromium.

The database is a temp-file SQLite by default; with ``--db=postgresql`` every test that uses ``app``,
``database_url`` or ``ledger_db`` gets its own database on a PostgreSQL server the tests start themselves
(tests/pg_support.py). Only fixtures live here; factories and helpers are in tests/factories.py."""
import datetime as dt

import pytest

from app import create_app
from billing import identity, sealed
from db import database, migrate, open_database
from db.models import Isp
from tests.factories import CHROMIUM, CHROMIUM_ARGS, TEST_CONFIG, LiveServer, Page, Portal, make_customer
from tests.pg_support import copy_of_template, pg_server, template_url  # noqa: F401 - fixtures

# The fixtures whose database --db chooses: a test that uses none of them runs the same on either engine.
ENGINE_FIXTURES = ("database_url", "ledger_db")


def pytest_addoption(parser):
    parser.addoption("--db", choices=("sqlite", "postgresql"), default="sqlite",
                     help="the engine under the app, database_url and ledger_db fixtures (default: sqlite)")


def pytest_collection_modifyitems(config, items):
    """On ``--db=postgresql``: run only the tests whose database the option changes, and skip those that
    cannot run there, saying why."""
    if config.getoption("--db") != "postgresql":
        return
    keep, dropped = [], []
    for item in items:
        uses_engine = any(name in getattr(item, "fixturenames", ()) for name in ENGINE_FIXTURES)
        # Tests marked postgres start their own PostgreSQL database and already ran in the SQLite pass.
        if uses_engine and not item.get_closest_marker("postgres"):
            keep.append(item)
        else:
            dropped.append(item)
        only = item.get_closest_marker("sqlite_only")
        if only:
            item.add_marker(pytest.mark.skip(reason=f"SQLite only: {only.kwargs.get('reason') or only.args[0]}"))
        elif item.get_closest_marker("browser"):
            item.add_marker(pytest.mark.skip(reason="browser tests run once, on SQLite: Chromium sees the same "
                                                    "pages either way, and the pass without it covers the database"))
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep


@pytest.fixture(autouse=True)
def _today_is_today(request, monkeypatch):
    """Many modules name ``TODAY`` once, at import. A suite that runs across midnight would then date its
    invoices yesterday while the portal dates payments today, so each test sees the date it runs on."""
    module = request.module
    if isinstance(getattr(module, "TODAY", None), dt.date):
        monkeypatch.setattr(module, "TODAY", dt.date.today())


@pytest.fixture
def db_path(tmp_path):
    return tmp_path / "portal.sqlite3"


@pytest.fixture
def database_url(request, tmp_path):
    """A fresh database's URL: a SQLite file, or with --db=postgresql a migrated PostgreSQL database."""
    if request.config.getoption("--db") == "postgresql":
        return request.getfixturevalue("copy_of_template")
    return f"sqlite:///{request.getfixturevalue('db_path')}"


@pytest.fixture
def app(database_url, tmp_path):
    """A portal on its own database, migrated, with one ISP set up."""
    app = create_app({**TEST_CONFIG, "DATABASE_URL": database_url})
    migrate.upgrade()
    Isp.create(name="Test ISP", support_phone="555-0100", help_url="https://help.example.test",
               chat_url="https://chat.example.test", max_prepay_cents=20000)
    yield app
    database.close()


@pytest.fixture
def ledger_db(request, tmp_path):
    """The database alone, with no Flask app: for the Flask-free billing package."""
    identity.configure(1, 1024)
    sealed.configure("ledger-test-secret-key")
    if request.config.getoption("--db") == "postgresql":
        open_database(request.getfixturevalue("copy_of_template"))
    else:
        open_database(f"sqlite:///{tmp_path / 'ledger.sqlite3'}")
    migrate.upgrade()
    Isp.create(name="Test ISP", max_prepay_cents=20000)
    yield database
    database.close()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def portal(client):
    return Portal(client)


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def customer(app):
    return make_customer()


@pytest.fixture
def logged_in(app, portal, customer):
    """A portal client logged in as ``customer``."""
    resp = portal.login(customer.email)
    assert resp.status_code == 302, resp.get_data(as_text=True)
    return portal


# --- Real Chromium ----------------------------------------------------------------

@pytest.fixture
def live_server(app):
    server = LiveServer(app)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def browser():
    """Debian's Chromium, driven by Playwright."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def open_page(browser, live_server):
    """Make a new browser context (options as for ``browser.new_context``) and a logged-out page."""
    contexts = []

    def make(init_script=None, **options):
        context = browser.new_context(**options)
        contexts.append(context)
        if init_script:
            context.add_init_script(init_script)
        return Page(context, live_server.url)

    yield make
    for c in contexts:
        c.close()
