"""Email through an outbox: queued inside the transaction that causes it, sent later, never lost.

``enqueue`` is called inside the caller's ``write_tx()``, so an email exists
exactly when the event it reports was committed. ``send_pending`` (the
``send-mail`` command, for cron) delivers what is due and retries failures
with back-off; a failed send stays in the outbox.

Each row moves queued -> sending -> sent (or back to queued with a later
``next_attempt_at``, or to failed). A run *claims* a row with a guarded UPDATE
before it sends it, so overlapping runs, or runs on two hosts, send each email
once. A claim lasts CLAIM_FOR: a run that died mid-send leaves its row to be
sent again after that (at-least-once for a crash inside the SMTP exchange;
exactly once otherwise). A permanent refusal (an SMTP 5xx) or a message that
can never be built (a line break in a header) is marked failed with the reason
and never retried; so is a row that kept failing for MAX_ATTEMPTS tries.

SMTP_URL: ``smtp://user:pass@host:port`` (STARTTLS when the server offers it),
``smtps://...`` (TLS), ``console`` (print, the development default) or
``file:///path/to/dir`` (one .eml file per message).
"""
import datetime as dt
import email.message
import email.utils
import html
import re
import pathlib
import smtplib
import ssl
from urllib.parse import unquote, urlsplit

import secrets

from peewee import IntegrityError

from db import write_tx
from db.models import Outbox, utcnow

MAX_BACKOFF = dt.timedelta(hours=6)
CLAIM_FOR = dt.timedelta(minutes=15)
MAX_ATTEMPTS = 12  # about three days of back-off
QUEUED, SENDING, SENT, FAILED = "queued", "sending", "sent", "failed"


class Permanent(Exception):
    """This message can never be delivered as it is: do not retry it."""


def enqueue(to_addr, subject, text_body, html_body="", kind="", dedupe_key=None):
    """Queue one email; with a ``dedupe_key`` a second enqueue of the same key is a no-op."""
    try:
        with write_tx():
            return Outbox.create(to_addr=to_addr, subject=subject, text_body=text_body,
                                 html_body=html_body or simple_html(text_body), kind=kind, dedupe_key=dedupe_key)
    except IntegrityError:
        if dedupe_key is None:
            raise
        return Outbox.get(Outbox.dedupe_key == dedupe_key)


_URL = re.compile(r"https?://(?:(?!&quot;|&#x27;|&lt;|&gt;)[^\s<>\"'])+")
_TRAILING = ".,;:!?)"  # sentence punctuation after a link is not part of it


def _linked(escaped):
    """Escaped text with each http(s) address made a working link (the address stays the link's text)."""
    def link(m):
        url = m.group(0)
        tail = ""
        while url and url[-1] in _TRAILING:
            url, tail = url[:-1], url[-1] + tail
        return f'<a href="{url}">{url}</a>{tail}'

    return _URL.sub(link, escaped)


def simple_html(text_body):
    """The HTML part for a plain-text email: paragraphs, line breaks, and links that work."""
    paras = [_linked(html.escape(p)).replace("\n", "<br>") for p in text_body.strip().split("\n\n")]
    return "<!doctype html><html><body>" + "".join(f"<p>{p}</p>" for p in paras) + "</body></html>"


def _message(row, sender):
    msg = email.message.EmailMessage()
    msg["From"] = sender
    msg["To"] = row.to_addr
    msg["Subject"] = row.subject
    msg["Date"] = email.utils.formatdate(localtime=False)
    msg["Message-ID"] = email.utils.make_msgid(idstring=f"outbox{row.id}")
    msg.set_content(row.text_body)
    if row.html_body:
        msg.add_alternative(row.html_body, subtype="html")
    return msg


class _Transport:
    """Delivers messages for one SMTP_URL."""

    def __init__(self, url, out=print):
        self.url = url or "console"
        self.out = out
        self.conn = None

    def send(self, msg):
        parts = urlsplit(self.url)
        if self.url == "console":
            self.out(msg.as_string())
        elif parts.scheme == "file":
            folder = pathlib.Path(unquote(parts.path))
            folder.mkdir(parents=True, exist_ok=True)
            name = msg["Message-ID"].strip("<>").replace("/", "_")
            (folder / f"{name}.eml").write_bytes(msg.as_bytes())
        elif parts.scheme in ("smtp", "smtps"):
            if self.conn is None:
                self.conn = self._connect(parts)
            self.conn.send_message(msg)
        else:
            raise ValueError("SMTP_URL must be smtp://, smtps://, file:// or console")

    def _connect(self, parts):
        port = parts.port or (465 if parts.scheme == "smtps" else 25)
        if parts.scheme == "smtps":
            conn = smtplib.SMTP_SSL(parts.hostname, port, timeout=20, context=ssl.create_default_context())
        else:
            conn = smtplib.SMTP(parts.hostname, port, timeout=20)
            conn.ehlo()
            if conn.has_extn("starttls"):
                conn.starttls(context=ssl.create_default_context())
                conn.ehlo()
        if parts.username:
            conn.login(unquote(parts.username), unquote(parts.password or ""))
        return conn

    def close(self):
        if self.conn is not None:
            try:
                self.conn.quit()
            except smtplib.SMTPException:
                pass


def _due(now):
    """Rows a run may claim now: queued and due, or sending under a claim that ran out (its run died)."""
    return (((Outbox.status == QUEUED) & (Outbox.next_attempt_at <= now))
            | ((Outbox.status == SENDING) & (Outbox.claimed_until < now)))


def claim(row_id, run_id, now=None):
    """Take one row for this run; True for the one run that got it."""
    now = now or utcnow()
    with write_tx():
        return bool(Outbox.update(status=SENDING, claimed_by=run_id, claimed_until=now + CLAIM_FOR,
                                  attempts=Outbox.attempts + 1)
                    .where((Outbox.id == row_id) & _due(now)).execute())


def _finish(row_id, run_id, **fields):
    with write_tx():
        Outbox.update(claimed_until=None, **fields).where(
            (Outbox.id == row_id) & (Outbox.claimed_by == run_id) & (Outbox.status == SENDING)).execute()


def permanent_error(error):
    """The refusal's text when an SMTP error is permanent (a 5xx for every recipient), else ""."""
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in error.recipients.values()]
        if codes and all(500 <= code < 600 for code in codes):
            return "; ".join(f"{addr}: {code} {_text(msg)}" for addr, (code, msg) in error.recipients.items())
        return ""
    code = getattr(error, "smtp_code", 0)
    if isinstance(error, smtplib.SMTPResponseException) and 500 <= code < 600:
        return f"{code} {_text(error.smtp_error)}"
    return ""


def _text(value):
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def send_pending(smtp_url, sender, limit=500, now=None, out=print):
    """Send due emails, each claimed first; return (sent, failed). Temporary failures are retried later."""
    now = now or utcnow()
    run_id = secrets.token_hex(8)
    due = [row.id for row in Outbox.select(Outbox.id).where(_due(now)).order_by(Outbox.id).limit(limit)]
    transport = _Transport(smtp_url, out)
    sent = failed = 0
    try:
        for row_id in due:
            if not claim(row_id, run_id, now):
                continue  # another run has it, or sent it meanwhile
            row = Outbox.get_by_id(row_id)
            try:
                try:
                    msg = _message(row, sender)
                except (ValueError, TypeError) as e:  # e.g. a line break in a header: it can never be built
                    raise Permanent(f"cannot build the message: {e}") from None
                transport.send(msg)
            except Permanent as e:
                failed += 1
                _finish(row_id, run_id, status=FAILED, reason=str(e)[:250], last_error=str(e)[:250])
                continue
            except (OSError, smtplib.SMTPException, ValueError) as e:
                failed += 1
                refusal = permanent_error(e)
                if not isinstance(e, smtplib.SMTPResponseException | smtplib.SMTPRecipientsRefused):
                    transport.conn = None  # the connection is gone; a refusal leaves it usable
                if refusal:
                    _finish(row_id, run_id, status=FAILED, reason=f"refused: {refusal}"[:250],
                            last_error=refusal[:250])
                elif row.attempts >= MAX_ATTEMPTS:
                    _finish(row_id, run_id, status=FAILED, last_error=str(e)[:250],
                            reason=f"gave up after {row.attempts} attempts: {e}"[:250])
                else:
                    backoff = min(dt.timedelta(minutes=2 ** (row.attempts - 1)), MAX_BACKOFF)
                    _finish(row_id, run_id, status=QUEUED, last_error=str(e)[:250], next_attempt_at=now + backoff)
                continue
            sent += 1
            _finish(row_id, run_id, status=SENT, sent_at=utcnow(), last_error="")
    finally:
        transport.close()
    return sent, failed
