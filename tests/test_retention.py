"""`purge`: what only guarded logins goes once past its time; the payment trail is never touched."""
import datetime as dt

from billing import accounts, identity, retention, throttle
from db import write_tx
from db.models import AccountToken, AuditLog, LoginSession, Throttle, User, utcnow
from tests.factories import make_customer


def _old(days):
    return utcnow() - dt.timedelta(days=days)


def test_purge_drops_old_login_rows_and_keeps_everything_else(app, runner):
    c = make_customer()
    user = User.get(User.customer == c.id)
    live = identity.open_session(user)
    stale = identity.open_session(user)
    with write_tx():
        LoginSession.update(last_seen_at=utcnow() - identity.SESSION_IDLE - dt.timedelta(minutes=1)).where(
            LoginSession.token == identity._token_hash(stale)).execute()
        for action in ("login.succeeded", "login.failed", "2fa.failed", "2fa.passed.totp"):
            accounts.audit("x", action, "user", user.id)
        accounts.audit("x", "payment.succeeded", "payment", 1)
        accounts.audit("x", "login.succeeded", "user", user.id)  # the recent one stays
        recent_id = AuditLog.select().order_by(AuditLog.id.desc()).get().id
        AuditLog.update(at=_old(400)).where(AuditLog.id < recent_id).execute()
        for n, (created, used) in enumerate(((_old(40), _old(39)), (_old(2), _old(1)), (utcnow(), None))):
            AccountToken.create(kind="reset", token_hash=f"h{n}", user=user.id, email=c.email, created_by="t",
                                created_at=created, expires_at=created + dt.timedelta(hours=2), used_at=used)
    throttle.attempt([("old", throttle.ACCOUNT)], now=utcnow() - dt.timedelta(hours=2))
    throttle.attempt([("fresh", throttle.ACCOUNT)])

    result = runner.invoke(args=["purge"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == ("purged: 1 throttle counters, 1 ended sessions, 1 old links, "
                                     "6 login audit rows")  # 4 above and the 2 sessions opened
    assert identity.session_user(live) is not None
    assert [r.key for r in Throttle.select()] == ["fresh"]
    assert sorted(t.token_hash for t in AccountToken.select()) == ["h1", "h2"]
    left = sorted(r.action for r in AuditLog.select().where(AuditLog.action != "purge"))
    assert "payment.succeeded" in left  # the payment trail, however old, stays
    assert left.count("login.succeeded") == 1  # the recent login stays
    # A second run finds nothing more.
    assert runner.invoke(args=["purge"]).output.strip() == ("purged: 0 throttle counters, 0 ended sessions, "
                                                            "0 old links, 0 login audit rows")


def test_purge_works_in_batches_and_honours_the_setting(app, runner, monkeypatch):
    monkeypatch.setattr(retention, "BATCH", 7)
    with write_tx():
        for n in range(30):
            AuditLog.create(actor="ip:1", action="login.failed", entity="user", entity_id="1", at=_old(40 + n))
    app.config["LOGIN_AUDIT_DAYS"] = 50
    assert "20 login audit rows" in runner.invoke(args=["purge"]).output
    assert AuditLog.select().where(AuditLog.action == "login.failed").count() == 10
