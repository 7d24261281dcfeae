"""Shared fixtures: a real temp-file SQLite portal, a CSRF-aware client, and Chromium.

Only fixtures live here; factories and helpers are in tests/factories.py."""
import pytest

from app import create_app
from billing import identity, sealed
from db import database, migrate, open_database
from db.models import Isp
from tests.factories import CHROMIUM, CHROMIUM_ARGS, TEST_CONFIG, LiveServer, Page, Portal, make_customer


@pytest.fixture
def db_path(tmp_path):
    return tmp_path / "portal.sqlite3"


@pytest.fixture
def database_url(db_path):
    return f"sqlite:///{db_path}"


@pytest.fixture
def app(database_url, tmp_path):
    """A portal on its own SQLite file, migrated, with one ISP set up."""
    app = create_app({**TEST_CONFIG, "DATABASE_URL": database_url})
    migrate.upgrade()
    Isp.create(name="Test ISP", support_phone="555-0100", help_url="https://help.example.test",
               chat_url="https://chat.example.test", max_prepay_cents=20000)
    yield app
    database.close()


@pytest.fixture
def ledger_db(tmp_path):
    """The database alone, with no Flask app: for the Flask-free billing package."""
    identity.configure(1, 1024)
    sealed.configure("ledger-test-secret-key")
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
