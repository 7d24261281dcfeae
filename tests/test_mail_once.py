"""Mail goes out once: each outbox row is claimed before it is sent; permanent refusals stop the retries.

A real SMTP server (aiosmtpd) that answers slowly, and real separate processes sending from one outbox,
on SQLite and on PostgreSQL.
"""
import asyncio
import datetime as dt
import email
import email.policy
import os
import subprocess
import sys
import threading

import pytest

from billing import mail
from db import write_tx
from db.models import Outbox, utcnow
from tests.factories import TEST_CONFIG
from tests.live_support import ROOT, live_db  # noqa: F401 - a fixture
from tests.test_autopay_mail import free_port

SENDER = "billing@isp.example"


class SlowInbox:
    """Keeps every message it accepts; each DATA takes ``delay`` seconds; some recipients are refused."""

    def __init__(self, delay=0.05, refuse=None):
        self.delay = delay
        self.refuse = refuse or {}
        self.messages = []
        self.lock = threading.Lock()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        await asyncio.sleep(self.delay)
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self.lock:
            self.messages.append(msg)
        return "250 OK"


@pytest.fixture
def slow_smtp():
    from aiosmtpd.controller import Controller

    inbox = SlowInbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    inbox.url = f"smtp://127.0.0.1:{port}"
    yield inbox
    controller.stop()


def _queue(n, prefix="note"):
    for i in range(n):
        mail.enqueue(f"{prefix}{i}@example.test", f"Message {prefix} {i}", f"Body {i}", kind="test",
                     dedupe_key=f"{prefix}-{i}")


def _env(database_url, smtp_url):
    return {**os.environ, "DATABASE_URL": database_url, "SECRET_KEY": TEST_CONFIG["SECRET_KEY"],
            "SANDBOX_WEBHOOK_SECRET": TEST_CONFIG["SANDBOX_WEBHOOK_SECRET"], "SANDBOX_WORKER": "false",
            "SMTP_URL": smtp_url, "MAIL_FROM": SENDER}


SEND = ("import sys; from app import create_app; from billing import mail; app = create_app(); "
        "print(mail.send_pending(app.config['SMTP_URL'], app.config['MAIL_FROM']))")


def test_two_senders_at_once_against_a_slow_smtp_server_deliver_each_email_once(live_db, slow_smtp):
    url, _ = live_db
    Outbox.delete().execute()  # only this test's messages
    _queue(20)
    # Two separate processes drain the same outbox at the same time (as two hosts would, or a run that
    # overlaps the next one): send_pending itself, not the cron lock of the send-mail command.
    env = _env(url, slow_smtp.url)
    procs = [subprocess.Popen([sys.executable, "-c", SEND], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    subjects = sorted(m["Subject"] for m in slow_smtp.messages)
    print(f"\ntwo senders: {len(subjects)} delivered for 20 queued; runs said {[o[0].strip() for o in outs]}")
    assert subjects == sorted(f"Message note {i}" for i in range(20))
    rows = list(Outbox.select())
    assert all(r.status == mail.SENT and r.sent_at and r.attempts == 1 for r in rows)
    assert sum(eval(o[0].strip())[0] for o in outs) == 20  # noqa: S307 - our own printed tuple


def test_two_send_mail_commands_at_once_deliver_each_email_once(live_db, slow_smtp):
    url, _ = live_db
    Outbox.delete().execute()
    _queue(10, "cron")
    env = _env(url, slow_smtp.url)
    flask = os.path.join(os.path.dirname(sys.executable), "flask")
    procs = [subprocess.Popen([flask, "--app", "app", "send-mail"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for p in procs:
        p.communicate(timeout=120)
    assert sorted(m["Subject"] for m in slow_smtp.messages) == sorted(f"Message cron {i}" for i in range(10))


def test_a_permanent_refusal_is_marked_failed_and_never_retried(app, slow_smtp):
    slow_smtp.refuse = {"gone@example.test": "550 5.1.1 No such user here",
                        "busy@example.test": "451 4.3.0 Try again later"}
    mail.enqueue("gone@example.test", "Refused for good", "x", dedupe_key="gone")
    mail.enqueue("busy@example.test", "Refused for now", "x", dedupe_key="busy")
    mail.enqueue("fine@example.test", "Delivered", "x", dedupe_key="fine")
    assert mail.send_pending(slow_smtp.url, SENDER) == (1, 2)
    gone = Outbox.get(Outbox.dedupe_key == "gone")
    busy = Outbox.get(Outbox.dedupe_key == "busy")
    assert gone.status == mail.FAILED and "550" in gone.reason and "No such user" in gone.reason
    assert busy.status == mail.QUEUED and busy.reason == "" and "451" in busy.last_error
    # Much later: the temporary one is tried again, the permanent one never.
    later = utcnow() + dt.timedelta(days=1)
    slow_smtp.refuse = {}
    assert mail.send_pending(slow_smtp.url, SENDER, now=later) == (1, 0)
    assert Outbox.get_by_id(gone.id).attempts == 1 and Outbox.get_by_id(gone.id).status == mail.FAILED
    assert Outbox.get_by_id(busy.id).status == mail.SENT
    assert sorted(m["Subject"] for m in slow_smtp.messages) == ["Delivered", "Refused for now"]


def test_a_message_that_can_never_be_built_fails_once_and_sends_nothing(app, slow_smtp):
    with write_tx():  # a line break in a header-bound field, from before names were checked at the edge
        Outbox.create(to_addr="pat@example.test", subject="Hello\r\nBcc: everyone@example.test", text_body="x",
                      dedupe_key="broken")
    assert mail.send_pending(slow_smtp.url, SENDER) == (0, 1)
    row = Outbox.get(Outbox.dedupe_key == "broken")
    assert row.status == mail.FAILED and "cannot build the message" in row.reason
    assert mail.send_pending(slow_smtp.url, SENDER, now=utcnow() + dt.timedelta(days=1)) == (0, 0)
    assert slow_smtp.messages == []


def test_a_claim_left_by_a_run_that_died_is_taken_again_after_it_runs_out(app, slow_smtp):
    mail.enqueue("pat@example.test", "Left mid-send", "x", dedupe_key="left")
    row = Outbox.get(Outbox.dedupe_key == "left")
    assert mail.claim(row.id, "dead-run")
    assert mail.send_pending(slow_smtp.url, SENDER) == (0, 0)  # still claimed: nobody else sends it
    assert mail.send_pending(slow_smtp.url, SENDER, now=utcnow() + mail.CLAIM_FOR + dt.timedelta(seconds=1)) == (1, 0)
    assert [m["Subject"] for m in slow_smtp.messages] == ["Left mid-send"]
