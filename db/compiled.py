"""Hot fixed-shape queries, compiled to SQL once per database handle and then run with new values.

Building a peewee query and compiling it costs 0.1–0.3 ms of CPU a statement, more than SQLite takes to run
most of the portal's, and every page repeats the same few shapes. A ``Compiled`` query is built once, with
``Arg(i)`` where its values go; its SQL and parameter list are kept per database handle (so SQLite and
PostgreSQL each get their own dialect and placeholders), and each call only fills in the values, converted
by the same field ``db_value`` the ORM would have applied, then reads rows with the query's own row reader
(models, with joined models attached). peewee and playhouse have no such cache; this is the small part of
one that the hot queries need.

Only the values may change between calls: the query's shape (its joins, its IN lists, its LIMIT) is fixed
when it is built.
"""
from peewee import Node

from db import database


class _Slot:
    """Where argument ``index`` goes in a compiled parameter list, and how its field converts it."""

    __slots__ = ("index", "convert")

    def __init__(self, index, convert):
        self.index = index
        self.convert = convert

    def value(self, args):
        value = args[self.index]
        return self.convert(value) if self.convert is not None and value is not None else value


class Arg(Node):
    """The ``index``-th argument of a compiled query, in place of a value."""

    def __init__(self, index):
        super().__init__()
        self.index = index

    def __sql__(self, ctx):
        # Compiled as a value would be (peewee's Context.value), but the parameter is a slot filled per call.
        ctx._values.append(_Slot(self.index, ctx.state.converter))
        return ctx.literal(ctx.state.param or "?")


class Compiled:
    """A query made by ``build()`` (with ``Arg(i)`` for its values), compiled once, run with new values."""

    def __init__(self, build):
        self.build = build

    def _entry(self):
        db = database.obj
        cache = db.__dict__.get("_compiled_sql")
        if cache is None:
            cache = db.__dict__.setdefault("_compiled_sql", {})
        entry = cache.get(self)
        if entry is None:  # two threads may both compile it the first time: the same result, no harm
            query = self.build()
            sql, params = query.sql()
            slots = tuple((i, p) for i, p in enumerate(params) if isinstance(p, _Slot))
            entry = cache[self] = (query, sql, tuple(params), slots)
        return entry

    def cursor(self, *args):
        """(query, cursor) over the rows for these values."""
        query, sql, params, slots = self._entry()
        values = list(params)
        for i, slot in slots:
            values[i] = slot.value(args)
        return query, database.execute_sql(sql, values)

    def rows(self, *args):
        """The rows for these values, as the query itself would give them."""
        query, cursor = self.cursor(*args)
        return list(query._get_cursor_wrapper(cursor))

    def first(self, *args):
        """The first row for these values, or None (build the query with ``.limit(1)``)."""
        rows = self.rows(*args)
        return rows[0] if rows else None

    def scalar(self, *args):
        """The first column of the first row for these values, or None."""
        _query, cursor = self.cursor(*args)
        row = cursor.fetchone()
        return row[0] if row else None
