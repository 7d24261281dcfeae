"""Helpers for the hostile-input tests: a digest of everything stored, and a world of two customers and staff.

``stored_digest`` hashes every row of every table that holds customers' or the ISP's data, so a refused
request can be checked to have written nothing at all ("no partial write"). Tables that record the request
itself (login sessions, login attempts, the health probe) are left out.
"""
import hashlib

import pytest

from db import database
from db.models import BaseModel
from tests.factories import Portal, make_customer, make_invoice
from tests.staff_support import STAFF_EMAIL, STAFF_PASSWORD, make_staff

# Rows that a request writes about itself, not data it was asked to change.
VOLATILE_TABLES = {"login_session", "health_check", "schema_migration", "throttle", "login_event"}
VOLATILE_COLUMNS = {"api_token": "last_used_at"}


def _tables():
    seen, todo = set(), list(BaseModel.__subclasses__())
    while todo:
        model = todo.pop()
        seen.add(model._meta.table_name)
        todo.extend(model.__subclasses__())
    return sorted(seen - VOLATILE_TABLES)


def stored_digest():
    """A SHA-256 of every stored row outside VOLATILE_TABLES (and audit rows about logins)."""
    h = hashlib.sha256()
    for table in _tables():
        where = " WHERE SUBSTR(action, 1, 6) <> 'login.'" if table == "audit_log" else ""
        cursor = database.execute_sql(f'SELECT * FROM "{table}"{where} ORDER BY 1')
        names = [c[0] for c in cursor.description]
        skip = names.index(VOLATILE_COLUMNS[table]) if table in VOLATILE_COLUMNS else None
        h.update(table.encode())
        for row in cursor.fetchall():
            h.update(repr(tuple(v for i, v in enumerate(row) if i != skip)).encode())
    return h.hexdigest()


class World:
    """Customer A logged in, customer B (another account, with an invoice), staff, an API token."""

    def __init__(self, app):
        from billing import api as api_rules

        self.app = app
        self.a = make_customer()
        self.a_invoice = make_invoice(self.a, cents=5000)
        self.b = make_customer()
        self.b_invoice = make_invoice(self.b, cents=7000)
        make_staff()
        self.customer = Portal(app.test_client())
        assert self.customer.login(self.a.email).status_code == 302
        self.staff = Portal(app.test_client())
        assert self.staff.login(STAFF_EMAIL, STAFF_PASSWORD).status_code == 302
        self.anon = Portal(app.test_client())
        _row, token = api_rules.create_token("fuzz", actor="test")
        self.api_headers = {"Authorization": f"Bearer {token}"}

    def client(self, who):
        return {"customer": self.customer, "staff": self.staff, "anon": self.anon}[who]

    def sandbox_signature(self, body):
        return self.app.extensions["processor"].sign(body)


@pytest.fixture
def world(app):
    return World(app)
