"""The portal's customer emails: what each says, queued through the outbox (billing.mail).

Every function here is called inside the transaction of the event it reports,
so an email exists exactly when its event was committed. Each has a dedupe key,
so a repeated event (a webhook redelivered, a second autopay run) queues it once.
Plain text, with the outbox's light HTML made from it: small, no images.
Each is written in the customer's language (theirs, else the ISP's default), through billing/language.py:
``sp.say`` looks its sentences up in the catalogue, and money and dates follow the language's locale.
"""
from billing import fees, mail, money, receipts
from billing.language import speaker_for
from billing.words import N_
from db.models import Customer, Isp

KINDS = (
    "payment_receipt", "ach_pending", "bank_verification", "ach_settled", "ach_failed",
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


def _money(cents, currency=None, sp=None):
    if sp is not None:
        return sp.money(cents, currency or _isp().currency)
    return money.format_money(cents, currency or _isp().currency)


def _speaker(customer_or_id):
    customer = customer_or_id if isinstance(customer_or_id, Customer) else Customer.get_by_id(customer_or_id)
    return speaker_for(customer, _isp())


def _method(brand, last4, sp):
    if not last4:  # a counter payment names itself ("Check no. 1042"); a saved method may not know its digits
        return brand or sp.say("your saved method")
    return sp.say("%(brand)s ending %(last4)s", brand=brand or sp.say("Card"), last4=last4)


def _footer(isp, sp):
    contact = f" {sp.say('or')} ".join(x for x in (isp.support_phone, isp.support_email) if x)
    return f"\n\n{isp.name}" + ("\n" + sp.say("Questions? Contact us: %(contact)s", contact=contact) if contact else "")


def _queue(kind, to_addr, subject, body, dedupe_key, sp):
    if not to_addr:
        return None
    isp = _isp()
    return mail.enqueue(to_addr, f"{isp.name}: {subject}", body + _footer(isp, sp), kind=kind,
                        dedupe_key=dedupe_key)


def _to(payment):
    if payment.billing_email:
        return payment.billing_email
    return Customer.get_by_id(payment.customer_id).email


def _code(payment, sp):
    """The payment's fee line (if any) and confirmation code line, as on its receipt."""
    code = receipts.format_code(receipts.code_for(payment))
    return _fee(payment, sp) + sp.say("Confirmation code: %(code)s", code=code) + "\n"


def _fee(payment, sp):
    """The fee and the total charged, when the payment carried a convenience fee."""
    if not payment.fee_cents:
        return ""
    label = sp.text(fees.LABELS.get(payment.method_type, N_("Fee")))
    return sp.say("%(fee)s: %(amount)s (total charged %(total)s)", fee=label,
                  amount=_money(payment.fee_cents, payment.currency, sp),
                  total=_money(payment.amount_cents + payment.fee_cents, payment.currency, sp)) + "\n"


def _receipt_link(payment):
    return link(f"/payments/{payment.ref}/receipt")


def _applied(applied, sp):
    return ", ".join(f"{inv.number} ({_money(cents, sp=sp)})" for inv, cents in applied)


def _credit(payment, credit_cents, sp):
    if not credit_cents:
        return ""
    return sp.say("Account credit: %(amount)s of this payment is now credit on your account; it pays your next "
                  "invoices first.", amount=_money(credit_cents, payment.currency, sp)) + "\n"


def _lines(sp, *pairs):
    """"Label: value" lines, each ending in a line break, for the pairs whose value is not empty."""
    return "".join(sp.say(label, value=value) + "\n" for label, value in pairs if value)


def _receipt_body(payment, opening, method_label, applied, credit_cents, sp):
    """A receipt email's text: the opening line, the confirmation code, reference, method, where the money
    went, any part that became credit, and the link to the printable receipt."""
    return (opening + "\n\n"
            + _code(payment, sp)
            + _lines(sp, (N_("Reference: %(value)s"), payment.ref),
                     (method_label, _method(payment.method_brand, payment.method_last4, sp)),
                     (N_("Applied to: %(value)s"), _applied(applied, sp)))
            + _credit(payment, credit_cents, sp)
            + "\n" + sp.say("Your receipt (print or PDF): %(url)s", url=_receipt_link(payment)))


def payment_receipt(payment, applied, credit_cents=0):
    """A card payment (or a settled bank payment) went through; says how much of it became account credit."""
    sp = _speaker(payment.customer_id)
    opening = sp.say("Thank you. We received your payment of %(amount)s.",
                     amount=_money(payment.amount_cents, payment.currency, sp))
    body = _receipt_body(payment, opening, N_("Method: %(value)s"), applied, credit_cents, sp)
    return _queue("payment_receipt", _to(payment), sp.say("Payment received"), body, f"payment-{payment.id}-receipt",
                  sp)


def ach_pending(payment, applied):
    """A bank (ACH) debit was sent and is waiting to settle."""
    sp = _speaker(payment.customer_id)
    body = (sp.say("Your bank payment of %(amount)s is processing. Bank payments take a few business days to clear; "
                   "we will email you when it does.", amount=_money(payment.amount_cents, payment.currency, sp))
            + "\n\n"
            + _lines(sp, (N_("Reference: %(value)s"), payment.ref),
                     (N_("Account: %(value)s"), _method(payment.method_brand, payment.method_last4, sp)),
                     (N_("For: %(value)s"), _applied(applied, sp)))
            + "\n" + sp.say("See it in the portal: %(url)s", url=link("/payments/" + payment.ref)))
    return _queue("ach_pending", _to(payment), sp.say("Bank payment processing"), body,
                  f"payment-{payment.id}-ach-pending", sp)


def bank_verification(payment, applied):
    """A bank (ACH) payment waits for the customer to verify the account with the processor's small deposits."""
    sp = _speaker(payment.customer_id)
    # The portal's own page, never the processor's: the portal checks the payment still fits as it verifies.
    if payment.origin == "paylink":
        how = _how_to_verify(payment.verify_type, "", sp, paylink=True)
    else:
        how = _how_to_verify(payment.verify_type, link(f"/payments/{payment.ref}#verify"), sp)
    until = (sp.say("Please verify it by %(date)s; after that the payment is canceled.",
                    date=sp.date(payment.verify_expires_at.date(), "long"))
             if payment.verify_expires_at else "")
    body = (sp.say("Your bank payment of %(amount)s needs one more step: we must verify your bank account before "
                   "it is debited.", amount=_money(payment.amount_cents, payment.currency, sp))
            + "\n\n" + how + ("\n\n" + until if until else "")
            + "\n\n" + sp.say("Until then the invoices it pays show it as pending; please do not pay them again.")
            + "\n\n"
            + _lines(sp, (N_("Reference: %(value)s"), payment.ref),
                     (N_("Account: %(value)s"), _method(payment.method_brand, payment.method_last4, sp)),
                     (N_("For: %(value)s"), _applied(applied, sp)))
            + "\n" + sp.say("See it in the portal: %(url)s", url=link("/payments/" + payment.ref)))
    return _queue("bank_verification", _to(payment), sp.say("Verify your bank account to finish your payment"), body,
                  f"payment-{payment.id}-bank-verification", sp)


def _how_to_verify(kind, url, sp, paylink=False):
    if paylink:
        return (sp.say("In 1-2 business days two small deposits (less than $1 each) reach your bank account.")
                if kind != "descriptor_code" else sp.say("In 1-2 business days a deposit of 1 cent reaches your bank "
                                                         "account.")) + " " + sp.say(
            "Open the payment link you paid with again, and enter them on its page to verify the account.")
    if kind == "descriptor_code":
        return sp.say("In 1-2 business days a deposit of 1 cent reaches your bank account. Its description on your "
                      "bank statement starts with a 6-character code beginning with SM: enter that code here to "
                      "verify the account: %(url)s", url=url)
    return sp.say("In 1-2 business days two small deposits (less than $1 each) reach your bank account. Enter "
                  "their two amounts here to verify the account: %(url)s", url=url)


def method_unusable(method):
    """A saved bank account's mandate ended at the processor: it is not debited again, and autopay with it is off."""
    customer = Customer.get_by_id(method.customer_id)
    sp = _speaker(customer)
    body = (sp.say("Your bank account %(account)s can no longer be debited: its authorization ended at your bank "
                   "or our payment processor. We removed it from your payment methods, and autopay with it is off.",
                   account=_method(method.brand, method.last4, sp))
            + "\n\n" + sp.say("To keep paying automatically, add a payment method and turn autopay on: %(url)s",
                               url=link("/methods")))
    return _queue("method_unusable", customer.email, sp.say("Your bank account can no longer be used"), body,
                  f"method-{method.id}-unusable", sp)


def setup_verification(customer, setup, state):
    """A bank account being saved (Payment methods) must be verified with small deposits first."""
    sp = _speaker(customer)
    v = state.verification
    body = (sp.say("To save your bank account %(account)s, we must verify it first.",
                   account=_method(state.brand, state.last4, sp))
            + "\n\n" + _how_to_verify(v.microdeposit_type, v.url, sp)
            + "\n\n" + sp.say("It is saved in your payment methods once it is verified: %(url)s", url=link("/methods")))
    return _queue("bank_verification", customer.email, sp.say("Verify your bank account to save it"), body,
                  f"setup-{setup.id}-bank-verification", sp)


def ach_settled(payment, applied, credit_cents=0):
    """A bank (ACH) debit settled: the receipt for a bank payment (with any part that became credit)."""
    sp = _speaker(payment.customer_id)
    opening = sp.say("Your bank payment of %(amount)s has cleared. Thank you.",
                     amount=_money(payment.amount_cents, payment.currency, sp))
    body = _receipt_body(payment, opening, N_("Account: %(value)s"), applied, credit_cents, sp)
    return _queue("ach_settled", _to(payment), sp.say("Bank payment cleared"), body,
                  f"payment-{payment.id}-ach-settled", sp)


def ach_failed(payment):
    """A bank (ACH) debit was returned."""
    sp = _speaker(payment.customer_id)
    reason = sp.text(payment.failure_message) if payment.failure_message else sp.say("the bank returned it.")
    body = (sp.say("Your bank payment of %(amount)s did not go through: %(reason)s",
                   amount=_money(payment.amount_cents, payment.currency, sp), reason=reason) + "\n\n"
            + sp.say("Nothing was applied to your invoices. You can pay again here: %(url)s", url=link("/payments"))
            + "\n\n" + sp.say("Reference: %(value)s", value=payment.ref))
    return _queue("ach_failed", _to(payment), sp.say("Bank payment failed"), body, f"payment-{payment.id}-ach-failed",
                  sp)


def autopay_upcoming(customer, invoice, cents, charge_on, method, cycle, fee=None):
    """Autopay will charge an invoice in a few days (``fee``: the fee it will add; by default the ISP's rule)."""
    sp = _speaker(customer)
    fee = fees.fee_cents(_isp(), method.method_type, cents) if fee is None else fee
    said = dict(amount=_money(cents, sp=sp), number=invoice.number, date=sp.date(charge_on, "long"),
                method=_method(method.brand, method.last4, sp))
    if fee:
        label = sp.text(fees.LABELS.get(method.method_type, N_("fee"))).lower()
        first = sp.say("Autopay will charge %(amount)s plus a %(fee)s %(label)s for invoice %(number)s on %(date)s "
                       "to your %(method)s.", fee=_money(fee, sp=sp), label=label, **said)
    else:
        first = sp.say("Autopay will charge %(amount)s for invoice %(number)s on %(date)s to your %(method)s.", **said)
    body = (first + "\n\n" + sp.say("Nothing to do. To change the method or turn autopay off, visit %(url)s",
                                     url=link("/methods")))
    subject = sp.say("Autopay on %(date)s: %(amount)s", date=sp.dates(charge_on, "MMMd"), amount=_money(cents, sp=sp))
    return _queue("autopay_upcoming", customer.email, subject, body, f"autopay-upcoming-{invoice.id}-{cycle}", sp)


def autopay_reauthorize(customer, method_type, rule, key):
    """The ISP added (or changed) a fee (``rule``, a ``fees.FeeRule``) the customer's autopay authorization does
    not name: charged without it."""
    sp, isp = _speaker(customer), _isp()
    said = dict(isp=isp.name, label=sp.text(fees.LABELS.get(method_type, N_("fee"))).lower(),
                rule=rule.describe(isp.currency, sp.lang))
    if method_type == "card":
        first = sp.say("%(isp)s now adds a %(label)s of %(rule)s to each card payment. The autopay authorization you "
                       "accepted does not mention it, so autopay keeps paying your invoices without the fee.", **said)
    else:
        first = sp.say("%(isp)s now adds a %(label)s of %(rule)s to each bank payment. The autopay authorization you "
                       "accepted does not mention it, so autopay keeps paying your invoices without the fee.", **said)
    body = first + "\n\n" + sp.say("To accept the new terms with the fee, or to change how autopay pays, visit "
                                   "%(url)s. You do not need to do anything for autopay to keep working.",
                                   url=link("/methods"))
    return _queue("autopay_reauthorize", customer.email, sp.say("Your autopay terms: a new fee needs your agreement"),
                  body, key, sp)


def autopay_charged(customer, payment, invoice, charge_id):
    """Autopay charged an invoice."""
    sp = _speaker(customer)
    body = (sp.say("Autopay paid invoice %(number)s: %(amount)s charged to your %(method)s.", number=invoice.number,
                   amount=_money(payment.amount_cents, payment.currency, sp),
                   method=_method(payment.method_brand, payment.method_last4, sp)) + "\n\n"
            + _code(payment, sp)
            + sp.say("Reference: %(value)s", value=payment.ref) + "\n"
            + sp.say("Your receipt (print or PDF): %(url)s", url=_receipt_link(payment)))
    return _queue("autopay_charged", customer.email, sp.say("Autopay paid %(number)s", number=invoice.number), body,
                  f"autopay-charged-{charge_id}", sp)


def autopay_failed(customer, invoice, cents, reason, pay_url, retry_on, charge_id, needs_action=False):
    """An autopay charge failed; the customer can pay on-session through the link."""
    sp = _speaker(customer)
    if needs_action:
        what = sp.say("Your bank asked you to confirm the autopay charge of %(amount)s for invoice %(number)s. "
                      "Confirm it here: %(url)s", amount=_money(cents, sp=sp), number=invoice.number, url=pay_url)
    else:
        what = (sp.say("Autopay could not charge %(amount)s for invoice %(number)s: %(reason)s",
                       amount=_money(cents, sp=sp), number=invoice.number, reason=sp.text(reason))
                + "\n\n" + sp.say("Pay it now here: %(url)s", url=pay_url))
    then = (sp.say("If it is still unpaid, we will try again on %(date)s.", date=sp.date(retry_on, "long"))
            if retry_on else sp.say("We will not try this invoice again automatically."))
    body = f"{what}\n\n{then}\n\n" + sp.say("Your payment methods: %(url)s", url=link("/methods"))
    subject = (sp.say("Please confirm your autopay charge") if needs_action
               else sp.say("Autopay could not pay %(number)s", number=invoice.number))
    return _queue("autopay_failed", customer.email, subject, body, f"autopay-failed-{charge_id}", sp)


def card_expiring(customer, method, expires_on, is_autopay):
    """A saved card expires within the notice period."""
    sp = _speaker(customer)
    body = (sp.say("Your saved %(method)s expires at the end of %(month)s.",
                   method=_method(method.brand, method.last4, sp), month=sp.dates(expires_on, "yMMMM"))
            + (" " + sp.say("Autopay uses this card.") if is_autopay else "")
            + "\n\n" + sp.say("Add a new card here so your payments keep working: %(url)s", url=link("/methods")))
    return _queue("card_expiring", customer.email, sp.say("Your saved card is expiring"), body,
                  f"card-expiring-{method.id}-{method.exp_year}-{method.exp_month}", sp)
