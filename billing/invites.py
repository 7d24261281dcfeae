"""Invites, self sign-up and password reset: single-use, expiring emailed links, stored hashed.

None of the public requests (sign-up, reset) reveals whether an account or email
exists: each does the same work in one write transaction (an audit row, and the
token and email only when there is someone to send them to) and the caller shows
the same answer either way.
"""
import datetime as dt
import hashlib
import secrets

from peewee import fn
from zxcvbn import zxcvbn

from billing import accounts, identity, mail
from billing.language import speaker_for
from billing.words import N_
from billing.imports import bulk_insert
from db import write_tx
from db.models import AccountToken, Customer, Isp, LoginSession, Outbox, User, utcnow

INVITE, SIGNUP, RESET = "invite", "signup", "reset"
LIFETIME = {INVITE: dt.timedelta(days=14), SIGNUP: dt.timedelta(days=2), RESET: dt.timedelta(hours=2)}
MIN_PASSWORD = 10
# At most this many sign-up, reset or invite emails per account (or customer) an hour, so neither the public
# forms nor a staff button pressed again and again can flood an inbox.
HOURLY_EMAILS = 3
DEFAULT_INVITE_SUBJECT = N_("Your {isp} customer portal is ready")
DEFAULT_INVITE_TEXT = N_(
    "Hello {name},\n\n"
    "{isp} now has an online customer portal where you can see your bills and pay them by card or bank "
    "account.\n\n"
    "Set your password to get started (this link works once and expires in 14 days):\n{link}\n\n"
    "Your account number is {account_number}."
)


class TokenError(Exception):
    """A link that is unknown, used or expired; str() is the message for people."""


class PasswordError(ValueError):
    """A password that cannot be accepted: {field: message}."""

    def __init__(self, errors):
        super().__init__(errors)
        self.errors = errors


def _hash(token):
    return hashlib.sha256(token.encode()).hexdigest()


def _new_token(kind, email, actor, customer_id=None, user_id=None, now=None, lifetime=None):
    token = secrets.token_urlsafe(32)
    now = now or utcnow()
    AccountToken.create(kind=kind, token_hash=_hash(token), customer=customer_id, user=user_id, email=email,
                        created_by=actor, created_at=now, expires_at=now + (lifetime or LIFETIME[kind]))
    return token


def _fill(template, **values):
    """str.format for staff-written text, leaving unknown {braces} alone."""
    class Safe(dict):
        def __missing__(self, key):
            return "{" + key + "}"
    try:
        return template.format_map(Safe(values))
    except (ValueError, IndexError):
        return template


def invite_email(isp, customer, link):
    """(subject, text) of the invitation, from the ISP's settings (the default words in the customer's language;
    what staff wrote, as they wrote it)."""
    sp = speaker_for(customer, isp)
    values = dict(isp=isp.name, name=customer.name, account_number=customer.account_number, link=link)
    subject = _fill(isp.invite_subject or sp.gettext(DEFAULT_INVITE_SUBJECT), **values)
    text = _fill(isp.invite_text or sp.gettext(DEFAULT_INVITE_TEXT), **values)
    if link not in text:  # the link must be there whatever the staff wrote
        text += "\n\n" + sp.say("Set your password: %(link)s", link=link)
    return subject, text


def can_invite(customer):
    """Why a customer cannot be invited, or '' when they can."""
    if not customer.email:
        return "has no email address on file"
    if User.select().where(User.customer == customer.id).exists():
        return "already has a login"
    return ""


def invite(customer_id, link_for, actor="staff"):
    """Email one customer an invite; returns the token (for tests and the outbox) or raises ValueError."""
    with write_tx():
        customer = Customer.get_by_id(customer_id)
        why = can_invite(customer)
        if why:
            raise ValueError(f"{customer.name} {why}.")
        accounts.lock_customer(customer.id)  # two staff clicking at once count as two
        if _recent(INVITE, AccountToken.customer == customer.id) >= HOURLY_EMAILS:
            raise ValueError(f"{customer.name} was sent {HOURLY_EMAILS} invites in the last hour. Wait an hour "
                             "before sending another, so their inbox is not flooded.")
        token = _new_token(INVITE, customer.email, actor, customer_id=customer.id)
        subject, text = invite_email(Isp.current() or Isp(name="Customer Portal"), customer, link_for(token))
        mail.enqueue(customer.email, subject, text, kind="invite")
        accounts.audit(actor, "invite.sent", "customer", customer.id, email=customer.email)
    return token


def not_yet_invited():
    """Customers with an email, no login and no invite ever sent."""
    invited = AccountToken.select(AccountToken.customer).where(
        (AccountToken.kind == INVITE) & AccountToken.customer.is_null(False))
    has_login = User.select(User.customer).where(User.customer.is_null(False))
    return (Customer.select().where((Customer.email != "") & Customer.id.not_in(invited)
                                    & Customer.id.not_in(has_login)).order_by(Customer.id))


def invite_all(link_for, actor="staff"):
    """Invite every customer not yet invited; returns how many were invited."""
    isp = Isp.current() or Isp(name="Customer Portal")
    now = utcnow()
    tokens, emails = [], []
    # One transaction and two bulk inserts: 10,000 invites take seconds, not minutes.
    with write_tx():
        for customer in not_yet_invited().iterator():
            token = secrets.token_urlsafe(32)
            tokens.append((INVITE, _hash(token), customer.id, customer.email, actor, now, now + LIFETIME[INVITE]))
            subject, text = invite_email(isp, customer, link_for(token))
            emails.append((customer.email, subject, text, mail.simple_html(text), "invite", now, now))
        bulk_insert(AccountToken, ("kind", "token_hash", "customer", "email", "created_by", "created_at",
                                   "expires_at"), tokens)
        bulk_insert(Outbox, ("to_addr", "subject", "text_body", "html_body", "kind", "created_at",
                             "next_attempt_at"), emails)
        if tokens:
            accounts.audit(actor, "invite.sent_all", "customer", "*", count=len(tokens))
    return len(tokens)


def _recent(kind, who):
    since = utcnow() - dt.timedelta(hours=1)
    return AccountToken.select().where((AccountToken.kind == kind) & who & (AccountToken.created_at > since)).count()


def request_signup(account_number, zip_code, email, link_for):
    """Self sign-up: email a verification link when account number and ZIP match and nobody has a login yet."""
    email = (email or "").strip().lower()
    account_number = (account_number or "").strip()
    zip5 = (zip_code or "").strip()[:5]
    with write_tx():
        customer = Customer.get_or_none(Customer.account_number == account_number) if account_number else None
        ok = (customer is not None and zip5 and customer.zip[:5] == zip5
              and not User.select().where(User.customer == customer.id).exists()
              and User.by_email(email) is None)
        accounts.audit("public", "signup.requested", "customer", "*")
        if not ok or _recent(SIGNUP, AccountToken.customer == customer.id) >= HOURLY_EMAILS:
            return None
        token = _new_token(SIGNUP, email, "public", customer_id=customer.id)
        isp = Isp.current() or Isp(name="Customer Portal")
        sp = speaker_for(customer, isp)
        mail.enqueue(email, sp.say("Confirm your email for the %(isp)s customer portal", isp=isp.name),
                     sp.say("Hello %(name)s,", name=customer.name) + "\n\n"
                     + sp.say("Follow this link to confirm your email address and set your password (it works once "
                              "and expires in 2 days):") + f"\n{link_for(token)}\n\n"
                     + sp.say("If you did not ask for this, ignore this email."), kind="signup")
    return token


def request_reset(email, link_for):
    """Password reset: email a link when a login has this address; the same work either way."""
    email = (email or "").strip().lower()
    with write_tx():
        user = User.by_email(email) if email else None
        accounts.audit("public", "reset.requested", "user", "*")
        if user is None or _recent(RESET, AccountToken.user == user.id) >= HOURLY_EMAILS:
            return None
        token = _new_token(RESET, user.email, "public", user_id=user.id)
        isp = Isp.current() or Isp(name="Customer Portal")
        sp = speaker_for(user.customer if user.customer_id else None, isp)  # staff: the ISP's default
        mail.enqueue(user.email, sp.say("Reset your %(isp)s portal password", isp=isp.name),
                     sp.say("Follow this link to choose a new password (it works once and expires in 2 hours):")
                     + f"\n{link_for(token)}\n\n"
                     + sp.say("If you did not ask for this, ignore this email; your password has not changed."),
                     kind="reset")
    return token


def find(token, kinds, now=None):
    """The live AccountToken for a link, or TokenError with the reason."""
    # Looked up by its SHA-256: the database never compares against a secret it holds.
    row = AccountToken.get_or_none(AccountToken.token_hash == _hash(token or "")) if token else None
    if row is None or row.kind not in kinds:
        raise TokenError("This link is not valid. Ask for a new one.")
    if row.used_at is not None:
        raise TokenError("This link has already been used. Log in, or ask for a new link.")
    if (now or utcnow()) >= row.expires_at:
        raise TokenError("This link has expired. Ask for a new one.")
    return row


# zxcvbn's score (0-4) a new password needs: 3 is "safely unguessable" against an online attack that the
# throttle (billing/throttle.py) already slows to 25 guesses an hour, and refuses the common passwords,
# keyboard walks and words-plus-digits ("password12") in its bundled frequency lists.
MIN_STRENGTH = 3


def check_password(password, confirm, hints=()):
    """Raise PasswordError unless the new password is acceptable (long enough, not common, confirmed).

    Never truncated: at most 200 characters are accepted whole, and longer ones are refused before
    hashing, so Argon2 never sees an attacker's megabyte.
    """
    errors = {}
    if len(password or "") < MIN_PASSWORD:
        errors["password"] = f"Use at least {MIN_PASSWORD} characters."
    elif len(password) > 200:
        errors["password"] = "Use at most 200 characters."
    elif zxcvbn(password, user_inputs=[h for h in hints if h])["score"] < MIN_STRENGTH:
        errors["password"] = ("That password is too common or easy to guess. Try a few unrelated words "
                              "together, like a short sentence only you would write.")
    elif password != confirm:
        errors["confirm"] = "The two passwords do not match."
    if errors:
        raise PasswordError(errors)


def accept(token, password, confirm, now=None):
    """Use an invite, sign-up or reset link to set a password; returns the User to log in."""
    check_password(password, confirm)
    row = find(token, (INVITE, SIGNUP, RESET), now)
    hashed = identity.hash_password(password)
    with write_tx():
        used = (AccountToken.update(used_at=utcnow())
                .where((AccountToken.id == row.id) & AccountToken.used_at.is_null()).execute())
        if not used:
            raise TokenError("This link has already been used. Log in, or ask for a new link.")
        if row.kind == RESET:
            user = User.get_by_id(row.user_id)
            User.update(password_hash=hashed).where(User.id == user.id).execute()
            LoginSession.delete().where(LoginSession.user == user.id).execute()
            accounts.audit(f"{user.role}:{user.id}", "password.reset", "user", user.id)
            return user
        user = User.get_or_none(User.customer == row.customer_id)
        if user is not None:
            raise TokenError("This account already has a login. Log in, or reset your password.")
        if User.by_email(row.email) is not None:
            raise TokenError("That email address already has a login. Log in, or reset your password.")
        user = User.create(email=row.email, password_hash=hashed, role="customer", customer=row.customer_id)
        # Other invites for this customer are spent too.
        AccountToken.update(used_at=utcnow()).where(
            (AccountToken.customer == row.customer_id) & AccountToken.used_at.is_null()).execute()
        accounts.audit(f"customer:{user.id}", f"{row.kind}.accepted", "customer", row.customer_id)
        return user


def tokens_for(customer_id):
    """A customer's invite and sign-up links, newest first (for staff)."""
    return list(AccountToken.select().where(AccountToken.customer == customer_id)
                .order_by(AccountToken.created_at.desc(), AccountToken.id.desc()))


def invited_count():
    """How many customers have ever been sent an invite."""
    return (AccountToken.select(fn.COUNT(fn.DISTINCT(AccountToken.customer)))
            .where(AccountToken.kind == INVITE).scalar())


def change_password(user, current, password, confirm, keep_token, ip=""):
    """The signed-in user's new password: asks the current one (throttled), checks the new one, and ends
    every other session of theirs in the same breath. Raises PasswordError (or identity's Throttled)."""
    if not identity.check_password(user, current, ip):
        raise PasswordError({"current": "That is not your current password."})
    check_password(password, confirm, hints=(user.email, user.email.split("@")[0]))
    with write_tx():
        User.update(password_hash=identity.hash_password(password)).where(User.id == user.id).execute()
        accounts.audit(f"{user.role}:{user.id}", "password.changed", "user", user.id, ip=ip)
    identity.end_other_sessions(user.id, keep_token=keep_token)
