"""The audit trail in words, for the staff Audit log page and its CSV export.

Rows store short machine names (``staff:12``, ``payment.succeeded``, JSON detail); this module says who
that was (name and role), what happened in a sentence, and which record it concerns.
"""
import datetime as dt
import json

from billing import money
from db.models import AuditLog, Customer, Invoice, User

WHAT = {
    "login": "Logged in", "login.succeeded": "Logged in", "login.failed": "Failed login",
    "user.created": "Login created", "user.disabled": "Login disabled", "user.enabled": "Login enabled",
    "staff.role_changed": "Staff role changed", "password.reset": "Password reset",
    "reset.requested": "Password reset asked for", "signup.requested": "Sign-up asked for",
    "customer.created": "Customer created", "customer.updated": "Customer details changed",
    "invoice.created": "Invoice created", "invoice.updated": "Invoice edited", "invoice.voided": "Invoice voided",
    "invoice.adjusted": "Invoice adjusted (credit note)",
    "payment.created": "Payment started", "payment.billing_confirmed": "Billing details confirmed",
    "payment.processing": "Payment processing", "payment.succeeded": "Payment received",
    "payment.failed": "Payment failed", "payment.canceled": "Payment canceled", "payment.held": "Payment held",
    "payment.refund": "Refunded", "payment.return": "Returned by the bank", "payment.dispute": "Disputed",
    "payment.dispute_won": "Dispute won", "payment.counter_reversal": "Counter payment reversed",
    "refund.requested": "Refund asked for", "refund.failed": "Refund refused by the processor",
    "refund.expired": "Refund not made (the processor had no record of it)", "refund.resolved": "Refund confirmed by reconcile",
    "invite.sent": "Invite queued", "invite.sent_all": "Invites queued", "paylink.sent": "Pay link queued",
    "email.requeued": "Failed email queued again", "email.resent": "Email sent again",
    "settings.updated": "Settings changed", "settings.logo": "Logo changed",
    "api_token.created": "API token created", "api_token.revoked": "API token revoked",
    "import.customers": "Customers imported", "import.invoices": "Invoices imported",
    "autopay.on": "Autopay turned on", "autopay.off": "Autopay turned off", "autopay.policy": "Autopay policy changed",
    "autopay.run": "Autopay run", "method.saved": "Payment method saved", "payment_method.saved": "Payment method saved",
    "method.removed": "Payment method removed", "method.default": "Default payment method set",
    "method.mandate_accepted": "Bank debit authorization accepted",
}
ROLE_NAMES = {"owner": "Owner", "clerk": "Clerk"}
SYSTEM = {"system": "The portal", "cli": "Command line", "staff:cli": "Command line", "autopay": "Autopay run",
          "reconcile": "Reconcile run", "processor": "Payment processor", "public": "Public page",
          "api": "Billing-system API"}
_SKIP = {"allocations", "reopened"}


def _users(rows):
    ids = set()
    for r in rows:
        kind, _, rest = r.actor.partition(":")
        if kind in ("staff", "customer") and rest.isdigit():
            ids.add(int(rest))
        if r.entity == "user" and r.entity_id.isdigit():
            ids.add(int(r.entity_id))
    return {u.id: u for u in User.select().where(User.id.in_(sorted(ids)))} if ids else {}


def who(actor, users):
    """(name, role) of an actor string: a staff member, a customer, or a part of the system."""
    kind, _, rest = actor.partition(":")
    if actor in SYSTEM:
        return SYSTEM[actor], "System"
    if kind in ("staff", "customer") and rest.isdigit():
        user = users.get(int(rest))
        if user is None:
            return actor, "Staff" if kind == "staff" else "Customer"
        if user.role == "staff":
            return user.name or user.email, ROLE_NAMES.get(user.staff_role, "Staff")
        return user.email, "Customer"
    if kind == "webhook":
        return f"{rest.capitalize()} webhook", "System"
    if kind == "paylink":
        return "Pay-by-link page", "Customer"
    if kind == "api":
        return f"API token {rest}".strip(), "System"
    return actor, "System"


def _value(key, value):
    if key.endswith("_cents") and isinstance(value, int):
        return money.format_money(value)
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)


def details(detail):
    """The detail JSON as readable 'key: value' text (cents as money)."""
    if not detail:
        return ""
    try:
        data = json.loads(detail)
    except ValueError:
        return detail
    if not isinstance(data, dict):
        return str(data)
    parts = []
    for key in sorted(data):
        if key in _SKIP:
            continue
        label = key.removesuffix("_cents").replace("_", " ")
        parts.append(f"{label}: {_value(key, data[key])}")
    return "; ".join(parts)


def query(filters):
    """Audit rows matching the filters (who, action, entity, entity_id, start, end dates), newest first."""
    q = AuditLog.select()
    for key in ("action", "entity", "entity_id"):
        if filters.get(key):
            q = q.where(getattr(AuditLog, key) == filters[key])
    if filters.get("actor"):
        q = q.where(AuditLog.actor == filters["actor"])
    if filters.get("start"):
        q = q.where(AuditLog.at >= dt.datetime.combine(filters["start"], dt.time()))
    if filters.get("end"):
        q = q.where(AuditLog.at < dt.datetime.combine(filters["end"] + dt.timedelta(days=1), dt.time()))
    return q.order_by(AuditLog.id.desc())


def readable(rows):
    """Rows as dicts: when, who, role, what, record (entity, id, label), ip, details."""
    rows = list(rows)
    users = _users(rows)
    invoice_ids = [int(r.entity_id) for r in rows if r.entity == "invoice" and r.entity_id.isdigit()]
    customer_ids = [int(r.entity_id) for r in rows if r.entity == "customer" and r.entity_id.isdigit()]
    invoices = {i.id: i.number for i in Invoice.select(Invoice.id, Invoice.number).where(Invoice.id.in_(invoice_ids))} \
        if invoice_ids else {}
    customers = {c.id: c.name for c in Customer.select(Customer.id, Customer.name)
                 .where(Customer.id.in_(customer_ids))} if customer_ids else {}
    out = []
    for r in rows:
        name, role = who(r.actor, users)
        label = f"{r.entity} {r.entity_id}"
        if r.entity == "invoice" and r.entity_id.isdigit():
            label = f"Invoice {invoices.get(int(r.entity_id), r.entity_id)}"
        elif r.entity == "customer" and r.entity_id.isdigit():
            label = f"Customer {customers.get(int(r.entity_id), r.entity_id)}"
        elif r.entity == "payment":
            label = f"Payment {r.entity_id}"
        elif r.entity == "user" and r.entity_id.isdigit() and int(r.entity_id) in users:
            label = f"Login {users[int(r.entity_id)].email}"
        out.append(dict(row=r, at=r.at, who=name, role=role, actor=r.actor,
                        what=WHAT.get(r.action, r.action.replace(".", " ").replace("_", " ").capitalize()),
                        action=r.action, entity=r.entity, entity_id=r.entity_id, label=label, ip=r.ip,
                        details=details(r.detail)))
    return out
