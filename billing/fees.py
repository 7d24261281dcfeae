"""The convenience fee an ISP may pass on for cards and, separately, for bank (ACH) payments.

Off unless the ISP sets it (staff Settings): a percentage of the payment, a fixed amount, or both. The fee
is charged on top of the payment and recorded apart from it (``Payment.fee_cents``): the payment's
``amount_cents`` is what goes to invoices and credit, the fee never does, and the processor is charged
their sum (``billing.payments.expected_charge_cents``).

Rounding: the percentage is of the payment in cents, rounded half up to a whole cent (2.95 % of $10.10 is
29.795 cents, so 30 cents); the fixed part is added after rounding. Percentages are kept as basis points
(hundredths of a percent, integers), so no float ever touches money.
"""
import re
from dataclasses import dataclass
from decimal import Decimal

from babel.numbers import format_percent

from billing.language import Speaker
from billing.words import N_

BASIS = 10_000  # basis points in 100 %
MAX_PERCENT_BP = 1_000  # 10 %: a typo such as 29 (for 2.9) is refused rather than charged
MAX_FIXED_CENTS = 10_000  # $100
_PERCENT = re.compile(r"^(?P<whole>[0-9]{1,2})(?:\.(?P<frac>[0-9]{1,2}))?\s*%?$", re.ASCII)
LABELS = {"card": N_("Card convenience fee"), "ach": N_("Bank payment fee")}


@dataclass(frozen=True)
class FeeRule:
    """A percentage (basis points) and/or a fixed amount (cents) added to a payment."""

    percent_bp: int = 0
    fixed_cents: int = 0

    @property
    def on(self):
        return bool(self.percent_bp or self.fixed_cents)

    def fee_for(self, amount_cents):
        """The fee in cents for a payment of ``amount_cents``: percentage rounded half up, plus the fixed part."""
        if not self.on or amount_cents <= 0:
            return 0
        return (amount_cents * self.percent_bp + BASIS // 2) // BASIS + self.fixed_cents

    def describe(self, currency="USD", lang="en"):
        """The rule in words as the language ``lang`` writes it (English when the portal does not speak it):
        '2.95% + $0.30'. The one way a fee rule is written for customers: on the pages, in the emails and in the
        legal texts (``billing.legal``), whose agreed words depend on it, so it must not change for a language
        without a new version of those texts. The percentage is written by Babel's CLDR data for the language's
        locale without trailing zeros, and the fixed part as ``Speaker.money`` writes money."""
        sp = Speaker(lang)
        parts = []
        if self.percent_bp:
            share = Decimal(self.percent_bp).scaleb(-4)  # basis points as a fraction: 295 -> 0.0295
            parts.append(format_percent(share, format="#,##0.##%", locale=sp.locale))
        if self.fixed_cents:
            parts.append(sp.money(self.fixed_cents, currency))
        return " + ".join(parts)


def percent_text(bp):
    """Basis points as a percentage without trailing zeros: 295 -> '2.95', 300 -> '3'."""
    whole, frac = divmod(bp, 100)
    return f"{whole}.{frac:02d}".rstrip("0").rstrip(".") if frac else str(whole)


def parse_percent(text):
    """A percentage typed by staff ('2.95', '3 %', '') as basis points; ValueError with a message."""
    text = (text or "").strip()
    if not text:
        return 0
    m = _PERCENT.match(text)
    if not m:
        raise ValueError("Enter a percentage like 2.95 (at most 2 decimal places).")
    bp = int(m.group("whole")) * 100 + int((m.group("frac") or "0").ljust(2, "0"))
    if bp > MAX_PERCENT_BP:
        raise ValueError(f"The fee can be at most {percent_text(MAX_PERCENT_BP)}%.")
    return bp


def rule_for(isp, method_type):
    """The ISP's fee rule for a payment type (no fee for a type without one, such as cash at the counter)."""
    if method_type == "card":
        return FeeRule(isp.card_fee_bp, isp.card_fee_fixed_cents)
    if method_type == "ach":
        return FeeRule(isp.ach_fee_bp, isp.ach_fee_fixed_cents)
    return FeeRule()


def fee_cents(isp, method_type, amount_cents):
    """The fee for paying ``amount_cents`` by ``method_type`` under the ISP's current settings."""
    return rule_for(isp, method_type).fee_for(amount_cents)


def rules(isp, method_types):
    """{method_type: FeeRule} for the offered types that have a fee (empty when fees are off)."""
    found = {t: rule_for(isp, t) for t in method_types}
    return {t: r for t, r in found.items() if r.on}


# --- Refunds: the fee goes back in proportion to the amount refunded. --------------------------------
# The share is cumulative: after refunds totalling R of a payment's amount A, the fee returned in all is
# F × R / A rounded half up to a cent, and each refund returns that total less what earlier refunds
# returned. So successive partial refunds never drift: once R reaches A they have returned exactly F.


def fee_share(amount_cents, fee_cents, refunded_cents):
    """The fee returned in all once ``refunded_cents`` of the amount are refunded: F × R / A, rounded half up."""
    if amount_cents <= 0 or fee_cents <= 0:
        return 0
    refunded = min(max(refunded_cents, 0), amount_cents)
    return (2 * fee_cents * refunded + amount_cents) // (2 * amount_cents)


def refund_fee(amount_cents, fee_cents, refunded_before, fee_refunded_before, cents):
    """The fee to return with a refund of ``cents`` more of the amount, after refunds already made."""
    due = fee_share(amount_cents, fee_cents, refunded_before + cents) - fee_refunded_before
    return min(max(due, 0), max(fee_cents - fee_refunded_before, 0))


def split_refund(amount_cents, fee_cents, refunded_before, fee_refunded_before, charge_cents):
    """(amount part, fee part) of a refund of ``charge_cents`` of the whole charge, the inverse of refund_fee.

    The amount part is the largest one whose refund with its fee share fits in ``charge_cents``; the fee
    part is the rest. The caller refuses a refund bigger than what is left of the charge.
    """
    lo, hi = 0, max(min(charge_cents, amount_cents - refunded_before), 0)
    while lo < hi:  # amount + its fee share grows strictly with the amount: bisect
        mid = (lo + hi + 1) // 2
        if mid + refund_fee(amount_cents, fee_cents, refunded_before, fee_refunded_before, mid) <= charge_cents:
            lo = mid
        else:
            hi = mid - 1
    return lo, charge_cents - lo
