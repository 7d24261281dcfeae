"""Staff logins and their roles: who may do what on the staff pages.

Two roles. An **owner** runs the portal: settings, staff logins, API tokens,
import, the audit log, refunds (money going out) and held payments (accept or
refund what the processor reported). A **clerk** works the
counter: customers, invoices, offline payments, invites and the outbox. An
owner may do everything a clerk may. Every staff route declares the least
role it needs (``views.staff.allow``); a route that declares none is refused
to everyone, so a forgotten check fails closed.
"""
import re

from peewee import IntegrityError

from billing import accounts, identity, invites
from billing.errors import FormErrors
from db import is_postgres, write_tx
from db.models import LoginSession, User

OWNER = "owner"
CLERK = "clerk"
ROLES = {OWNER: "Owner", CLERK: "Clerk"}
STAFF = "staff"  # User.role of every staff login; staff_role says which kind
_RANK = {CLERK: 1, OWNER: 2}
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[A-Za-z]{2,}$")


def can(staff_role, needed):
    """True when a login with ``staff_role`` may use a route that needs ``needed``."""
    return _RANK.get(staff_role, 0) >= _RANK.get(needed, 99)


def role_label(user):
    """'Owner' or 'Clerk' for a staff login."""
    return ROLES.get(user.staff_role, user.staff_role or "Staff")


def staff_logins():
    """Every staff login, active ones first, then by name and email."""
    return list(User.select().where(User.role == STAFF)
                .order_by(User.disabled_at.is_null(False), User.name, User.email))


def check_new_staff(form):
    """Clean name, email, role and password for a new staff login, or FormErrors by field."""
    data = {k: (form.get(k) or "").strip() for k in ("name", "email", "role")}
    data["email"] = data["email"].lower()
    errors = {}
    if not data["name"]:
        errors["name"] = "Enter the person's name."
    elif len(data["name"]) > 100:
        errors["name"] = "This is too long (100 characters at most)."
    if not _EMAIL.match(data["email"]) or len(data["email"]) > 254:
        errors["email"] = "Enter an email address, like name@example.com."
    elif User.by_email(data["email"]) is not None:
        errors["email"] = "This email already has a login."
    if data["role"] not in ROLES:
        errors["role"] = "Choose owner or clerk."
    try:
        invites.check_password(form.get("password") or "", form.get("confirm") or "")
    except invites.PasswordError as e:
        errors.update(e.errors)
    if errors:
        raise FormErrors(errors)
    data["password"] = form.get("password")
    return data


def add_staff(form, actor):
    """Create a staff login from the owner's form; FormErrors for bad fields (nothing is written)."""
    data = check_new_staff(form)
    try:
        return identity.create_user(data["email"], data["password"], role=STAFF, staff_role=data["role"],
                                    name=data["name"], actor=actor)
    except IntegrityError:  # the same email created meanwhile (a double submit)
        raise FormErrors({"email": "This email already has a login."}) from None


def _lock_active_owners():
    """The ids of the active owners, locked until the transaction ends.

    Two owners demoting or disabling each other at once must not both see "another owner is left". SQLite's
    BEGIN IMMEDIATE (write_tx) already lets one writer in at a time. On PostgreSQL each change locks every
    active owner row, in id order (so two changes cannot deadlock), before counting: the second waits for
    the first to commit, and READ COMMITTED then re-checks the locked rows against the WHERE, so an owner the
    first change demoted or disabled is no longer counted.
    """
    q = (User.select(User.id).where((User.role == STAFF) & (User.staff_role == OWNER) & User.disabled_at.is_null())
         .order_by(User.id))
    if is_postgres():
        q = q.for_update()
    return [u.id for u in q]


def _check_owner_change(user, by_user_id):
    """Refuse a change that would leave no owner, or one made by someone no longer an active owner."""
    owners = _lock_active_owners()
    if user.id in owners and len(owners) <= 1:
        raise ValueError("This is the last owner; add another owner first.")
    if by_user_id is not None and by_user_id not in owners:
        raise ValueError("Only an owner can change staff logins.")


def _staff_login(user_id):
    user = User.get_or_none((User.id == user_id) & (User.role == STAFF))
    if user is None:
        raise LookupError(user_id)
    return user


def set_disabled(user_id, disabled, actor, by_user_id):
    """Disable (ending every session at once) or enable a staff login; ValueError when not allowed."""
    with write_tx():
        user = _staff_login(user_id)
        if disabled:
            if user.id == by_user_id:
                raise ValueError("You cannot disable your own login.")
            _check_owner_change(user, by_user_id)
        identity.set_login_disabled(user.id, disabled, actor)
    return User.get_by_id(user.id)


def set_role(user_id, role, actor, by_user_id):
    """Make a staff login an owner or a clerk; ValueError when not allowed."""
    if role not in ROLES:
        raise ValueError("Choose owner or clerk.")
    with write_tx():
        user = _staff_login(user_id)
        if user.staff_role == role:
            return user
        if user.id == by_user_id:
            raise ValueError("You cannot change your own role.")
        _check_owner_change(user, by_user_id)
        User.update(staff_role=role).where(User.id == user.id).execute()
        # A role change takes effect at once: the login's open sessions end, as when it is disabled.
        LoginSession.delete().where(LoginSession.user == user.id).execute()
        accounts.audit(actor, "staff.role_changed", "user", user.id, role=role, was=user.staff_role)
    return User.get_by_id(user.id)
