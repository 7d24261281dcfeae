"""Logins: password hashing, sessions that logout really ends, and demo-safe lookups."""
import datetime as dt
import hashlib
import json
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from peewee import JOIN

from billing import accounts, throttle
from db import write_tx
from db.compiled import Arg, Compiled
from db.models import AuditLog, Customer, LoginSession, User, utcnow

_hasher = PasswordHasher()


def configure(time_cost=None, memory_cost=None):
    """Set Argon2id cost (tests use a cheap one)."""
    global _hasher, _DUMMY_HASH
    kwargs = {}
    if time_cost:
        kwargs["time_cost"] = time_cost
    if memory_cost:
        kwargs["memory_cost"] = memory_cost
    _hasher = PasswordHasher(**kwargs)
    _DUMMY_HASH = _hasher.hash(secrets.token_hex(16))


_DUMMY_HASH = _hasher.hash("not-a-password")


def hash_password(password):
    """An Argon2id hash of the password."""
    return _hasher.hash(password)


def _token_hash(token):
    return hashlib.sha256(token.encode()).hexdigest()


def authenticate(email, password):
    """The User for these credentials, or None; takes as long for unknown emails."""
    user = User.by_email(email or "")
    try:
        _hasher.verify(user.password_hash if user else _DUMMY_HASH, password or "")
    except (VerificationError, InvalidHashError):
        return None
    if user is None or user.disabled_at is not None:
        return None
    if _hasher.check_needs_rehash(user.password_hash):
        with write_tx():
            User.update(password_hash=_hasher.hash(password)).where(User.id == user.id).execute()
    return user


def password_login(email, password, ip="", user_agent="", known_device_user=None):
    """The User whose password this is, or None; throttled per account and per address (raises Throttled).

    Every outcome goes to the audit log with the address and browser. ``known_device_user`` is the user id
    from this browser's signed known-device cookie: that account's usual browser is not held up by an
    attack on it (see billing/throttle.py).
    """
    email = (email or "").strip().lower()[:255]
    known = User.by_email(email)
    if known is not None and known.id == known_device_user:
        # The account's usual browser: not held up by an attack from elsewhere, but counted on its own.
        account = throttle.account_key("login-device", email)
        throttle.attempt([(account, throttle.DEVICE)])
    else:
        account = throttle.account_key("login", email)
        throttle.attempt([(account, throttle.ACCOUNT), (throttle.address_key("login", ip), throttle.ADDRESS)])
    user = authenticate(email, password)
    if user is None:
        with write_tx():
            accounts.audit(f"ip:{ip}", "login.failed", "user", known.id if known else "",
                           ip=ip, user_agent=user_agent[:200], **({} if known else {"email": email[:100]}))
        return None
    throttle.clear(account)
    return user


def check_password(user, password, ip=""):
    """True if ``password`` is this user's; the re-entered password is throttled like a login (Throttled)."""
    throttle.attempt([(throttle.account_key("password", user.id), throttle.ACCOUNT),
                      (throttle.address_key("password", ip), throttle.ADDRESS)])
    ok = authenticate(user.email, password or "") is not None
    if ok:
        throttle.clear(throttle.account_key("password", user.id))
    return ok


def open_session(user, ip="", user_agent=""):
    """Start a server-side login session; return the token for the cookie."""
    token = secrets.token_urlsafe(32)
    with write_tx():
        LoginSession.create(token=_token_hash(token), user=user.id)
        accounts.audit(f"{user.role}:{user.id}", "login.succeeded", "user", user.id, ip=ip,
                       user_agent=user_agent[:200])
    return token


def recent_logins(user_id, limit=10):
    """The user's latest successful and failed logins, newest first: (at, succeeded, ip, browser)."""
    rows = (AuditLog.select().where((AuditLog.entity == "user") & (AuditLog.entity_id == str(user_id))
                                    & AuditLog.action.in_(("login.succeeded", "login.failed")))
            .order_by(AuditLog.id.desc()).limit(limit))
    out = []
    for row in rows:
        detail = json.loads(row.detail) if row.detail else {}
        out.append((row.at, row.action == "login.succeeded", detail.get("ip", ""), detail.get("user_agent", "")))
    return out


# Idle and absolute lifetimes of a login session, enforced here on the server (create_app sets them from
# SESSION_IDLE_MINUTES and SESSION_MAX_HOURS). last_seen_at is written at most once a TOUCH_EVERY, so the
# idle timeout costs no database write on most requests.
SESSION_IDLE = dt.timedelta(minutes=30)
SESSION_MAX = dt.timedelta(hours=12)
TOUCH_EVERY = dt.timedelta(minutes=1)


def configure_sessions(idle_minutes, max_hours):
    """Set the idle and absolute session timeouts."""
    global SESSION_IDLE, SESSION_MAX
    SESSION_IDLE = dt.timedelta(minutes=float(idle_minutes))
    SESSION_MAX = dt.timedelta(hours=float(max_hours))


_SESSION_USER = Compiled(lambda: (
    LoginSession.select(LoginSession, User, Customer).join(User)
    .join(Customer, JOIN.LEFT_OUTER, on=(User.customer == Customer.id))
    .where((LoginSession.token == Arg(0)) & User.disabled_at.is_null()
           & (LoginSession.created_at > Arg(1)) & (LoginSession.last_seen_at > Arg(2))).limit(1)))


def session_user(token, now=None):
    """The User behind a live session token, or None once it was closed, idle too long or is too old.

    One statement reads the session, its user and the user's customer (staff have none), so the page that
    follows needs no query for ``user.customer``. It runs on every request, so its SQL is compiled once.
    """
    if not token:
        return None
    now = now or utcnow()
    row = _SESSION_USER.first(_token_hash(token), now - SESSION_MAX, now - SESSION_IDLE)
    if row is None:
        return None
    if now - row.last_seen_at > TOUCH_EVERY:
        with write_tx():
            LoginSession.update(last_seen_at=now).where(LoginSession.id == row.id).execute()
    return row.user


def session_expires(token, now=None):
    """Seconds until this session's idle (or absolute) timeout, or 0 when it has none left."""
    row = LoginSession.get_or_none(LoginSession.token == _token_hash(token or ""))
    if row is None:
        return 0
    now = now or utcnow()
    end = min(row.last_seen_at + SESSION_IDLE, row.created_at + SESSION_MAX)
    return max(int((end - now).total_seconds()), 0)


def warning_seconds():
    """Seconds after a page is served by which its session may have gone idle (it was touched up to
    TOUCH_EVERY before): what the page's timeout warning counts down from."""
    idle = SESSION_IDLE.total_seconds()
    return idle - min(TOUCH_EVERY.total_seconds(), idle / 2)


def stay_signed_in(token):
    """Restart a live session's idle clock now (the "Stay signed in" button); seconds it now has, or 0."""
    with write_tx():
        LoginSession.update(last_seen_at=utcnow()).where(LoginSession.token == _token_hash(token or "")).execute()
    return session_expires(token)


def end_other_sessions(user_id, keep_token=None):
    """End every session of this user except ``keep_token``'s (after a password change)."""
    with write_tx():
        q = LoginSession.delete().where(LoginSession.user == user_id)
        if keep_token:
            q = q.where(LoginSession.token != _token_hash(keep_token))
        return q.execute()


def close_session(token):
    """End a login session so its cookie can never be used again."""
    with write_tx():
        LoginSession.delete().where(LoginSession.token == _token_hash(token)).execute()


def create_user(email, password, role="customer", customer_id=None, staff_role=None, name="", actor="system"):
    """Create a login for a customer or a staff member (a staff login is an owner unless told otherwise)."""
    if role == "staff":
        staff_role = staff_role or "owner"
    with write_tx():
        user = User.create(email=email.strip().lower(), password_hash=hash_password(password), role=role,
                           customer=customer_id, created_at=utcnow(), staff_role=staff_role or "", name=name)
        detail = {"role": role, **({"staff_role": staff_role} if staff_role else {})}
        accounts.audit(actor, "user.created", "user", user.id, **detail)
    return user


def set_login_disabled(user_id, disabled, actor):
    """Disable a login (its sessions end in the same transaction) or enable it again; True if it changed."""
    with write_tx():
        q = User.update(disabled_at=utcnow() if disabled else None).where(User.id == user_id)
        q = q.where(User.disabled_at.is_null() if disabled else User.disabled_at.is_null(False))
        changed = bool(q.execute())
        if disabled:
            LoginSession.delete().where(LoginSession.user == user_id).execute()
        if changed:
            accounts.audit(actor, "user.disabled" if disabled else "user.enabled", "user", user_id)
    return changed
