"""Copy a portal's SQLite database into PostgreSQL, for an ISP that outgrows one box.

The copy reads one consistent snapshot of the SQLite file (a read transaction: in WAL mode the portal may
keep serving meanwhile, and later writes are simply not in the copy), builds the schema on PostgreSQL with
the same numbered migrations, and writes every row inside ONE PostgreSQL transaction, so a copy that fails
half-way leaves the target as it was and can simply be run again. It then checks what it wrote: the row
count of every table and the ledger's totals must be equal on both sides.

Tables are copied in foreign-key order (parents first) and rows in id order (an allocation that reverses
another comes after it), so no constraint has to be switched off. Values are converted by the target
column's type (SQLite keeps booleans as 0/1). Sequences are moved past the highest copied id.
"""
import sqlite3
from dataclasses import dataclass, field

from db import database, migrate, open_database

SKIP = {"schema_migration"}
# The ledger's figures that must match on both sides: (label, SQL).
LEDGER_CHECKS = (
    ("invoice totals", "SELECT COALESCE(SUM(amount_cents), 0) FROM invoice_line"),
    ("payments received", "SELECT COALESCE(SUM(amount_cents), 0) FROM payment WHERE status = 'succeeded'"),
    ("allocations", "SELECT COALESCE(SUM(amount_cents), 0) FROM allocation"),
    ("invoices paid", "SELECT COALESCE(SUM(paid_cents), 0) FROM invoice"),
    ("account credit", "SELECT COALESCE(SUM(amount_cents), 0) FROM credit_entry"),
)


class CopyError(Exception):
    """The copy cannot be made as asked; str() says why and what to do."""


@dataclass
class CopyReport:
    """What was copied, and the checks that compared both sides."""

    rows: dict = field(default_factory=dict)  # table -> rows copied
    checks: list = field(default_factory=list)  # (label, source figure, target figure)
    already: bool = False  # the target already held this very data: nothing was written

    @property
    def ok(self):
        return all(a == b for _, a, b in self.checks)


def _tables_in_fk_order(pg):
    """The target's tables, parents before children (a table's self-reference does not count)."""
    cur = pg.execute_sql(
        "SELECT tc.table_name, ccu.table_name FROM information_schema.table_constraints tc "
        "JOIN information_schema.constraint_column_usage ccu ON tc.constraint_name = ccu.constraint_name "
        "WHERE tc.constraint_type = 'FOREIGN KEY' AND tc.table_schema = 'public'")
    parents = {}
    for child, parent in cur.fetchall():
        if child != parent:
            parents.setdefault(child, set()).add(parent)
    cur = pg.execute_sql("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' "
                         "AND table_type = 'BASE TABLE'")
    tables = sorted(t for (t,) in cur.fetchall() if t not in SKIP)
    ordered, seen = [], set()

    def visit(table, path=()):
        if table in seen:
            return
        if table in path:
            raise CopyError(f"foreign keys form a cycle through {table}")
        for parent in sorted(parents.get(table, ())):
            visit(parent, path + (table,))
        seen.add(table)
        ordered.append(table)

    for table in tables:
        visit(table)
    return ordered


def _pg_columns(pg, table):
    cur = pg.execute_sql("SELECT column_name, data_type FROM information_schema.columns "
                         "WHERE table_schema = 'public' AND table_name = %s ORDER BY ordinal_position", (table,))
    return dict(cur.fetchall())


def _converter(data_type):
    if data_type == "boolean":
        return lambda v: None if v is None else bool(v)
    if data_type == "bytea":
        import psycopg2

        return lambda v: None if v is None else psycopg2.Binary(v)
    return lambda v: v


def _figures(execute):
    return [(label, int(execute(sql))) for label, sql in LEDGER_CHECKS]


def _count(execute, table):
    return int(execute(f'SELECT COUNT(*) FROM "{table}"'))


def copy_to_postgres(sqlite_path, pg_url, replace=False, batch=2000, log=lambda msg: None):
    """Copy the SQLite database at ``sqlite_path`` into the PostgreSQL database at ``pg_url``; a CopyReport."""
    src = sqlite3.connect(f"file:{sqlite_path}?mode=ro", uri=True)
    try:
        src.execute("BEGIN")  # one snapshot for every table and check below
        src_versions = {v for (v,) in src.execute("SELECT version FROM schema_migration")}

        def src_scalar(sql):
            return src.execute(sql).fetchone()[0]

        pg = open_database(pg_url)
        try:
            migrate.upgrade()
            pg_versions = migrate.applied()
            if src_versions != pg_versions:
                raise CopyError("the SQLite database is at another schema version: run "
                                "`db-upgrade` on it first (versions differ: "
                                f"{sorted(src_versions ^ pg_versions)})")
            tables = _tables_in_fk_order(pg)
            src_tables = {t for (t,) in src.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            report = CopyReport()

            def pg_scalar(sql):
                return pg.execute_sql(sql).fetchone()[0]

            held = {t: _count(pg_scalar, t) for t in tables}
            if any(held.values()):
                same = all(held[t] == (_count(src_scalar, t) if t in src_tables else 0) for t in tables) \
                    and _figures(pg_scalar) == _figures(src_scalar)
                if same and not replace:
                    report.already = True
                    report.rows = held
                    report.checks = [(label, a, b) for (label, a), (_, b)
                                     in zip(_figures(src_scalar), _figures(pg_scalar))]
                    return report
                if not replace:
                    raise CopyError("the PostgreSQL database already holds other portal data; nothing was "
                                    "written. Give an empty database, or --replace to overwrite it.")
            with pg.atomic():
                if any(held.values()):
                    pg.execute_sql("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " RESTART IDENTITY")
                for table in tables:
                    if table not in src_tables:
                        continue
                    report.rows[table] = _copy_table(src, pg, table, batch)
                    log(f"{table}: {report.rows[table]} row(s)")
                for table in tables:
                    cols = _pg_columns(pg, table)
                    if "id" in cols and cols["id"] == "integer":
                        pg.execute_sql(f"SELECT setval(pg_get_serial_sequence('\"{table}\"', 'id'), "
                                       f"COALESCE((SELECT MAX(id) FROM \"{table}\"), 0) + 1, false)")
                mismatched = [t for t in tables if t in src_tables
                              and _count(pg_scalar, t) != _count(src_scalar, t)]
                report.checks = [(label, a, b) for (label, a), (_, b)
                                 in zip(_figures(src_scalar), _figures(pg_scalar))]
                if mismatched or not report.ok:
                    raise CopyError(f"the copy does not match its source ({mismatched or report.checks}); "
                                    "nothing was written")
            return report
        finally:
            database.close()
    finally:
        src.close()


def _copy_table(src, pg, table, batch):
    from psycopg2.extras import execute_values

    target = _pg_columns(pg, table)
    src_cols = [row[1] for row in src.execute(f'PRAGMA table_info("{table}")')]
    cols = [c for c in src_cols if c in target]
    missing = [c for c in src_cols if c not in target]
    if missing:
        raise CopyError(f"{table} has columns PostgreSQL lacks: {missing}")
    convert = [_converter(target[c]) for c in cols]
    order = "id" if "id" in cols else "rowid"
    col_list = ", ".join(f'"{c}"' for c in cols)
    cur = src.execute(f'SELECT {col_list} FROM "{table}" ORDER BY {order}')
    copied = 0
    with pg.cursor() as pg_cur:
        while True:
            rows = cur.fetchmany(batch)
            if not rows:
                break
            execute_values(pg_cur, f'INSERT INTO "{table}" ({col_list}) VALUES %s',
                           [tuple(f(v) for f, v in zip(convert, row)) for row in rows], page_size=batch)
            copied += len(rows)
    return copied
