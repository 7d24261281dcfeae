"""Pay-by-link: a signed, expiring link that can pay one invoice and nothing else.

The token is itsdangerous's URL-safe signed ``[invoice id, expiry as unix seconds]``, salted "paylink";
nothing is stored, and changing either number breaks the signature. It is signed with the newest key
and checked against every key still listed (``SECRET_KEY`` and Flask's ``SECRET_KEY_FALLBACKS``), so a
link keeps working for its whole lifetime after the key is rotated, as long as the old key stays in the
fallbacks. A void invoice's link stops working.

Links made before the switch to itsdangerous (``<id>.<expiry>.<HMAC>``, three parts) are still accepted,
with the same keys, until they expire: the longest-lived of them was made for at most 365 days
(``paylink --days``), so ``_legacy_payload`` can go a year after the switch (December 2027).
"""
import base64
import datetime as dt
import hashlib
import hmac
import time

from itsdangerous import BadSignature, URLSafeSerializer

from billing import accounts, mail, money, payments
from billing.words import N_
from db import write_tx
from db.models import Invoice, Isp, Payment

DEFAULT_DAYS = 45
ORIGIN = payments.PAYLINK  # Payment.origin of payments started through a pay link
_SALT = "paylink"
NOT_VALID = N_("This payment link is not valid.")


def keys(config):
    """The keys pay links are checked with, oldest first and the signing key last (itsdangerous's order).

    ``config`` is the app's config: ``SECRET_KEY``, and ``SECRET_KEY_FALLBACKS`` (older keys, kept after
    a rotation for as long as links signed with them should work).
    """
    return [*(config.get("SECRET_KEY_FALLBACKS") or ()), config["SECRET_KEY"]]


def _key_list(secret):
    return [secret] if isinstance(secret, (str, bytes)) else list(secret)


def _serializer(secret):
    return URLSafeSerializer(_key_list(secret), salt=_SALT)


def make(secret, invoice_id, days=DEFAULT_DAYS, now=None):
    """A token for paying this invoice, valid for ``days``; ``secret`` is a key or keys() (the last signs)."""
    expires = int((now or time.time()) + days * 86400)
    return _serializer(secret).dumps([int(invoice_id), expires])


def _legacy_sig(key, invoice_id, expires):
    key = key.encode() if isinstance(key, str) else key
    mac = hmac.new(key, f"paylink:{invoice_id}:{expires}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac[:20]).decode().rstrip("=")


def _legacy_payload(secret, token):
    """(invoice id, expiry) of a valid link in the format used before itsdangerous, or None."""
    try:
        invoice_id, expires, sig = token.split(".")
        invoice_id, expires = int(invoice_id), int(expires)
    except (ValueError, AttributeError):
        return None
    if any(hmac.compare_digest(sig, _legacy_sig(k, invoice_id, expires)) for k in _key_list(secret)):
        return invoice_id, expires
    return None


def _payload(secret, token):
    """(invoice id, expiry) of a token signed with one of the keys, or LinkError."""
    if not isinstance(token, str) or not token or len(token) > 512:
        raise LinkError(NOT_VALID)
    try:
        invoice_id, expires = _serializer(secret).loads(token)
        return int(invoice_id), int(expires)
    except (BadSignature, ValueError, TypeError):
        pass
    legacy = _legacy_payload(secret, token)
    if legacy is None:
        raise LinkError(NOT_VALID)
    return legacy


def expires_at(secret, token):
    """When a valid token expires (UTC, naive), or None."""
    try:
        _, expires = _payload(secret, token)
        return dt.datetime.fromtimestamp(expires, dt.timezone.utc).replace(tzinfo=None)
    except (LinkError, ValueError, OverflowError, OSError):
        return None


class LinkError(Exception):
    """A pay link that is bad or expired; str() is the message for people."""


def invoice_for(secret, token, now=None):
    """The invoice a valid token pays, or LinkError; ``secret`` is a key or keys()."""
    invoice_id, expires = _payload(secret, token)
    if (now or time.time()) >= expires:
        raise LinkError(N_("This payment link has expired. Log in to pay, or ask us for a new link."))
    invoice = Invoice.get_or_none(Invoice.id == invoice_id)
    if invoice is None or invoice.void:
        raise LinkError(N_("This invoice can no longer be paid online. Please contact us."))
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
# The processors' own pages ask for the card (with its ZIP) or the bank account and its holder. A
# processor declares (Processor.page_fields) what else its page must be handed: Stripe's bank debit needs
# the holder's name and email (its mandate), so a Stripe ACH payment by link asks for those two.
# Everything else comes from the customer's file, server-side, and none of it is put into a page reached
# through the link: a forwarded email must not reveal the account's name, address, email or phone.
# Receipts go to the email on file (billing.notices).


def asked_fields(processor, method_type):
    """The billing fields a pay link asks for this processor and payment type."""
    return processor.fields_for_page(method_type)


def billing_for(customer, form, processor, method_type):
    """Billing data for a payment by link: the file's address, with the asked fields from the form; or FormErrors."""
    asked = asked_fields(processor, method_type)
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
    return max(min(isp.min_payment_cents, due_cents), money.SMALLEST_CHARGE_CENTS), due_cents


def check_amount(isp, due_cents, text):
    """Cents for the amount typed on a pay link, or FormErrors: never more than the invoice's balance."""
    try:
        cents = money.parse_amount(text)
    except money.AmountError as e:
        raise payments.FormErrors({"amount": e.message}) from None
    low, high = amount_rules(isp, due_cents)
    if high < low:
        raise payments.FormErrors({"amount": N_("This invoice's balance of %(balance)s is less than the smallest "
                                                "payment we can take; it is carried to the next bill.",
                                                balance=money.format_money(high, isp.currency))})
    if cents > high:
        raise payments.FormErrors({"amount": N_("This link pays this invoice only: at most %(amount)s.",
                                                amount=money.format_money(high, isp.currency))})
    if cents < low:
        raise payments.FormErrors({"amount": N_("The minimum payment is %(amount)s.",
                                                amount=money.format_money(low, isp.currency))})
    return cents

