"""Email through an outbox: queued inside the transaction that causes it, sent later, never lost.

``enqueue`` is called inside the caller's ``write_tx()``, so an email exists
exactly when the event it reports was committed. ``send_pending`` (the
``send-mail`` command, for cron) delivers what is due and retries failures
with back-off; a failed send stays in the outbox.

SMTP_URL: ``smtp://user:pass@host:port`` (STARTTLS when the server offers it),
``smtps://...`` (TLS), ``console`` (print, the development default) or
``file:///path/to/dir`` (one .eml file per message).
"""
import datetime as dt
import email.message
import email.utils
import html
import pathlib
import smtplib
import ssl
from urllib.parse import unquote, urlsplit

from peewee import IntegrityError

from db import write_tx
from db.models import Outbox, utcnow

MAX_BACKOFF = dt.timedelta(hours=6)


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


def simple_html(text_body):
    """Light HTML for a plain-text body: paragraphs, no images, no styles to download."""
    paras = [html.escape(p).replace("\n", "<br>") for p in text_body.strip().split("\n\n")]
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


def send_pending(smtp_url, sender, limit=500, now=None, out=print):
    """Send due emails; return (sent, failed). Failures are kept and retried later."""
    now = now or utcnow()
    due = list(Outbox.select().where(Outbox.sent_at.is_null() & (Outbox.next_attempt_at <= now))
               .order_by(Outbox.id).limit(limit))
    transport = _Transport(smtp_url, out)
    sent = failed = 0
    try:
        for row in due:
            try:
                transport.send(_message(row, sender))
            except (OSError, smtplib.SMTPException, ValueError) as e:
                failed += 1
                transport.conn = None
                backoff = min(dt.timedelta(minutes=2 ** row.attempts), MAX_BACKOFF)
                with write_tx():
                    Outbox.update(attempts=Outbox.attempts + 1, last_error=str(e)[:250],
                                  next_attempt_at=now + backoff).where(Outbox.id == row.id).execute()
                continue
            sent += 1
            with write_tx():
                Outbox.update(sent_at=utcnow(), attempts=Outbox.attempts + 1, last_error="").where(
                    Outbox.id == row.id).execute()
    finally:
        transport.close()
    return sent, failed
