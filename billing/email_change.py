"""Changing a login's email address: asked with the password, switched only once the new address is proven.

1. ``request_change`` checks the password (throttled like every password check), checks the new address and
   that no other login has it, and emails a single-use link to the *new* address. A newer request replaces
   an older one. Nothing changes yet, and at most ``HOURLY_EMAILS`` such emails go out an hour per login.
2. ``confirm_change`` uses that link: in one transaction the login (and the customer's contact address,
   when it was the same) switches, the link is spent, the change is audited, and the *old* address is told,
   so that someone who took over a session cannot quietly move the account to their own mailbox.
"""
import datetime as dt

from peewee import IntegrityError

from billing import accounts, identity, mail, validation
from billing.invites import PasswordError, TokenError, _hash, _new_token, find
from billing.language import speaker_for
from billing.words import N_
from db import write_tx
from db.models import AccountToken, Customer, Isp, User, utcnow

KIND = "email_change"
LIFETIME = dt.timedelta(hours=24)
HOURLY_EMAILS = 3


def pending(user_id, now=None):
    """The address a live change request of this login waits on, or ''."""
    now = now or utcnow()
    row = (AccountToken.select(AccountToken.email)
           .where((AccountToken.kind == KIND) & (AccountToken.user == user_id) & AccountToken.used_at.is_null()
                  & (AccountToken.expires_at > now))
           .order_by(AccountToken.id.desc()).first())
    return row.email if row else ""


def request_change(user, password, new_email, link_for, ip=""):
    """Email a confirmation link to ``new_email``; returns the token. Raises PasswordError ({field: message})
    or identity's Throttled."""
    new_email = validation.normal_email(new_email)
    errors = {}
    why = validation.email_error(new_email)
    if why:
        errors["email"] = why
    elif new_email == user.email:
        errors["email"] = N_("That is already your email address.")
    if not identity.check_password(user, password, ip):
        errors["password"] = N_("That is not your current password.")
    if errors:
        raise PasswordError(errors)
    now = utcnow()
    with write_tx():
        if User.by_email(new_email) is not None:
            # Said plainly: the person asking has just proven their password, so this reveals nothing
            # that the sign-up form's "already has a login" does not.
            raise PasswordError({"email": "Another login already uses that address."})
        recent = (AccountToken.select().where((AccountToken.kind == KIND) & (AccountToken.user == user.id)
                                              & (AccountToken.created_at > now - dt.timedelta(hours=1))).count())
        if recent >= HOURLY_EMAILS:
            raise PasswordError({"email": "We have sent several confirmation emails in the last hour. "
                                          "Please wait an hour, or use the link in the last one."})
        # A newer request replaces an older one: only the latest link can switch the address.
        (AccountToken.update(used_at=now)
         .where((AccountToken.kind == KIND) & (AccountToken.user == user.id) & AccountToken.used_at.is_null())
         .execute())
        token = _new_token(KIND, new_email, f"{user.role}:{user.id}", customer_id=user.customer_id,
                           user_id=user.id, now=now, lifetime=LIFETIME)
        isp = Isp.current() or Isp(name="Customer Portal")
        sp = _speaker(user, isp)
        mail.enqueue(new_email, sp.say("Confirm your new email for the %(isp)s portal", isp=isp.name),
                     sp.say("Someone asked to use this address to log in to the %(isp)s customer portal, instead "
                            "of %(email)s.", isp=isp.name, email=user.email) + "\n\n"
                     + sp.say("If it was you, follow this link to confirm (it works once and expires in 24 hours):")
                     + f"\n{link_for(token)}\n\n"
                     + sp.say("If it was not you, ignore this email; nothing has changed."), kind="email_change")
        accounts.audit(f"{user.role}:{user.id}", "email_change.requested", "user", user.id, ip=ip,
                       new_email=new_email)
    return token


def _speaker(user, isp):
    """The language of the login's customer (staff: the ISP's default)."""
    return speaker_for(user.customer if user.customer_id else None, isp)


def find_link(token, now=None):
    """The live change request behind a link, or TokenError with the reason."""
    return find(token, (KIND,), now)


def confirm_change(token, ip="", now=None):
    """Switch the login to the address its link was sent to; returns the User. Raises TokenError."""
    row = find_link(token, now)
    try:
        return _switch(token, row, ip)
    except IntegrityError:
        # Two logins confirming the same new address at once on PostgreSQL: both passed the check below
        # before either committed, and the UNIQUE email index refused the second. Nothing was written.
        raise TokenError("Another login already uses that address, so it cannot be yours as well.") from None


def _switch(token, row, ip):
    with write_tx():
        spent = (AccountToken.update(used_at=utcnow())
                 .where((AccountToken.token_hash == _hash(token)) & AccountToken.used_at.is_null()).execute())
        if not spent:
            raise TokenError("This link has already been used. Log in, or ask for a new link.")
        user = User.get_or_none(User.id == row.user_id)
        if user is None or user.disabled_at is not None:
            raise TokenError("This link is not valid. Ask for a new one.")
        if User.by_email(row.email) is not None:
            raise TokenError("Another login already uses that address, so it cannot be yours as well.")
        old = user.email
        User.update(email=row.email).where(User.id == user.id).execute()
        if user.customer_id:
            # The customer's contact address follows the login when it was the same one.
            (Customer.update(email=row.email)
             .where((Customer.id == user.customer_id) & (Customer.email == old)).execute())
        accounts.audit(f"{user.role}:{user.id}", "email.changed", "user", user.id, ip=ip, old_email=old,
                       new_email=row.email)
        isp = Isp.current() or Isp(name="Customer Portal")
        sp = _speaker(user, isp)
        mail.enqueue(old, sp.say("Your %(isp)s portal email was changed", isp=isp.name),
                     sp.say("The email address for your %(isp)s customer portal login was changed from %(old)s to "
                            "%(new)s. From now on, log in with the new address.", isp=isp.name, old=old,
                            new=row.email) + "\n\n"
                     + sp.say("If you did not do this, call us at once: someone may have your password."),
                     kind="email_changed")
        user.email = row.email
    return user
