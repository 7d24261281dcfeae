"""Database handle, connection set-up and the write-transaction helper.

The handle is a proxy so that the Flask-free ``billing`` package, the CLI and
the tests can all bind it to a real database (SQLite by default, PostgreSQL
for bigger ISPs) without importing Flask.
"""
from peewee import DatabaseProxy, PostgresqlDatabase, SqliteDatabase, Tuple
from playhouse.db_url import connect

database = DatabaseProxy()

# synchronous=FULL: a payment that was acknowledged must survive a power cut.
# busy_timeout: a writer waits this long for another's write lock before "database is locked". A staff
# import of 100,000 rows holds it for a few seconds (more on a loaded machine), and a customer's payment
# step should wait for it rather than fail; 20 s stays under gunicorn's 30 s worker timeout.
BUSY_TIMEOUT_SECONDS = 20
SQLITE_PRAGMAS = {
    "journal_mode": "wal",
    "foreign_keys": 1,
    "busy_timeout": BUSY_TIMEOUT_SECONDS * 1000,
    "synchronous": "full",
}


def open_database(url, pool_size=0):
    """Bind the global handle to the database at ``url`` and return it.

    With ``pool_size`` > 0, PostgreSQL connections are kept open and reused (playhouse's pool) instead of
    one new connection a request: connecting costs ~4 ms of the server's time and a fork on the database's.
    SQLite needs no pool: each thread keeps its connection (see app.py).
    """
    if url.startswith("sqlite:///"):
        path = url[len("sqlite:///"):]
        db = SqliteDatabase(path, pragmas=SQLITE_PRAGMAS, timeout=BUSY_TIMEOUT_SECONDS)
    elif pool_size and url.startswith(("postgresql://", "postgres://")):
        # stale_timeout recycles connections older than 5 minutes; timeout: wait up to 10 s for a free one.
        db = connect("postgresql+pool://" + url.split("://", 1)[1], max_connections=pool_size, stale_timeout=300,
                     timeout=10)
    else:
        db = connect(url)
    old = database.obj
    database.initialize(db)
    if old is not None and old is not db and hasattr(old, "close_all"):
        old.close_all()  # a re-opened handle (tests, CLI) must not leave a pool of connections behind
    return db


def is_sqlite():
    """True when the bound database is SQLite."""
    return isinstance(database.obj, SqliteDatabase)


def is_postgres():
    """True when the bound database is PostgreSQL."""
    return isinstance(database.obj, PostgresqlDatabase)


def write_tx():
    """A transaction for read-then-write work.

    On SQLite this is ``BEGIN IMMEDIATE``: the write lock is taken up front, so
    two requests cannot both read a balance and then both write against it
    (DEFERRED transactions fail with "database is locked" under contention).
    On PostgreSQL callers lock the rows they read with ``FOR UPDATE``.
    """
    if is_sqlite():
        return database.atomic(lock_type="IMMEDIATE")
    return database.atomic()


def keyset_chunks(query, fields, size=1000):
    """A query's rows in lists of ``size``, one query a list; the query must be ordered by ``fields``, descending.

    Keyset paging (``WHERE (a, b) < (last a, last b)``) on an index of ``fields`` keeps every query as fast
    as the first and memory flat, on PostgreSQL too, whose driver would otherwise load every row at once.
    """
    last = None
    while True:
        q = query if last is None else query.where(Tuple(*fields) < Tuple(*last))
        chunk = list(q.limit(size))
        if not chunk:
            return
        yield chunk
        last = tuple(getattr(chunk[-1], f.name) for f in fields)
