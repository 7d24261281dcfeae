"""How long the portal keeps what it records about logins, and the cron job that drops the rest.

The payment trail (payments, ledger rows, their audit entries, receipts sent) is the ISP's accounting record
and is never dropped here. What is dropped is what only guarded logins:

- throttle counters idle for over an hour (they start from zero then anyway);
- login sessions past their idle or absolute timeout (they no longer log anyone in);
- emailed links (invites, sign-up, reset, email change) used or expired over ``TOKEN_DAYS`` ago;
- the audit rows of logins and second-factor checks older than ``login_days`` (``LOGIN_AUDIT_DAYS``, a year
  by default): long enough for a customer or the ISP to look back at who logged in, short enough not to keep
  everyone's addresses and browsers for good.

Each kind is deleted in batches of ``BATCH`` rows, one short write transaction each, so the job never holds
the write lock long enough to slow a payment.
"""
import datetime as dt

from billing import identity, throttle
from db import write_tx
from db.models import AccountToken, AuditLog, LoginSession, Throttle, utcnow

LOGIN_AUDIT_DAYS = 365
TOKEN_DAYS = 30
BATCH = 5000
LOGIN_ACTIONS = ("login.succeeded", "login.failed")
LOGIN_ACTION_PREFIXES = ("2fa.failed", "2fa.locked", "2fa.passed.")


def _in_batches(model, condition):
    total = 0
    while True:
        with write_tx():
            ids = [r.id for r in model.select(model.id).where(condition).limit(BATCH)]
            if ids:
                model.delete().where(model.id.in_(ids)).execute()
        total += len(ids)
        if len(ids) < BATCH:
            return total


def purge(login_days=LOGIN_AUDIT_DAYS, now=None):
    """Drop what is kept past its time; returns {kind: rows deleted}."""
    now = now or utcnow()
    login_rows = AuditLog.action.in_(LOGIN_ACTIONS)
    for prefix in LOGIN_ACTION_PREFIXES:
        login_rows |= AuditLog.action.startswith(prefix)
    return {
        "throttle counters": _in_batches(Throttle, Throttle.last_failure_at < now - throttle.QUIET),
        "ended sessions": _in_batches(LoginSession, (LoginSession.created_at < now - identity.SESSION_MAX)
                                      | (LoginSession.last_seen_at < now - identity.SESSION_IDLE)),
        "old links": _in_batches(AccountToken, (AccountToken.expires_at < now - dt.timedelta(days=TOKEN_DAYS))
                                 | (AccountToken.used_at < now - dt.timedelta(days=TOKEN_DAYS))),
        "login audit rows": _in_batches(AuditLog, login_rows & (AuditLog.at < now - dt.timedelta(days=login_days))),
    }
