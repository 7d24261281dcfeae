"""Optional two-factor login: TOTP (RFC 6238, 30-second steps, 6 digits) with pyotp, and one-time recovery codes.

- Turning it on: ``begin`` keeps a fresh secret unconfirmed; ``confirm`` turns it on only with a correct
  code from the customer's app and returns ten recovery codes, shown once and stored as SHA-256 hashes
  (each has about 74 bits of randomness, so a fast hash is enough: there is nothing to guess).
- Logging in: ``verify`` accepts a code from the current step or one step either side (clock drift), and
  records the step it used with a guarded UPDATE, so the same code (or an older one) cannot be used again
  in its window, even by two requests racing. A recovery code works once (a guarded UPDATE on ``used_at``).
- Throttling, as for passwords (billing/throttle.py): every code is counted, before it is checked, under
  this login's key and the client address's key, in the database that every worker shares; past a few free
  tries each one makes the key wait 1, 2, 4, ... seconds (``CODE``: at most 15 minutes), never a lockout,
  so an attacker cannot lock the owner out. The owner's usual browser (the signed "known device" cookie)
  skips the delays, as it does for the password; a right code clears the login's count.
- The QR code is drawn as SVG here (segno), so the secret never leaves the portal for a QR service.
- The secret is stored sealed (billing.sealed: AES-GCM under a key derived from SECRET_KEY, bound to the
  login), in ``sealed_secret``; the database alone never yields it. A legacy plain value in ``secret``
  (written before migration 0191) is still read, and is sealed by ``db-upgrade`` (``reseal_all``) or at
  the login's next right code, which also re-seals a value still under a SECRET_KEY_FALLBACKS key. A value
  no configured key opens fails cleanly: no TOTP code matches it (and it is logged); recovery codes,
  stored as hashes, still work.
"""
import datetime as dt
import hashlib
import io
import logging
import secrets
from dataclasses import dataclass

import pyotp
import segno

from billing import accounts, sealed, throttle
from db import write_tx
from db.models import RecoveryCode, TwoFactor, User, utcnow

STEP_SECONDS = 30
DIGITS = 6
DRIFT_STEPS = 1
RECOVERY_CODES = 10
_RECOVERY_ALPHABET = "ACDEFGHJKMNPQRTUVWXY34679"  # as billing.receipts: no 0/O, 1/I/L and other look-alikes
_RECOVERY_LENGTH = 16
# The password's growing delays, with a longer cap: a code is 6 digits (3 right ones at a time, with the
# drift), so it needs fewer guesses an hour than a password does (SECURITY.md has the figures).
CODE = throttle.Policy(free=5, max_delay=900)
PURPOSE = "totp"
Throttled = throttle.Throttled  # raised when a key must wait: its ``seconds`` and ``message()``
SEAL_PURPOSE = "two_factor.secret"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Setup:
    """A secret waiting for its first code: what the set-up page shows."""

    secret: str
    uri: str
    svg: str


def _row(user_id):
    return TwoFactor.get_or_none(TwoFactor.user == user_id)


def _sealed_fields(user_id, secret):
    """The columns that store ``secret`` for this login: sealed, with no plain copy left."""
    return {"sealed_secret": sealed.seal(SEAL_PURPOSE, secret, f"user:{user_id}"), "secret": ""}


def _secret_of(row):
    """(the row's TOTP secret or None, whether it should be sealed again with the current key)."""
    if row.sealed_secret:
        try:
            secret, current = sealed.unseal(SEAL_PURPOSE, row.sealed_secret, f"user:{row.user_id}")
        except sealed.SealError as e:
            log.warning("two-factor secret of user %s cannot be opened: %s", row.user_id, e)
            return None, False
        return secret, not current
    if row.secret:  # a legacy plain value, from before secrets were sealed
        return row.secret, True
    return None, False


def reseal_all():
    """Seal every legacy plain secret, and re-seal those under a fallback key, with the current key.

    Returns (sealed, unreadable): how many were written, and how many no configured key opens (left alone).
    """
    done = unreadable = 0
    for row in TwoFactor.select().order_by(TwoFactor.id):
        secret, stale = _secret_of(row)
        if secret is None:
            unreadable += bool(row.sealed_secret or row.secret)
            continue
        if not stale:
            continue
        with write_tx():
            done += TwoFactor.update(**_sealed_fields(row.user_id, secret)).where(
                (TwoFactor.id == row.id) & (TwoFactor.secret == row.secret)
                & (TwoFactor.sealed_secret == row.sealed_secret)).execute()
    return done, unreadable


def enabled(user_id):
    """True when the user logs in with a second factor."""
    row = _row(user_id)
    return bool(row and row.enabled_at)


def _issuer():
    from db.models import Isp

    return (Isp.current() or Isp(name="Customer Portal")).name


def qr_svg(uri):
    """The otpauth:// URI as a small inline SVG QR code (no external service)."""
    buf = io.BytesIO()
    segno.make(uri, error="m").save(buf, kind="svg", scale=4, border=2, xmldecl=False, svgns=True,
                                    title="QR code for your authenticator app", dark="#000", light="#fff")
    return buf.getvalue().decode()


def begin(user_id):
    """A fresh secret for the user, not yet on (an unconfirmed earlier one is replaced); returns the Setup."""
    user = User.get_by_id(user_id)
    secret = pyotp.random_base32(length=32)
    with write_tx():
        row = _row(user_id)
        if row is not None and row.enabled_at:
            raise ValueError("two-factor login is already on")
        if row is None:
            TwoFactor.create(user=user_id, **_sealed_fields(user_id, secret))
        else:
            TwoFactor.update(last_step=0, **_sealed_fields(user_id, secret)).where(
                TwoFactor.id == row.id).execute()
    return setup_for(user, secret)


def setup_for(user, secret):
    """What the set-up page shows for an unconfirmed secret."""
    uri = pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS).provisioning_uri(
        name=user.email, issuer_name=_issuer())
    return Setup(secret=secret, uri=uri, svg=qr_svg(uri))


def pending(user_id):
    """The unconfirmed secret's Setup, or None."""
    row = _row(user_id)
    if row is None or row.enabled_at:
        return None
    secret, _stale = _secret_of(row)
    return setup_for(User.get_by_id(user_id), secret) if secret else None


def _normal(code):
    return "".join(ch for ch in (code or "") if ch.isalnum()).upper()


def _matching_step(secret, code, now):
    """The time step whose code this is (current one or one either side), or None (also with no secret)."""
    code = _normal(code)
    if not secret or len(code) != DIGITS or not code.isdigit():
        return None
    totp = pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS)
    current = int(now.timestamp()) // STEP_SECONDS
    for step in range(current - DRIFT_STEPS, current + DRIFT_STEPS + 1):
        if secrets.compare_digest(totp.generate_otp(step), code):
            return step
    return None


def _count(user_id, ip, known_device_user, now):
    """Count one code against the login and the address (Throttled if either must wait).

    The owner's known device is exempt, as for the password: an attack from elsewhere cannot slow them.
    """
    if known_device_user is not None and known_device_user == user_id:
        return
    throttle.attempt([(throttle.account_key(PURPOSE, user_id), CODE),
                      (throttle.address_key(PURPOSE, ip), throttle.ADDRESS)], now=now.replace(tzinfo=None))


def _cleared(user_id):
    throttle.clear(throttle.account_key(PURPOSE, user_id))


def _now(now):
    return (now or dt.datetime.now(dt.timezone.utc)).astimezone(dt.timezone.utc)


def confirm(user_id, code, now=None, ip="", known_device_user=None):
    """Turn two-factor login on with the first code from the app; returns the recovery codes (shown once).

    None when the code is wrong; Throttled (counting nothing) while this login or address must wait.
    """
    now = _now(now)
    row = _row(user_id)
    if row is None or row.enabled_at:
        return None
    _count(user_id, ip, known_device_user, now)
    secret, stale = _secret_of(row)
    step = _matching_step(secret, code, now)
    if step is None:
        with write_tx():
            accounts.audit(f"user:{user_id}", "2fa.failed", "user", user_id)
        return None
    reseal = _sealed_fields(user_id, secret) if stale else {}
    with write_tx():
        if not TwoFactor.update(enabled_at=utcnow(), last_step=step, **reseal).where(
                (TwoFactor.id == row.id) & TwoFactor.enabled_at.is_null()).execute():
            return None  # confirmed meanwhile (a double submit): its codes were shown to that request
        codes = _new_recovery_codes(user_id)
        accounts.audit(f"user:{user_id}", "2fa.enabled", "user", user_id)
    _cleared(user_id)
    return codes


def _hash(code):
    return hashlib.sha256(_normal(code).encode()).hexdigest()


def _new_recovery_codes(user_id):
    """Replace the user's recovery codes with fresh ones; returns them formatted (call inside write_tx)."""
    RecoveryCode.delete().where(RecoveryCode.user == user_id).execute()
    codes = ["".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(_RECOVERY_LENGTH))
             for _ in range(RECOVERY_CODES)]
    for code in codes:
        RecoveryCode.create(user=user_id, code_hash=_hash(code))
    return ["-".join(code[i:i + 4] for i in range(0, _RECOVERY_LENGTH, 4)) for code in codes]


def regenerate_recovery_codes(user_id):
    """New recovery codes (the old ones stop working); returns them, to be shown once."""
    with write_tx():
        codes = _new_recovery_codes(user_id)
        accounts.audit(f"user:{user_id}", "2fa.recovery_regenerated", "user", user_id)
    return codes


def recovery_left(user_id):
    """How many unused recovery codes the user has."""
    return RecoveryCode.select().where((RecoveryCode.user == user_id) & RecoveryCode.used_at.is_null()).count()


def verify(user_id, code, now=None, ip="", known_device_user=None):
    """True for a right TOTP code not used before, or an unused recovery code (then used up).

    Every code is counted first (billing.throttle, per login and per address): Throttled, checking
    nothing, while either must wait. A code that is right but already used counts as wrong.
    """
    now = _now(now)
    row = _row(user_id)
    if row is None or not row.enabled_at:
        return False
    _count(user_id, ip, known_device_user, now)
    with write_tx():
        row = _row(user_id)
        if row is None or not row.enabled_at:  # turned off meanwhile
            return False
        secret, stale = _secret_of(row)
        step = _matching_step(secret, code, now)
        ok = False
        how = "totp"
        if step is not None:
            # A legacy plain secret, or one under a fallback key, is sealed with the current key as it is used.
            reseal = _sealed_fields(user_id, secret) if stale else {}
            # Guarded: only a step later than the last one used moves it, so a replay (or a racing twin) fails.
            ok = bool(TwoFactor.update(last_step=step, **reseal).where(
                (TwoFactor.id == row.id) & (TwoFactor.last_step < step)).execute())
        elif len(_normal(code)) == _RECOVERY_LENGTH:
            how = "recovery"
            ok = bool(RecoveryCode.update(used_at=utcnow()).where(
                (RecoveryCode.user == user_id) & (RecoveryCode.code_hash == _hash(code))
                & RecoveryCode.used_at.is_null()).execute())
        accounts.audit(f"user:{user_id}", f"2fa.passed.{how}" if ok else "2fa.failed", "user", user_id)
    if ok:
        _cleared(user_id)
    return ok


def disable(user_id, actor):
    """Turn two-factor login off and forget its secret and recovery codes."""
    with write_tx():
        TwoFactor.delete().where(TwoFactor.user == user_id).execute()
        RecoveryCode.delete().where(RecoveryCode.user == user_id).execute()
        accounts.audit(actor, "2fa.disabled", "user", user_id)
