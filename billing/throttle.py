"""Throttling of password guesses and of the public forms that send email: growing delays, not lockouts.

Every password check (login, the password asked again before removing a method or turning autopay on) and
every public request that sends an email (sign-up, reset) is counted under keys such as "this account" and
"this client address". The counters live in the database, so every worker and every host shares them.

The policy is a short, growing wait rather than a hard lock, so that an attacker cannot lock a customer out
by guessing on purpose:

- a key's first ``free`` attempts are not delayed; after that each one makes the key wait
  1, 2, 4, … seconds, at most ``max_delay``;
- a key forgets its count after ``QUIET`` without a failure, and on a successful login (the account's key);
- the customer's usual browser carries a signed "known device" cookie (views/auth.py) that exempts it from
  its own account's and address's delays, so an attack on the account does not stop its owner. That browser
  is counted under a key of its own instead (``DEVICE``), so whoever holds it (a shared or stolen computer)
  still cannot guess that account's password quickly.

At most ``guesses_per_hour(policy)`` guesses an hour reach one account (see SECURITY.md for the figures).
The attempt is counted *before* the password is checked, inside one write transaction, so parallel requests
cannot all slip through before the first failure is written; a success then clears it.
"""
import datetime as dt
import hashlib
import ipaddress
from dataclasses import dataclass

from billing.words import N_
from db import is_postgres, write_tx
from db.models import Throttle, utcnow

QUIET = dt.timedelta(hours=1)


@dataclass(frozen=True)
class Policy:
    free: int  # attempts allowed before any wait
    max_delay: int  # seconds: the longest wait one attempt can cause


ACCOUNT = Policy(free=5, max_delay=300)
ADDRESS = Policy(free=20, max_delay=60)  # higher: many customers can share one address (CGNAT, an office)
MAIL = Policy(free=5, max_delay=120)  # sign-up and reset requests from one address
DEVICE = Policy(free=10, max_delay=60)  # the account's own usual browser: more room for typos, never unlimited


class Throttled(Exception):
    """Refused: wait ``seconds`` before trying again."""

    def __init__(self, seconds):
        super().__init__(seconds)
        self.seconds = max(int(seconds) + 1, 1)

    def message(self):
        """What to tell the person waiting."""
        if self.seconds < 120:
            return N_("Too many attempts. Please wait %(seconds)s seconds and try again.", seconds=self.seconds)
        return N_("Too many attempts. Please wait %(minutes)s minutes and try again.",
                  minutes=(self.seconds + 59) // 60)


def _digest(text):
    return hashlib.sha256(text.strip().lower().encode("utf-8", "replace")).hexdigest()[:32]


def account_key(purpose, identity):
    """The key for one account (an email or a user id), stored as a hash."""
    return f"{purpose}:account:{_digest(str(identity))}"


def address_key(purpose, ip):
    """The key for one client address; an IPv6 client counts by its /64, which one household holds."""
    try:
        addr = ipaddress.ip_address(ip or "")
        if addr.version == 6 and not addr.ipv4_mapped:
            ip = str(ipaddress.ip_network(f"{addr}/64", strict=False))
        elif addr.version == 6:
            ip = str(addr.ipv4_mapped)
    except ValueError:
        ip = "unknown"
    return f"{purpose}:address:{_digest(ip)}"


def delay(policy, failures):
    """Seconds a key waits after its ``failures``-th attempt."""
    over = failures - policy.free
    return 0 if over <= 0 else min(2 ** min(over - 1, 30), policy.max_delay)


def _row(key, now):
    Throttle.insert(key=key, failures=0, last_failure_at=now, blocked_until=now).on_conflict_ignore().execute()
    q = Throttle.select().where(Throttle.key == key)
    return (q.for_update() if is_postgres() else q).get()


def attempt(keys, now=None):
    """Count one attempt against each (key, policy); raise Throttled, counting nothing, if any must wait."""
    now = now or utcnow()
    with write_tx():
        rows = [(_row(key, now), policy) for key, policy in keys]
        waits = [(row.blocked_until - now).total_seconds() for row, _p in rows if row.blocked_until > now]
        if waits:
            raise Throttled(max(waits))
        for row, policy in rows:
            failures = 1 if now - row.last_failure_at > QUIET else row.failures + 1
            Throttle.update(failures=failures, last_failure_at=now,
                            blocked_until=now + dt.timedelta(seconds=delay(policy, failures))
                            ).where(Throttle.id == row.id).execute()


def clear(key):
    """Forget a key's attempts (after a successful login, for the account's key)."""
    with write_tx():
        Throttle.delete().where(Throttle.key == key).execute()


def guesses_per_hour(policy):
    """The most attempts one key can make in an hour when each is made the moment the wait ends."""
    t, n = 0.0, 0
    while True:
        n += 1
        t += delay(policy, n)
        if t >= 3600:
            return n


def purge(older_than=QUIET):
    """Drop counters idle for longer than ``older_than``; returns how many."""
    with write_tx():
        return Throttle.delete().where(Throttle.last_failure_at < utcnow() - older_than).execute()
