"""Receipts: a payment's confirmation code, its one-SMS text, and what a receipt shows.

The confirmation code is what a customer reads to support over the phone, so it
is short (6 characters, shown as ``K7P-4QX``) and drawn from an alphabet with no
look-alikes: no 0/O, 1/I/L, 2/Z, 5/S or 8/B. It is stored UNIQUE on the payment.
It is random rather than derived from the id so that it says nothing about how
many payments the ISP takes; a clash with an existing code (about 1 in 240
million per code) is retried inside its own savepoint.
"""
import secrets
import unicodedata
from dataclasses import dataclass

from peewee import IntegrityError

from billing import money
from billing.language import Speaker
from billing.words import N_, Text
from db import database, write_tx
from db.models import Customer, Isp, Payment

ALPHABET = "ACDEFGHJKMNPQRTUVWXY34679"
CODE_LENGTH = 6
SMS_LIMIT = 160
STATUS_WORDS = {
    "succeeded": N_("received"), "processing": N_("processing"), "failed": N_("failed"), "canceled": N_("canceled"),
    "refunded": N_("refunded"), "disputed": N_("disputed"), "reversed": N_("reversed"),
    "created": N_("started"), "awaiting_details": N_("started"),
    "awaiting_verification": N_("waiting for bank account verification"),
}


def new_code():
    """A fresh random confirmation code (unformatted)."""
    return "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))


def format_code(code):
    """A stored code as it is shown and read aloud: ``K7P4QX`` -> ``K7P-4QX``."""
    if not code:
        return ""
    half = len(code) // 2
    return f"{code[:half]}-{code[half:]}"


def normalize(text):
    """What someone typed or heard as a code, in stored form (case, spaces and dashes ignored); None if impossible."""
    code = "".join(ch for ch in (text or "").upper() if ch.isalnum())
    if len(code) != CODE_LENGTH or any(ch not in ALPHABET for ch in code):
        return None
    return code


def assign_code(payment_id, attempts=8):
    """Give the payment a confirmation code once; returns the code it has (safe to call any number of times)."""
    with write_tx():
        for _ in range(attempts):
            current = Payment.select(Payment.confirmation_code).where(Payment.id == payment_id).scalar()
            if current:
                return current
            try:
                with database.atomic():  # a savepoint: a clash with another payment's code is retried
                    Payment.update(confirmation_code=new_code()).where(
                        (Payment.id == payment_id) & Payment.confirmation_code.is_null()).execute()
            except IntegrityError:
                continue
    raise RuntimeError(f"could not give payment {payment_id} a unique confirmation code")


def code_for(payment):
    """The payment's stored code, assigned now for a payment made before codes existed."""
    return payment.confirmation_code or assign_code(payment.id)


def find_by_code(text):
    """The payment with this confirmation code (as typed or heard), or None."""
    code = normalize(text)
    if code is None:
        return None
    return Payment.get_or_none(Payment.confirmation_code == code)


@dataclass(frozen=True)
class Receipt:
    """What a receipt shows, in every form (page, print, PDF, SMS text)."""

    isp: Isp
    payment: Payment
    customer: Customer
    code: str  # formatted, e.g. K7P-4QX
    status_word: str
    method: str
    paid_on: object
    applied: list  # [(Invoice, cents)]
    amount_cents: int

    @property
    def amount(self):
        return money.format_money(self.amount_cents, self.payment.currency)


def method_label(payment):
    """How the payment method is named on a receipt: 'Visa ending 4242', 'Bank ending 6789'."""
    if payment.method_last4:
        name = payment.method_brand or Text(N_("Card") if payment.method_type == "card" else N_("Bank"))
        return N_("%(brand)s ending %(last4)s", brand=name, last4=payment.method_last4)
    if payment.method_brand:  # a payment taken at the counter: "Check 1042", "Cash"
        return payment.method_brand
    kinds = {"card": N_("Card"), "ach": N_("Bank account")}
    return Text(kinds[payment.method_type]) if payment.method_type in kinds else \
        payment.method_type.replace("_", " ").capitalize()


def receipt(payment, applied):
    """The receipt of one payment; ``applied`` is [(invoice, cents)] from billing.payments.applied_to."""
    code = code_for(payment)
    return Receipt(
        isp=Isp.current() or Isp(name="Customer Portal"), payment=payment,
        customer=Customer.get_by_id(payment.customer_id), code=format_code(code),
        status_word=STATUS_WORDS.get(payment.status, payment.status), method=method_label(payment),
        paid_on=(payment.settled_at or payment.created_at).date(), applied=applied,
        amount_cents=payment.amount_cents,
    )


def _short_method(payment, sp):
    kinds = {"card": N_("card"), "ach": N_("bank")}
    kind = sp.text(kinds[payment.method_type]) if payment.method_type in kinds else \
        payment.method_type.replace("_", " ")
    if not payment.method_last4:
        return (payment.method_brand or kind)[:20]
    return f"{(payment.method_brand or kind)[:12]} ..{payment.method_last4}"


def _ascii(text):
    """Text in plain ASCII: accents dropped ("Confirmación" -> "Confirmacion"), anything else as "?"."""
    folded = "".join(ch for ch in unicodedata.normalize("NFKD", text) if not unicodedata.combining(ch))
    return folded.encode("ascii", "replace").decode()


def sms_text(rec, sp=None):
    """The receipt as one SMS: at most 160 plain-ASCII characters (one GSM-7 segment); a long ISP name is cut to
    fit. In the language of ``sp`` (a billing.language.Speaker; English when none)."""
    sp = sp or Speaker()
    p = rec.payment
    def ascii_money(cents):
        text = sp.money(cents, p.currency)
        return text if text.isascii() else f"{money.cents_to_input(cents)} {p.currency}"

    amount = ascii_money(rec.amount_cents)
    if p.fee_cents:
        amount = sp.say("%(amount)s + fee %(fee)s", amount=amount, fee=ascii_money(p.fee_cents))
    on = f"{rec.paid_on:%b %-d %Y}" if sp.lang == "en" else sp.date(rec.paid_on)
    rest = _ascii(sp.say(": payment %(amount)s %(status)s %(date)s, %(method)s. Confirmation %(code)s", amount=amount,
                         status=sp.text(rec.status_word), date=on, method=_short_method(p, sp), code=rec.code))
    name = rec.isp.name.encode("ascii", "replace").decode()
    room = SMS_LIMIT - len(rest)
    text = (name[:room].rstrip() + rest).encode("ascii", "replace").decode()
    return text[:SMS_LIMIT]


def applied_summary(rec):
    """Applied invoices as one line: 'INV-1 $10.00, INV-2 $5.00'."""
    return ", ".join(f"{inv.number} {money.format_money(cents, rec.payment.currency)}" for inv, cents in rec.applied)

