"""The outbox as staff see it: what is queued, sent or failed (and why), resending, and whether it drains.

Sending belongs to billing.mail (``send-mail`` from cron). This module only reads the rows and, for a
resend, puts a failed row back in the queue (a guarded move from failed) or queues a copy of a sent one,
once per resend form (its key is the copy's UNIQUE dedupe key).
"""
import datetime as dt
import re

from peewee import fn

from billing import accounts, mail
from billing.errors import FormErrors
from db import pages, write_tx
from db.models import Outbox, utcnow

STATUSES = (mail.QUEUED, mail.SENDING, mail.SENT, mail.FAILED)
LABELS = {mail.QUEUED: "Queued", mail.SENDING: "Sending", mail.SENT: "Sent", mail.FAILED: "Failed"}
_KEY = re.compile(r"^[A-Za-z0-9_-]{16,64}$")


def counts():
    """How many emails are in each state."""
    found = dict(Outbox.select(Outbox.status, fn.COUNT(Outbox.id)).group_by(Outbox.status).tuples())
    return {s: found.get(s, 0) for s in STATUSES}


def rows(status=None, page=1, per_page=50):
    """One page (db.pages.Page) of emails, newest first, optionally in one state."""
    q = Outbox.select().order_by(Outbox.id.desc())
    if status in STATUSES:
        q = q.where(Outbox.status == status)
    return pages.paginate(q, page, per_page)


def stale(minutes, now=None):
    """The oldest email that has been due for more than ``minutes`` and is still queued, or None.

    One that waits for its retry (``next_attempt_at`` ahead) does not count: something is sending, and
    failing. A due email left this long means ``send-mail`` is not running.
    """
    now = now or utcnow()
    return (Outbox.select().where((Outbox.status == mail.QUEUED)
                                  & (Outbox.next_attempt_at < now - dt.timedelta(minutes=minutes)))
            .order_by(Outbox.next_attempt_at).first())


def resend(row_id, key, actor):
    """Send an email again: a failed one goes back in the queue, a sent one is queued as a copy (once per
    ``key``); one still waiting is left as it is. Returns the row that will be sent."""
    if not _KEY.match(key or ""):
        raise FormErrors({"form": "This form has expired. Reload the page and try again."})
    with write_tx():
        row = Outbox.get_or_none(Outbox.id == row_id)
        if row is None:
            raise LookupError(row_id)
        copy = Outbox.get_or_none(Outbox.dedupe_key == f"resend:{key}")
        if copy is not None:  # the same resend posted twice
            return copy
        if row.status == mail.FAILED:
            if Outbox.update(status=mail.QUEUED, next_attempt_at=utcnow(), attempts=0, reason="", claimed_by="",
                             claimed_until=None).where((Outbox.id == row.id) & (Outbox.status == mail.FAILED)).execute():
                accounts.audit(actor, "email.requeued", "outbox", row.id, to=row.to_addr, subject=row.subject,
                               was=row.reason[:100])
            return Outbox.get_by_id(row.id)
        if row.status != mail.SENT:  # queued or sending already (e.g. the failed one, resent a moment ago)
            return row
        copy = mail.enqueue(row.to_addr, row.subject, row.text_body, html_body=row.html_body, kind=row.kind,
                            dedupe_key=f"resend:{key}")
        accounts.audit(actor, "email.resent", "outbox", row.id, to=row.to_addr, subject=row.subject, copy=copy.id)
        return copy
