"""A customer as the staff pages see and change it: details, everything on one page, the portal login."""
from billing import accounts, identity, imports
from billing.errors import FormErrors
from db import write_tx
from db.models import AutopayEnrolment, Customer, LoginSession, Outbox, PaymentMethod, User

EDITABLE = ("name", "email", "phone", "street", "city", "state", "zip")
_MESSAGES = {"name": "Enter the customer's name.", "email": "Enter an email address, like name@example.com.",
             "zip": "Enter a 5-digit ZIP code, like 78701."}


def form_values(customer):
    """The edit form's fields for a customer."""
    return {k: getattr(customer, k) for k in EDITABLE}


def update(customer_id, form, actor):
    """Change a customer's details (the account number stays); returns the changed fields, or FormErrors."""
    with write_tx():
        customer = Customer.get_by_id(customer_id)
        raw = {k: form.get(k, "") for k in EDITABLE} | {"account_number": customer.account_number}
        data, errors = imports.clean_customer(raw)  # the same rules as the import and the API
        if errors:
            raise FormErrors({k: _MESSAGES.get(k, f"This {v}." if v.startswith("is ") else v[:1].upper() + v[1:] + ".")
                              for k, v in errors.items()})
        changed = sorted(k for k in EDITABLE if data[k] != getattr(customer, k))
        if changed:
            Customer.update(**{k: data[k] for k in changed}).where(Customer.id == customer.id).execute()
            accounts.audit(actor, "customer.updated", "customer", customer.id, fields=changed,
                           **{f"old_{k}": getattr(customer, k) for k in changed if k != "email"})
    return changed


def portal_login(customer_id):
    """The customer's portal login, or None."""
    return User.get_or_none(User.customer == customer_id)


def set_login_disabled(customer_id, disabled, actor):
    """Disable the customer's portal login (their sessions end at once) or enable it; LookupError without one."""
    login = portal_login(customer_id)
    if login is None:
        raise LookupError(customer_id)
    identity.set_login_disabled(login.id, disabled, actor)
    return User.get_by_id(login.id)


def overview(customer_id):
    """What the customer page shows besides invoices and payments: methods, autopay, login, emails."""
    customer = Customer.get_by_id(customer_id)
    login = portal_login(customer_id)
    addresses = {a for a in (customer.email, login.email if login else "") if a}
    # (at, succeeded, ip, browser), as the login audit records them (billing.identity).
    logins = identity.recent_logins(login.id, limit=5) if login is not None else []
    return dict(
        methods=list(PaymentMethod.active_for(customer_id)),
        autopay=AutopayEnrolment.get_or_none(AutopayEnrolment.customer == customer_id),
        login=login,
        open_sessions=LoginSession.select().where(LoginSession.user == login.id).count() if login else 0,
        recent_logins=logins,
        emails=list(Outbox.select().where(Outbox.to_addr.in_(sorted(addresses))).order_by(Outbox.id.desc()).limit(20))
        if addresses else [],
    )
