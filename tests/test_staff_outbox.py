"""The staff outbox page against a real SMTP server (aiosmtpd): queued, sent and failed emails with the
reason, Resend, and the staff home's warning when send-mail is not running."""
import datetime as dt

from billing import mail
from db import write_tx
from db.models import AuditLog, Outbox, utcnow
from tests.staff_support import clerk  # noqa: F401
from tests.test_mail_once import slow_smtp  # noqa: F401

SENDER = "billing@isp.example.test"


def test_failed_emails_show_why_and_resend_queues_them_again_once(app, clerk, slow_smtp):
    slow_smtp.refuse = {"gone@example.test": "550 5.1.1 No such user here"}
    mail.enqueue("gone@example.test", "Invite to the portal", "x", kind="invite", dedupe_key="gone")
    mail.enqueue("fine@example.test", "Payment received", "x", kind="payment_receipt", dedupe_key="fine")
    assert mail.send_pending(slow_smtp.url, SENDER) == (1, 1)
    page = clerk.get("/staff/outbox?status=failed").get_data(as_text=True)
    listed = page.split('id="outbox"')[1].split("</table>")[0]
    assert "Invite to the portal" in listed and "550 5.1.1 No such user here" in listed
    assert "Payment received" not in listed and "Failed (1)" in page and "Sent (1)" in page
    gone = Outbox.get(Outbox.dedupe_key == "gone")
    key = page.split(f'action="/staff/outbox/{gone.id}/resend"')[1].split('name="key" value="')[1].split('"')[0]
    assert clerk.post(f"/staff/outbox/{gone.id}/resend", {"key": key}).status_code == 303
    assert clerk.post(f"/staff/outbox/{gone.id}/resend", {"key": key}).status_code == 303  # a double click
    gone = Outbox.get_by_id(gone.id)
    assert (gone.status, gone.reason, gone.attempts) == ("queued", "", 0)
    assert Outbox.select().count() == 2
    assert AuditLog.select().where(AuditLog.action == "email.requeued").count() == 1
    slow_smtp.refuse = {}  # the address was fixed at the mail server
    assert mail.send_pending(slow_smtp.url, SENDER) == (1, 0)
    assert sorted(m["To"] for m in slow_smtp.messages) == ["fine@example.test", "gone@example.test"]


def test_resending_a_sent_email_queues_one_copy(app, clerk, slow_smtp):
    mail.enqueue("ana@example.test", "Payment received", "Reference PAY-1", kind="payment_receipt", dedupe_key="r1")
    mail.send_pending(slow_smtp.url, SENDER)
    row = Outbox.get(Outbox.dedupe_key == "r1")
    form = {"key": "resend-key-0123456789"}
    assert clerk.post(f"/staff/outbox/{row.id}/resend", form).status_code == 303
    assert clerk.post(f"/staff/outbox/{row.id}/resend", form).status_code == 303
    copies = list(Outbox.select().where(Outbox.id != row.id))
    assert len(copies) == 1 and copies[0].status == "queued" and copies[0].text_body == "Reference PAY-1"
    assert "Email queued again" in clerk.get("/staff/outbox?resent=1").get_data(as_text=True)
    mail.send_pending(slow_smtp.url, SENDER)
    assert [m["Subject"] for m in slow_smtp.messages] == ["Payment received", "Payment received"]
    queued = Outbox.create(to_addr="x@example.test", subject="Waiting", text_body="x")
    assert clerk.post(f"/staff/outbox/{queued.id}/resend", {"key": "other-key-0123456789"}).status_code == 303
    assert Outbox.select().where(Outbox.subject == "Waiting").count() == 1  # still waiting: left as it is
    assert clerk.post(f"/staff/outbox/{queued.id}/resend", {"key": "bad"}).status_code == 422
    assert clerk.post("/staff/outbox/99999/resend", {"key": "other-key-0123456789"}).status_code == 404


def test_the_staff_home_says_when_the_outbox_is_not_being_drained(app, clerk, slow_smtp):
    assert 'id="outbox-stale"' not in clerk.get("/staff/").get_data(as_text=True)
    row = mail.enqueue("late@example.test", "Your invite", "x", kind="invite")
    with write_tx():  # due 20 minutes ago, and nobody sent it
        Outbox.update(next_attempt_at=utcnow() - dt.timedelta(minutes=20)).where(Outbox.id == row.id).execute()
    home = clerk.get("/staff/").get_data(as_text=True)
    assert 'id="outbox-stale"' in home and "Your invite to late@example.test" in home and "send-mail" in home
    # An email waiting for its retry is being handled: no warning for it.
    with write_tx():
        Outbox.update(next_attempt_at=utcnow() + dt.timedelta(minutes=30), last_error="451 busy").where(
            Outbox.id == row.id).execute()
    assert 'id="outbox-stale"' not in clerk.get("/staff/").get_data(as_text=True)
    with write_tx():
        Outbox.update(next_attempt_at=utcnow() - dt.timedelta(minutes=20)).where(Outbox.id == row.id).execute()
    mail.send_pending(slow_smtp.url, SENDER)
    assert 'id="outbox-stale"' not in clerk.get("/staff/").get_data(as_text=True)
