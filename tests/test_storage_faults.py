"""A read-only or full disk: every page answers a clear 503 that says why, and /healthz says it to monitors.

The disk is real: a small tmpfs mounted for the test (root only; elsewhere these tests are skipped), filled
up with a file, or remounted read-only, under a portal whose database lives on it.
"""
import os
import subprocess
import tempfile

import pytest

from app import create_app
from db import database, migrate
from db.models import Isp
from tests.factories import TEST_CONFIG, make_customer


@pytest.fixture
def small_disk():
    """A 4 MB tmpfs of our own, unmounted afterwards."""
    if os.geteuid() != 0:
        pytest.skip("mounting a test disk needs root")
    point = tempfile.mkdtemp(prefix="portal-disk-")
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", point]).returncode:
        pytest.skip("this machine does not allow mounting a tmpfs")
    yield point
    database.close()
    subprocess.run(["umount", "-l", point], check=True)
    os.rmdir(point)


@pytest.fixture
def disk_app(small_disk):
    app = create_app({**TEST_CONFIG, "DATABASE_URL": f"sqlite:///{small_disk}/portal.sqlite3"})
    migrate.upgrade()
    Isp.create(name="Test ISP")
    make_customer(email="disk@example.test")
    app.config["PROPAGATE_EXCEPTIONS"] = False
    return app


def _fill(point):
    with open(os.path.join(point, "filler"), "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass


def test_a_full_disk_gives_a_503_page_saying_so_and_healthz_reports_it(disk_app, small_disk):
    client = disk_app.test_client()
    assert client.get("/healthz").get_json()["status"] == "ok"
    database.close()
    _fill(small_disk)
    # Signing up writes (a request row and an email); on a full disk it cannot.
    for _ in range(3):
        resp = client.post("/api/v1/customers", json={"customers": [{"account_number": "X", "name": "Y"}]})
        assert resp.status_code in (401, 503)
        health = client.get("/healthz")
        if health.status_code == 503:
            break
    assert health.status_code == 503
    assert health.get_json()["database"] == "the disk is full"
    resp = client.post("/login", data={"email": "disk@example.test", "password": "x"})
    assert resp.status_code == 503
    assert "the disk is full" in resp.get_data(as_text=True)


def test_a_read_only_disk_gives_a_503_page_saying_so(disk_app, small_disk):
    client = disk_app.test_client()
    database.close()
    subprocess.run(["mount", "-o", "remount,ro", small_disk], check=True)
    resp = client.get("/login")
    assert resp.status_code == 503
    assert "read-only" in resp.get_data(as_text=True) or "cannot be opened" in resp.get_data(as_text=True)
    health = client.get("/healthz")
    assert health.status_code == 503 and health.get_json()["status"] == "unavailable"
