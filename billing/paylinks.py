"""Pay-by-link: a signed, expiring link that can pay one invoice and nothing else.

The token is ``<invoice id>.<expiry as unix seconds>.<HMAC-SHA256>``, signed with
the portal's secret key; nothing is stored, and changing either number breaks
the signature. A void invoice's link stops working.
"""
import base64
import datetime as dt
import hashlib
import hmac
import time

from billing import accounts, mail
from db import write_tx
from db.models import Invoice, Isp, Payment

DEFAULT_DAYS = 45
ORIGIN = "paylink"  # Payment.origin of payments started through a pay link


def _sig(secret, invoice_id, expires):
    mac = hmac.new(secret.encode(), f"paylink:{invoice_id}:{expires}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac[:20]).decode().rstrip("=")


def make(secret, invoice_id, days=DEFAULT_DAYS, now=None):
    """A token for paying this invoice, valid for ``days``."""
    expires = int((now or time.time()) + days * 86400)
    return f"{invoice_id}.{expires}.{_sig(secret, invoice_id, expires)}"


def expires_at(token):
    """When a well-formed token expires (UTC, naive), or None."""
    try:
        return dt.datetime.fromtimestamp(int(token.split(".")[1]), dt.timezone.utc).replace(tzinfo=None)
    except (ValueError, IndexError, OverflowError, OSError):
        return None


class LinkError(Exception):
    """A pay link that is bad or expired; str() is the message for people."""


def invoice_for(secret, token, now=None):
    """The invoice a valid token pays, or LinkError."""
    try:
        invoice_id, expires, sig = token.split(".")
        invoice_id, expires = int(invoice_id), int(expires)
    except (ValueError, AttributeError):
        raise LinkError("This payment link is not valid.") from None
    if not hmac.compare_digest(sig, _sig(secret, invoice_id, expires)):
        raise LinkError("This payment link is not valid.")
    if (now or time.time()) >= expires:
        raise LinkError("This payment link has expired. Log in to pay, or ask us for a new link.")
    invoice = Invoice.get_or_none(Invoice.id == invoice_id)
    if invoice is None or invoice.void:
        raise LinkError("This invoice can no longer be paid online. Please contact us.")
    return invoice


def actor(invoice):
    """Who the audit log names for what is done through an invoice's pay link."""
    return f"paylink:{invoice.id}"


def payment_for(invoice, ref):
    """The payment ``ref`` if it was started through this invoice's pay link, else None.

    Only a payment of the invoice's customer, aimed at that invoice, started through a link: a link
    never reaches a payment for another invoice, nor one the customer started while logged in (even
    for the same invoice).
    """
    return Payment.get_or_none((Payment.ref == ref) & (Payment.customer == invoice.customer_id)
                               & (Payment.target_invoice == invoice.id) & (Payment.origin == ORIGIN))


def email(invoice, customer, url, actor="staff"):
    """Email the customer a pay link for one invoice (through the outbox)."""
    isp = Isp.current() or Isp(name="Customer Portal")
    with write_tx():
        mail.enqueue(customer.email, f"Invoice {invoice.number} from {isp.name}",
                     f"Hello {customer.name},\n\nYour invoice {invoice.number} is due "
                     f"{invoice.due_date:%b %-d, %Y}.\n\nPay it online, no login needed (the link works for "
                     f"{DEFAULT_DAYS} days):\n{url}\n", kind="paylink")
        accounts.audit(actor, "paylink.sent", "invoice", invoice.id, email=customer.email)
