"""The billing-system API's rules: hashed bearer tokens, a payments feed with an opaque cursor."""
import base64
import datetime as dt
import hashlib
import hmac
import secrets

from billing import accounts, bounds, ledger, receipts
from db import write_tx
from db.models import Allocation, ApiToken, Customer, Invoice, Payment, sum_cents, utcnow

PREFIX = "isp_"
CREATED = "created"
# The payment statuses a client may filter the payments feed by (billing.payments names each).
STATUS_FILTERS = ("awaiting_details", "awaiting_verification", "processing", "succeeded", "failed", "canceled")


def _hash(token):
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(name, actor="staff"):
    """A new bearer token: returns (row, the token itself, shown once and never stored)."""
    name = (name or "").strip()
    if not name or len(name) > 100:
        raise ValueError("Give the token a name of up to 100 characters, like 'Billing system'.")
    token = PREFIX + secrets.token_urlsafe(32)
    with write_tx():
        row = ApiToken.create(name=name, prefix=token[:10], token_hash=_hash(token), created_by=actor)
        accounts.audit(actor, "api_token.created", "api_token", row.id, name=name)
    return row, token


def revoke_token(token_id, actor="staff"):
    """Revoke a token at once; True when it was live."""
    with write_tx():
        done = (ApiToken.update(revoked_at=utcnow())
                .where((ApiToken.id == token_id) & ApiToken.revoked_at.is_null()).execute())
        if done:
            accounts.audit(actor, "api_token.revoked", "api_token", token_id)
    return bool(done)


def authenticate(header):
    """The live ApiToken for an ``Authorization: Bearer`` header, or None."""
    if not header or not header.startswith("Bearer "):
        return None
    token = header[len("Bearer "):].strip()
    row = ApiToken.get_or_none(ApiToken.token_hash == _hash(token)) if token.startswith(PREFIX) else None
    if row is None or row.revoked_at is not None or not hmac.compare_digest(row.token_hash, _hash(token)):
        return None
    now = utcnow()
    if row.last_used_at is None or now - row.last_used_at > dt.timedelta(minutes=1):
        with write_tx():
            ApiToken.update(last_used_at=now).where(ApiToken.id == row.id).execute()
    return row


def tokens():
    """Every token, newest first (hashes only)."""
    return list(ApiToken.select().order_by(ApiToken.id.desc()))


def encode_cursor(updated_at, payment_id):
    raw = f"{updated_at.isoformat()}|{payment_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor):
    """(updated_at, id) from a cursor, or ValueError."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        stamp, pid = raw.split("|")
        pid = bounds.parse_id(pid)
        if pid is None:
            raise ValueError
        return dt.datetime.fromisoformat(stamp), pid
    except Exception:
        raise ValueError("cursor is not one this API returned") from None


def payments_since(cursor=None, limit=100, status=None, lag_seconds=5):
    """Payments changed after the cursor, oldest change first: (rows, next cursor).

    A payment shows up again whenever its status changes (an ACH debit appears
    as processing, then as succeeded or failed), so the billing system can post
    what succeeded and reverse nothing it has not seen. Changes younger than
    ``lag_seconds`` wait for the next call: a transaction that stamped an
    earlier time but commits a moment later can then never fall behind a
    cursor already handed out.
    """
    q = (Payment.select(Payment, Customer.account_number).join(Customer)
         .where(Payment.status != CREATED))
    if lag_seconds:
        q = q.where(Payment.updated_at <= utcnow() - dt.timedelta(seconds=lag_seconds))
    if cursor:
        at, pid = decode_cursor(cursor)
        q = q.where((Payment.updated_at > at) | ((Payment.updated_at == at) & (Payment.id > pid)))
    if status:
        q = q.where(Payment.status == status)
    rows = list(q.order_by(Payment.updated_at, Payment.id).limit(limit))
    nxt = encode_cursor(rows[-1].updated_at, rows[-1].id) if rows else cursor
    return rows, nxt


def payment_json(p):
    """A payment as the API shows it."""
    applied = {}
    for alloc in Allocation.select(Allocation, Invoice.number).join(Invoice).where(Allocation.payment == p.id):
        applied[alloc.invoice.number] = applied.get(alloc.invoice.number, 0) + alloc.amount_cents
    return {
        "ref": p.ref, "account_number": p.customer.account_number, "status": p.status,
        "amount_cents": p.amount_cents, "currency": p.currency, "method_type": p.method_type,
        # The convenience fee is charged on top of amount_cents and applied to no invoice.
        "fee_cents": p.fee_cents, "charged_cents": p.amount_cents + p.fee_cents,
        "confirmation_code": receipts.format_code(p.confirmation_code) or None,
        "method_brand": p.method_brand, "method_last4": p.method_last4,
        "created_at": p.created_at.isoformat() + "Z", "updated_at": p.updated_at.isoformat() + "Z",
        "settled_at": p.settled_at.isoformat() + "Z" if p.settled_at else None,
        "failure_code": p.failure_code or None,
        "applied": [{"invoice_number": n, "amount_cents": c} for n, c in sorted(applied.items())],
    }


def customer_json(c):
    """A customer as the API shows it."""
    return {k: getattr(c, k) for k in ("account_number", "name", "email", "phone", "street", "city", "state", "zip")}


def invoice_json(inv):
    """An invoice as the API shows it, with what is paid."""
    paid_cents = inv.paid_cents
    return {
        "invoice_number": inv.number, "account_number": inv.customer.account_number,
        "issue_date": inv.issue_date.isoformat(), "due_date": inv.due_date.isoformat(),
        "period_start": inv.period_start.isoformat() if inv.period_start else None,
        "period_end": inv.period_end.isoformat() if inv.period_end else None,
        "total_cents": inv.total_cents, "paid_cents": paid_cents, "currency": inv.currency, "void": inv.void,
        "status": ledger.invoice_status(inv.total_cents, paid_cents, inv.due_date, accounts.today(), inv.void),
    }
