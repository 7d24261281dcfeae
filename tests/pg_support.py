"""A PostgreSQL server started by the tests, and a fresh database on it for each test.

``pg_server`` (session) runs initdb into a temp folder and serves it on loopback only. ``fresh_database``
makes an empty database; ``template_url`` (session) migrates one database once, and ``copy_of_template``
makes each test's database from it with ``CREATE DATABASE ... TEMPLATE``, which copies files instead of
replaying every migration.
"""
import contextlib
import itertools
import os
import pathlib
import shutil
import socket
import subprocess
import tempfile

import pytest

PGBIN = os.environ.get("PGBIN", "/usr/lib/postgresql/15/bin")
TEMPLATE = "portal_template"
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
    """A PostgreSQL server on 127.0.0.1 for this test session; yields its URL without a database name."""
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
    # Durability is not under test here: fsync and full-page writes off make each test's CREATE DATABASE cheap.
    _as_postgres(f"{PGBIN}/pg_ctl", "-D", str(data), "-l", str(data / "log"), "-w", "start", "-o",
                 f"-c listen_addresses=127.0.0.1 -p {port} -k {data} -c fsync=off -c full_page_writes=off "
                 "-c synchronous_commit=off -c max_connections=200")
    yield f"postgresql://postgres@127.0.0.1:{port}"
    _as_postgres(f"{PGBIN}/pg_ctl", "-D", str(data), "-m", "fast", "-w", "stop")
    shutil.rmtree(top, ignore_errors=True)


@contextlib.contextmanager
def _admin(server):
    import psycopg2

    conn = psycopg2.connect(f"{server}/postgres")
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            yield cur
    finally:
        conn.close()


def fresh_database(server, template=None):
    """Create a new, empty database (or a copy of ``template``) on ``server`` and return its URL."""
    name = f"portal_{os.getpid()}_{next(_dbs)}"
    with _admin(server) as cur:
        # FILE_COPY copies the template's files (~0.2 s) instead of writing them all through the WAL.
        cur.execute(f"CREATE DATABASE {name}" + (f" TEMPLATE {template} STRATEGY FILE_COPY" if template else ""))
    return f"{server}/{name}"


def drop_database(url):
    """Drop the database at ``url``, ending any connection a test left open to it."""
    server, name = url.rsplit("/", 1)
    with _admin(server) as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(scope="session")
def template_url(pg_server):
    """A database migrated once for the whole session, for tests' databases to be copied from."""
    from db import database, migrate, open_database

    with _admin(pg_server) as cur:
        cur.execute(f"CREATE DATABASE {TEMPLATE}")
    url = f"{pg_server}/{TEMPLATE}"
    open_database(url)
    migrate.upgrade()
    database.close()  # a template must have no connections while it is copied
    return url


@pytest.fixture
def copy_of_template(pg_server, template_url):
    """This test's own migrated PostgreSQL database (a copy of the template), dropped afterwards."""
    url = fresh_database(pg_server, template=TEMPLATE)
    yield url
    from db import database

    database.close()
    drop_database(url)
