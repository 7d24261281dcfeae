"""Numbered schema migrations, each applied once and recorded in the database.

A migration is ``db/migrations/NNNN_name.sql``: portable SQL in which ``{pk}``
stands for the dialect's auto-increment primary key. Statements are split on
``;`` at line ends, and a migration runs inside one transaction (both SQLite
and PostgreSQL have transactional DDL), so a failed upgrade leaves nothing
half-applied. Write no ``%`` in a migration: PostgreSQL's driver reads it as a placeholder
(use SUBSTR instead of LIKE 'x%').
"""
import pathlib
import re

from db import database, is_sqlite
from db.models import utcnow

MIGRATIONS_DIR = pathlib.Path(__file__).parent / "migrations"
_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


def available():
    """All migration files, in order, as (version, path)."""
    found = []
    for path in sorted(MIGRATIONS_DIR.iterdir()):
        m = _NAME.match(path.name)
        if m:
            found.append((int(m.group(1)), path))
    return found


def _ensure_history():
    database.execute_sql(
        "CREATE TABLE IF NOT EXISTS schema_migration ("
        "version INTEGER PRIMARY KEY, name VARCHAR(255) NOT NULL, applied_at TIMESTAMP NOT NULL)"
    )


def applied():
    """Versions already recorded in this database."""
    _ensure_history()
    return {row[0] for row in database.execute_sql("SELECT version FROM schema_migration")}


def _statements(path):
    pk = "INTEGER PRIMARY KEY AUTOINCREMENT" if is_sqlite() else "SERIAL PRIMARY KEY"
    sql = path.read_text().replace("{pk}", pk)
    sql = "\n".join(line for line in sql.splitlines() if not line.lstrip().startswith("--"))
    return [s.strip() for s in re.split(r";\s*$", sql, flags=re.M) if s.strip()]


def upgrade(target=None, log=lambda msg: None):
    """Apply every pending migration up to ``target`` (all by default); return those applied."""
    done = applied()
    ran = []
    for version, path in available():
        if version in done or (target is not None and version > target):
            continue
        with database.atomic():
            for statement in _statements(path):
                database.execute_sql(statement)
            p = database.param
            database.execute_sql(
                f"INSERT INTO schema_migration (version, name, applied_at) VALUES ({p}, {p}, {p})",
                (version, path.name, utcnow()),
            )
        log(f"applied {path.name}")
        ran.append(version)
    return ran
