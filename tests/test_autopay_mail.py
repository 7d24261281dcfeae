"""Payment and autopay email: queued with each event, sent over real SMTP, kept while SMTP is down."""
import datetime as dt
import email
import email.policy
import socket

import pytest

from billing import autopay, mail, payments
from db.models import Outbox, utcnow
from tests.factories import make_customer, make_invoice
from tests.test_autopay import AUTHENTICATE, NO_FUNDS, enrolled, save_account

TODAY = dt.date.today()
BILLING = {"name": "Pat Payer", "street": "1 Main St", "city": "Austin", "state": "TX", "zip": "78701",
           "email": "pat@example.test", "phone": "512-555-0100"}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def smtp_server():
    """A real SMTP server on loopback (aiosmtpd) that keeps what it receives."""
    from aiosmtpd.controller import Controller

    class Inbox:
        def __init__(self):
            self.messages = []

        async def handle_DATA(self, server, session, envelope):
            self.messages.append((envelope.rcpt_tos, email.message_from_bytes(envelope.content,
                                                                                policy=email.policy.default)))
            return "250 OK"

    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    inbox.url = f"smtp://127.0.0.1:{port}"
    yield inbox
    controller.stop()


def ach_payment(customer, processor, account):
    payment = payments.start_payment(customer.id, amount_text="40.00", method_type="ach",
                                     idempotency_key=payments.new_idempotency_key())
    payment = payments.confirm_billing(payment, BILLING, processor)
    state, errors = processor.confirm_ach(payment.processor_ref, "Pat Payer", "110000000", account, "checking", "1")
    assert not errors
    return payments.apply_intent_state(payment.id, state)


def kinds():
    return [o.kind for o in Outbox.select().order_by(Outbox.id)]


def test_ach_pending_settled_and_failed_emails_come_with_the_moves(app):
    processor = app.extensions["processor"]
    customer = make_customer()
    make_invoice(customer, 8000)
    good = ach_payment(customer, processor, "000123456789")
    assert good.status == payments.PROCESSING and kinds() == ["ach_pending"]
    bad = ach_payment(customer, processor, "000111111116")
    processor.settle(force=True)
    payments.sync(good, processor)
    payments.sync(bad, processor)
    payments.sync(bad, processor)  # applied twice: still one email
    assert sorted(kinds()) == ["ach_failed", "ach_pending", "ach_pending", "ach_settled"]
    failed = Outbox.get(Outbox.kind == "ach_failed")
    assert failed.to_addr == "pat@example.test" and "R03" in failed.text_body and bad.ref in failed.text_body
    assert "<p>" in failed.html_body and "<img" not in failed.html_body


def test_outbox_is_sent_over_smtp_and_nothing_is_lost_while_smtp_is_down(app, runner, smtp_server):
    processor = app.extensions["processor"]
    paid, _ = enrolled(processor)
    declined, _ = enrolled(processor, NO_FUNDS)
    asked, _ = enrolled(processor, AUTHENTICATE)
    charged_invoice = make_invoice(paid, 4000, due=TODAY).number
    for c in (declined, asked):
        make_invoice(c, 4000, due=TODAY)
    summary = autopay.run(processor, echo=lambda line: None)
    assert (summary.charged, summary.failed) == (1, 2)
    queued = list(Outbox.select().where(Outbox.sent_at.is_null()))
    assert sorted(o.kind for o in queued) == ["autopay_charged", "autopay_failed", "autopay_failed"]

    app.config["SMTP_URL"] = f"smtp://127.0.0.1:{free_port()}"  # nothing listens there
    down = runner.invoke(args=["send-mail"])
    assert down.exit_code == 1 and "sent 0 email(s); 3 failed" in down.output
    rows = list(Outbox.select())
    assert all(r.sent_at is None and r.attempts == 1 and r.last_error for r in rows)
    assert all(r.next_attempt_at > utcnow() for r in rows)  # backed off, not dropped

    app.config["SMTP_URL"] = smtp_server.url
    assert runner.invoke(args=["send-mail"]).output.startswith("sent 0 email(s)")  # not due yet
    sent, failed = mail.send_pending(smtp_server.url, "billing@isp.example", now=utcnow() + dt.timedelta(hours=1))
    assert (sent, failed) == (3, 0)
    assert all(r.sent_at is not None for r in Outbox.select())
    assert mail.send_pending(smtp_server.url, "billing@isp.example", now=utcnow() + dt.timedelta(hours=2)) == (0, 0)

    got = {tuple(rcpt): msg for rcpt, msg in smtp_server.messages}
    assert set(got) == {(paid.email,), (declined.email,), (asked.email,)}
    charged = got[(paid.email,)]
    assert charged["Subject"] == f"Test ISP: Autopay paid {charged_invoice}"
    assert charged["From"] == "billing@isp.example"
    assert {p.get_content_type() for p in charged.walk()} >= {"text/plain", "text/html"}
    assert "/invoices/" in got[(declined.email,)].get_body(("plain",)).get_content()
    assert "/payments/PAY-" in got[(asked.email,)].get_body(("plain",)).get_content()


def test_a_failure_and_its_email_commit_together_or_not_at_all(app, monkeypatch):
    processor = app.extensions["processor"]
    customer, _ = enrolled(processor, NO_FUNDS)
    make_invoice(customer, 4000, due=TODAY)

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(mail, "enqueue", broken)
    lines = []
    summary = autopay.run(processor, echo=lines.append)
    assert summary.errors == 1 and any("disk full" in x for x in lines)
    charge = autopay.AutopayCharge.get()
    assert charge.status == autopay.CHARGING and charge.payment.status == payments.AWAITING_DETAILS
    assert Outbox.select().count() == 0  # neither the failure nor its email was committed

    monkeypatch.undo()
    autopay.resume_interrupted(processor, autopay.RunSummary(), lambda line: None, older_than=dt.timedelta(0))
    charge = autopay.AutopayCharge.get()
    assert (charge.status, charge.reason_code) == (autopay.FAILED, "insufficient_funds")
    assert Outbox.get(Outbox.kind == "autopay_failed").dedupe_key == f"autopay-failed-{charge.id}"


def test_an_account_saved_for_autopay_is_charged_by_ach(app):
    processor = app.extensions["processor"]
    customer = make_customer()
    account = save_account(customer, processor)
    autopay.turn_on(customer.id, account.id, accepted=True)
    make_invoice(customer, 4000, due=TODAY)
    assert autopay.run(processor, echo=lambda line: None).processing == 1
    assert kinds() == ["ach_pending"]
