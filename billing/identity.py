"""Logins: password hashing, sessions that logout really ends, and demo-safe lookups."""
import hashlib
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from billing import accounts
from db import write_tx
from db.models import LoginSession, User, utcnow

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


def open_session(user):
    """Start a server-side login session; return the token for the cookie."""
    token = secrets.token_urlsafe(32)
    with write_tx():
        LoginSession.create(token=_token_hash(token), user=user.id)
        accounts.audit(f"{user.role}:{user.id}", "login", "user", user.id)
    return token


def session_user(token):
    """The User behind a session token, or None once it has been closed."""
    if not token:
        return None
    row = (LoginSession.select(LoginSession, User).join(User)
           .where((LoginSession.token == _token_hash(token)) & User.disabled_at.is_null()).first())
    return row.user if row else None


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
