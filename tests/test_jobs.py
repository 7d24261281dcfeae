"""Cron jobs run once: a second run of the same job, from another process or host, does nothing and says so."""
import os
import signal
import subprocess
import sys
import time

import pathlib

import pytest

from app import create_app
from db import database, migrate
from db.jobs import EXIT_BUSY, JobBusy, job_lock
from db.models import Isp
from tests.factories import TEST_CONFIG
from tests.pg_support import fresh_database as _fresh_database

ROOT = pathlib.Path(__file__).resolve().parent.parent

HOLD = """
import sys, time
from app import create_app
from db.jobs import job_lock
app = create_app({"SANDBOX_WORKER": False, "SECRET_KEY": "k", "SANDBOX_WEBHOOK_SECRET": "w",
                  "DATABASE_URL": sys.argv[1]})
with job_lock(sys.argv[2]):
    print("held", flush=True)
    time.sleep(60)
"""


def _flask(database_url, *args):
    env = {**os.environ, "DATABASE_URL": database_url, "SMTP_URL": "console", "SANDBOX_WEBHOOK_SECRET": "w",
           "SECRET_KEY": "k"}
    return subprocess.run([sys.executable, "-m", "flask", "--app", "app", *args], env=env, capture_output=True,
                          text=True, timeout=60, cwd=ROOT)


def _holder(database_url, name):
    proc = subprocess.Popen([sys.executable, "-c", HOLD, database_url, name], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert proc.stdout.readline().strip() == "held"
    return proc


def _lock_tests(database_url):
    # Another process holds send-mail's lock: a cron run of send-mail does nothing and exits 75.
    holder = _holder(database_url, "send-mail")
    try:
        busy = _flask(database_url, "send-mail")
        assert busy.returncode == EXIT_BUSY, busy.stdout + busy.stderr
        assert "in progress" in busy.stderr
        assert "sent" not in busy.stdout
        # Locks are per job: another job still runs.
        other = _flask(database_url, "autopay", "--quiet")
        assert other.returncode == 0, other.stdout + other.stderr
        # In this process too, while the other one holds it.
        with pytest.raises(JobBusy):
            with job_lock("send-mail"):
                pass
    finally:
        # A run that dies without cleaning up (kill -9) leaves no lock behind.
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)
        holder.stdout.close()
    deadline = time.time() + 10
    while True:
        try:
            with job_lock("send-mail"):
                break
        except JobBusy:
            assert time.time() < deadline, "the lock outlived the process that held it"
            time.sleep(0.1)
    done = _flask(database_url, "send-mail")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "sent 0 email(s)" in done.stdout


def test_a_second_run_of_a_cron_job_does_nothing_while_the_first_holds_its_lock(app, database_url):
    database.close()
    _lock_tests(database_url)


def test_a_lock_is_free_again_after_the_with_block_and_names_are_checked(app):
    with job_lock("autopay"):
        with pytest.raises(JobBusy):
            with job_lock("autopay"):
                pass
    with job_lock("autopay"):
        pass
    with pytest.raises(ValueError):
        job_lock("../etc/passwd")


def test_an_autopay_dry_run_does_not_need_the_lock(app, database_url):
    database.close()
    holder = _holder(database_url, "autopay")
    try:
        dry = _flask(database_url, "autopay", "--dry-run")
        assert dry.returncode == 0, dry.stdout + dry.stderr
        real = _flask(database_url, "autopay")
        assert real.returncode == EXIT_BUSY
    finally:
        holder.kill()
        holder.wait(10)
        holder.stdout.close()


@pytest.fixture
def pg_app(pg_server):
    url = _fresh_database(pg_server)
    create_app({**TEST_CONFIG, "DATABASE_URL": url})
    migrate.upgrade()
    Isp.create(name="Test ISP")
    database.close()
    yield url
    database.close()


@pytest.mark.postgres
def test_jobs_run_once_across_hosts_sharing_one_postgresql(pg_app):
    """On PostgreSQL the lock is an advisory lock: every host that shares the database sees it."""
    _lock_tests(pg_app)
