"""The portal's customer emails: what each says, queued through the outbox (billing.mail).

Every function here is called inside the transaction of the event it reports,
so an email exists exactly when its event was committed. Each has a dedupe key,
so a repeated event (a webhook redelivered, a second autopay run) queues it once.
Plain text, with the outbox's light HTML made from it: small, no images.
"""
from billing import fees, mail, money, receipts
from db.models import Customer, Isp

KINDS = (
    "payment_receipt", "ach_pending", "ach_settled", "ach_failed",
    "autopay_upcoming", "autopay_charged", "autopay_failed", "autopay_reauthorize", "card_expiring",
)
_public_url = "http://127.0.0.1:5000"


def configure(public_url):
    """Set the portal's address used in links (PUBLIC_URL)."""
    global _public_url
    _public_url = (public_url or _public_url).rstrip("/")


def link(path):
    """An absolute link into the portal."""
    return _public_url + path


def _isp():
    return Isp.current() or Isp(name="Customer Portal")


def _money(cents, currency=None):
    return money.format_money(cents, currency or _isp().currency)


def _method(brand, last4):
    if not last4:  # a counter payment names itself ("Check no. 1042"); a saved method may not know its digits
        return brand or "your saved method"
    return f"{brand or 'Card'} ending {last4}"


def _footer(isp):
    contact = " or ".join(x for x in (isp.support_phone, isp.support_email) if x)
    return f"\n\n{isp.name}" + (f"\nQuestions? Contact us: {contact}" if contact else "")


def _queue(kind, to_addr, subject, body, dedupe_key):
    if not to_addr:
        return None
    isp = _isp()
    return mail.enqueue(to_addr, f"{isp.name}: {subject}", body + _footer(isp), kind=kind, dedupe_key=dedupe_key)


def _to(payment):
    if payment.billing_email:
        return payment.billing_email
    return Customer.get_by_id(payment.customer_id).email


def _code(payment):
    """The payment's fee line (if any) and confirmation code line, as on its receipt."""
    return _fee(payment) + f"Confirmation code: {receipts.format_code(receipts.code_for(payment))}\n"


def _fee(payment):
    """The fee and the total charged, when the payment carried a convenience fee."""
    if not payment.fee_cents:
        return ""
    return (f"{fees.LABELS.get(payment.method_type, 'Fee')}: {_money(payment.fee_cents, payment.currency)} "
            f"(total charged {_money(payment.amount_cents + payment.fee_cents, payment.currency)})\n")


def _receipt_link(payment):
    return link(f"/payments/{payment.ref}/receipt")


def _applied(applied):
    return ", ".join(f"{inv.number} ({_money(cents)})" for inv, cents in applied)


def _credit(payment, credit_cents):
    if not credit_cents:
        return ""
    return (f"Account credit: {_money(credit_cents, payment.currency)} of this payment is now credit on your "
            "account; it pays your next invoices first.\n")


def payment_receipt(payment, applied, credit_cents=0):
    """A card payment (or a settled bank payment) went through; says how much of it became account credit."""
    body = (f"Thank you. We received your payment of {_money(payment.amount_cents, payment.currency)}.\n\n"
            + _code(payment)
            + f"Reference: {payment.ref}\nMethod: {_method(payment.method_brand, payment.method_last4)}\n"
            + (f"Applied to: {_applied(applied)}\n" if applied else "") + _credit(payment, credit_cents)
            + f"\nYour receipt (print or PDF): {_receipt_link(payment)}")
    return _queue("payment_receipt", _to(payment), "Payment received", body, f"payment-{payment.id}-receipt")


def ach_pending(payment, applied):
    """A bank (ACH) debit was sent and is waiting to settle."""
    body = (f"Your bank payment of {_money(payment.amount_cents, payment.currency)} is processing. Bank payments "
            f"take a few business days to clear; we will email you when it does.\n\n"
            f"Reference: {payment.ref}\nAccount: {_method(payment.method_brand, payment.method_last4)}\n"
            + (f"For: {_applied(applied)}\n" if applied else "")
            + f"\nSee it in the portal: {link('/payments/' + payment.ref)}")
    return _queue("ach_pending", _to(payment), "Bank payment processing", body, f"payment-{payment.id}-ach-pending")


def ach_settled(payment, applied, credit_cents=0):
    """A bank (ACH) debit settled: the receipt for a bank payment (with any part that became credit)."""
    body = (f"Your bank payment of {_money(payment.amount_cents, payment.currency)} has cleared. Thank you.\n\n"
            + _code(payment)
            + f"Reference: {payment.ref}\nAccount: {_method(payment.method_brand, payment.method_last4)}\n"
            + (f"Applied to: {_applied(applied)}\n" if applied else "") + _credit(payment, credit_cents)
            + f"\nYour receipt (print or PDF): {_receipt_link(payment)}")
    return _queue("ach_settled", _to(payment), "Bank payment cleared", body, f"payment-{payment.id}-ach-settled")


def ach_failed(payment):
    """A bank (ACH) debit was returned."""
    body = (f"Your bank payment of {_money(payment.amount_cents, payment.currency)} did not go through: "
            f"{payment.failure_message or 'the bank returned it.'}\n\nNothing was applied to your invoices. "
            f"You can pay again here: {link('/payments')}\n\nReference: {payment.ref}")
    return _queue("ach_failed", _to(payment), "Bank payment failed", body, f"payment-{payment.id}-ach-failed")


def autopay_upcoming(customer, invoice, cents, charge_on, method, cycle, fee=None):
    """Autopay will charge an invoice in a few days (``fee``: the fee it will add; by default the ISP's rule)."""
    fee = fees.fee_cents(_isp(), method.method_type, cents) if fee is None else fee
    plus = f" plus a {_money(fee)} {fees.LABELS.get(method.method_type, 'fee').lower()}" if fee else ""
    body = (f"Autopay will charge {_money(cents)}{plus} for invoice {invoice.number} on {charge_on:%B %-d, %Y} to your "
            f"{_method(method.brand, method.last4)}.\n\nNothing to do. To change the method or turn autopay off, "
            f"visit {link('/methods')}")
    return _queue("autopay_upcoming", customer.email, f"Autopay on {charge_on:%b %-d}: {_money(cents)}", body,
                  f"autopay-upcoming-{invoice.id}-{cycle}")


def autopay_reauthorize(customer, method_type, rule_text, key):
    """The ISP added (or changed) a fee the customer's autopay authorization does not name: charged without it."""
    label = fees.LABELS.get(method_type, "fee").lower()
    body = (f"{_isp().name} now adds a {label} of {rule_text} to each {'card' if method_type == 'card' else 'bank'} "
            f"payment. The autopay authorization you accepted does not mention it, so autopay keeps paying your "
            f"invoices without the fee.\n\nTo accept the new terms with the fee, or to change how autopay pays, "
            f"visit {link('/methods')}. You do not need to do anything for autopay to keep working.")
    return _queue("autopay_reauthorize", customer.email, "Your autopay terms: a new fee needs your agreement",
                  body, key)


def autopay_charged(customer, payment, invoice, charge_id):
    """Autopay charged an invoice."""
    body = (f"Autopay paid invoice {invoice.number}: {_money(payment.amount_cents, payment.currency)} charged to your "
            f"{_method(payment.method_brand, payment.method_last4)}.\n\n" + _code(payment)
            + f"Reference: {payment.ref}\nYour receipt (print or PDF): {_receipt_link(payment)}")
    return _queue("autopay_charged", customer.email, f"Autopay paid {invoice.number}", body,
                  f"autopay-charged-{charge_id}")


def autopay_failed(customer, invoice, cents, reason, pay_url, retry_on, charge_id, needs_action=False):
    """An autopay charge failed; the customer can pay on-session through the link."""
    if needs_action:
        what = (f"Your bank asked you to confirm the autopay charge of {_money(cents)} for invoice {invoice.number}. "
                f"Confirm it here: {pay_url}")
    else:
        what = (f"Autopay could not charge {_money(cents)} for invoice {invoice.number}: {reason}\n\n"
                f"Pay it now here: {pay_url}")
    then = (f"If it is still unpaid, we will try again on {retry_on:%B %-d, %Y}."
            if retry_on else "We will not try this invoice again automatically.")
    body = f"{what}\n\n{then}\n\nYour payment methods: {link('/methods')}"
    subject = "Please confirm your autopay charge" if needs_action else f"Autopay could not pay {invoice.number}"
    return _queue("autopay_failed", customer.email, subject, body, f"autopay-failed-{charge_id}")


def card_expiring(customer, method, expires_on, is_autopay):
    """A saved card expires within the notice period."""
    body = (f"Your saved {_method(method.brand, method.last4)} expires at the end of {expires_on:%B %Y}."
            + (" Autopay uses this card." if is_autopay else "")
            + f"\n\nAdd a new card here so your payments keep working: {link('/methods')}")
    return _queue("card_expiring", customer.email, "Your saved card is expiring", body,
                  f"card-expiring-{method.id}-{method.exp_year}-{method.exp_month}")
