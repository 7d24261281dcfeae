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

from billing import accounts, mail, money, payments
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


# --- What a pay link asks: only what the processor needs. -----------------------------------------
# The processors' own pages ask for the card (with its ZIP) or the bank account and its holder. Stripe's
# bank debit also needs the holder's name and email in the page (its mandate), so a Stripe ACH payment by
# link asks for those two. Everything else comes from the customer's file, server-side, and none of it is
# put into a page reached through the link: a forwarded email must not reveal the account's name,
# address, email or phone. Receipts go to the email on file (billing.notices).
ASKED = {("stripe", "ach"): ("name", "email")}


def asked_fields(processor_name, method_type):
    """The billing fields a pay link asks for this processor and payment type."""
    return ASKED.get((processor_name, method_type), ())


def billing_for(customer, form, processor_name, method_type):
    """Billing data for a payment by link: the file's address, with the asked fields from the form; or FormErrors."""
    asked = asked_fields(processor_name, method_type)
    data = {k: (getattr(customer, k) or "").strip() for k in payments.BILLING_FIELDS}
    data.update(name="", email="")  # only ever what the person holding the link typed
    data.update({f: form.get(f) or "" for f in asked})
    return payments.check_billing(data, asked)


def masked_email(address):
    """Enough of an address to recognise it, not to learn it: ``i•••@example.com``."""
    local, at, domain = (address or "").partition("@")
    return f"{local[:1]}\u2022\u2022\u2022@{domain}" if at and local else ""


def amount_rules(isp, due_cents):
    """(lowest, highest) a link may pay now: the invoice's balance, or part of it down to the ISP's minimum."""
    return min(isp.min_payment_cents, due_cents), due_cents


def check_amount(isp, due_cents, text):
    """Cents for the amount typed on a pay link, or FormErrors: never more than the invoice's balance."""
    try:
        cents = money.parse_amount(text)
    except money.AmountError as e:
        raise payments.FormErrors({"amount": str(e)}) from None
    low, high = amount_rules(isp, due_cents)
    if cents > high:
        raise payments.FormErrors(
            {"amount": f"This link pays this invoice only: at most {money.format_money(high, isp.currency)}."})
    if cents < low:
        raise payments.FormErrors({"amount": f"The minimum payment is {money.format_money(low, isp.currency)}."})
    return cents

