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
"""
import datetime as dt
import hashlib
import io
import secrets
from dataclasses import dataclass

import pyotp
import segno

from billing import accounts, throttle
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


@dataclass(frozen=True)
class Setup:
    """A secret waiting for its first code: what the set-up page shows."""

    secret: str
    uri: str
    svg: str


def _row(user_id):
    return TwoFactor.get_or_none(TwoFactor.user == user_id)


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
            TwoFactor.create(user=user_id, secret=secret)
        else:
            TwoFactor.update(secret=secret, last_step=0).where(
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
    return setup_for(User.get_by_id(user_id), row.secret)


def _normal(code):
    return "".join(ch for ch in (code or "") if ch.isalnum()).upper()


def _matching_step(secret, code, now):
    """The time step whose code this is (current one or one either side), or None."""
    code = _normal(code)
    if len(code) != DIGITS or not code.isdigit():
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
    step = _matching_step(row.secret, code, now)
    if step is None:
        with write_tx():
            accounts.audit(f"user:{user_id}", "2fa.failed", "user", user_id)
        return None
    with write_tx():
        if not TwoFactor.update(enabled_at=utcnow(), last_step=step).where(
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
        step = _matching_step(row.secret, code, now)
        ok = False
        how = "totp"
        if step is not None:
            # Guarded: only a step later than the last one used moves it, so a replay (or a racing twin) fails.
            ok = bool(TwoFactor.update(last_step=step).where(
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
