"""Helpers for the ISP-side tests: a staff login and reading links out of the outbox."""
import re

import pytest

from billing import identity
from db.models import Outbox

STAFF_EMAIL = "staff@isp.example.test"
STAFF_PASSWORD = "staff password 2026"


def make_staff(email=STAFF_EMAIL, password=STAFF_PASSWORD):
    """A staff login."""
    return identity.create_user(email, password, role="staff")


@pytest.fixture
def staff(app, portal):
    """The portal client, logged in as staff."""
    make_staff()
    resp = portal.login(STAFF_EMAIL, STAFF_PASSWORD)
    assert resp.status_code == 302 and resp.headers["Location"].endswith("/staff/"), resp.headers
    return portal


def last_link(kind, to=None):
    """The path of the last link emailed of this kind (invite, signup, reset, paylink)."""
    q = Outbox.select().where(Outbox.kind == kind)
    if to:
        q = q.where(Outbox.to_addr == to)
    row = q.order_by(Outbox.id.desc()).first()
    assert row is not None, f"no {kind} email"
    m = re.search(r"https?://[^/\s]+(/\S+)", row.text_body)
    return m.group(1)
