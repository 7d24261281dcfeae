"""Helpers for the ISP-side tests: a staff login and reading links out of the outbox."""
import re

import pytest

from billing import identity
from db.models import Outbox

STAFF_EMAIL = "staff@isp.example.test"
CLERK_EMAIL = "clerk@isp.example.test"
STAFF_PASSWORD = "staff password 2026"


def make_staff(email=STAFF_EMAIL, password=STAFF_PASSWORD, staff_role="owner", name="Olive Owner"):
    """A staff login: an owner unless ``staff_role="clerk"``."""
    return identity.create_user(email, password, role="staff", staff_role=staff_role, name=name)


def log_in_staff(portal, email):
    """Log the portal client in as this staff login."""
    resp = portal.login(email, STAFF_PASSWORD)
    assert resp.status_code == 302 and resp.headers["Location"].endswith("/staff/"), resp.headers
    return portal


@pytest.fixture
def staff(app, portal):
    """The portal client, logged in as an owner."""
    make_staff()
    return log_in_staff(portal, STAFF_EMAIL)


@pytest.fixture
def owner(app):
    """An owner logged in on a client of its own, beside a customer's ``logged_in`` client."""
    from tests.factories import Portal

    make_staff()
    return log_in_staff(Portal(app.test_client()), STAFF_EMAIL)


@pytest.fixture
def clerk(app, portal):
    """The portal client, logged in as a clerk."""
    make_staff(CLERK_EMAIL, staff_role="clerk", name="Cary Clerk")
    return log_in_staff(portal, CLERK_EMAIL)


def last_link(kind, to=None):
    """The path of the last link emailed of this kind (invite, signup, reset, paylink)."""
    q = Outbox.select().where(Outbox.kind == kind)
    if to:
        q = q.where(Outbox.to_addr == to)
    row = q.order_by(Outbox.id.desc()).first()
    assert row is not None, f"no {kind} email"
    m = re.search(r"https?://[^/\s]+(/\S+)", row.text_body)
    return m.group(1)
