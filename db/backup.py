"""Backups that are consistent while the portal serves.

SQLite: the online backup API copies the database page by page under SQLite's own locking, so the copy is one
consistent snapshot even while payments are written (a plain file copy of a WAL database can miss or tear the
latest transactions). The copy is written beside its target and renamed into place only after
``PRAGMA integrity_check`` passed, so a failed run never leaves a half-written file under the backup's name.
PostgreSQL: ``pg_dump`` is the tool; this module builds the command for the configured database.
"""
import os
import pathlib
import shlex
import sqlite3

from db import database


class BackupError(Exception):
    """The backup could not be made; str() says why."""


def sqlite_backup(source_path, target):
    """Copy the SQLite database at ``source_path`` to ``target`` (which must not exist); returns the checked path."""
    target = pathlib.Path(target)
    if target.exists():
        raise BackupError(f"{target} already exists; give a new name (e.g. with the date in it)")
    if not target.parent.is_dir():
        raise BackupError(f"the folder {target.parent} does not exist")
    partial = target.with_name(f".{target.name}.partial")
    src = sqlite3.connect(f"file:{source_path}?mode=ro", uri=True)
    try:
        dst = sqlite3.connect(partial)
        try:
            src.backup(dst, pages=1024)  # in steps, so writers wait at most one step's time
            result = dst.execute("PRAGMA integrity_check").fetchone()[0]
            dst.execute("PRAGMA journal_mode=DELETE")  # a single self-contained file
        finally:
            dst.close()
    finally:
        src.close()
    if result != "ok":
        partial.unlink(missing_ok=True)
        raise BackupError(f"the copy failed its integrity check: {result}")
    try:
        os.link(partial, target)  # unlike a rename, fails if the target appeared meanwhile: never overwrites
    except FileExistsError:
        raise BackupError(f"{target} appeared while the backup ran; the copy was not kept") from None
    finally:
        partial.unlink(missing_ok=True)
    return target


def pg_dump_command(target):
    """The pg_dump command line that backs up the configured PostgreSQL database to ``target``."""
    params = database.obj.connect_params
    parts = ["pg_dump", "--format=custom", f"--file={target}"]
    for flag, key in (("--host", "host"), ("--port", "port"), ("--username", "user")):
        if params.get(key):
            parts.append(f"{flag}={params[key]}")
    parts.append(database.obj.database)
    return " ".join(shlex.quote(p) for p in parts)
