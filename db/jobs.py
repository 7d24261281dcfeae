"""Locks that make a scheduled job run once, however many hosts or overlapping runs start it.

Every cron command takes its job's lock before it does any work, and a run that finds the lock held
does nothing and says so. Two kinds, one for each database:

- PostgreSQL: a session-level advisory lock (``pg_try_advisory_lock``) on a connection of its own, so
  every host that shares the database sees it, and the server drops it if the run's process dies.
- SQLite: an exclusive ``flock`` on a file beside the database. SQLite serves one box only (its file
  cannot be shared between hosts safely), so an operating-system lock is the whole of the problem, and
  unlike a lock row it cannot be left behind by a crashed run: the kernel releases it with the process.
  A lock row would need an expiry, and a slow run outliving its expiry would run twice.
"""
import contextlib
import fcntl
import hashlib
import os
import pathlib

from db import database, is_postgres

# The exit status of a job that did not run because another run holds its lock (EX_TEMPFAIL).
EXIT_BUSY = 75


class JobBusy(Exception):
    """Another run of this job holds its lock; nothing was done."""

    def __init__(self, name):
        super().__init__(f"another run of {name!r} is in progress (on this host or another); nothing was done")
        self.name = name


def _advisory_key(name):
    """A stable signed 64-bit key for the job's name (the same on every host)."""
    digest = hashlib.sha256(f"portal-job:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _sqlite_lock_path(name):
    db_file = pathlib.Path(database.obj.database)
    return db_file.with_name(f"{db_file.name}.job-{name}.lock")


@contextlib.contextmanager
def _postgres_lock(name):
    import psycopg2

    params = database.obj.connect_params
    conn = psycopg2.connect(dbname=database.obj.database, **{k: v for k, v in params.items()
                                                               if k not in ("max_connections", "stale_timeout",
                                                                            "timeout")})
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT pg_try_advisory_lock(%s)", (_advisory_key(name),))
            if not cur.fetchone()[0]:
                raise JobBusy(name)
        yield
        with conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_unlock(%s)", (_advisory_key(name),))
    finally:
        conn.close()


@contextlib.contextmanager
def _sqlite_lock(name):
    path = _sqlite_lock_path(name)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise JobBusy(name) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def job_lock(name):
    """Hold the lock of job ``name`` for the ``with`` block, or raise JobBusy at once if it is taken."""
    if not name.replace("-", "").isalnum():
        raise ValueError(f"bad job name {name!r}")
    return _postgres_lock(name) if is_postgres() else _sqlite_lock(name)
