"""Parse and format money as integer cents. The only place text becomes cents."""
import functools
import re
from decimal import Decimal

from babel.numbers import format_currency

from billing.bounds import MAX_CENTS
from billing.words import N_

MAX_INPUT_LENGTH = 20
# The smallest charge a processor takes: Stripe's minimum for USD (and most currencies) is $0.50, and the
# sandbox follows it. A balance smaller than this cannot be paid by card or bank; it waits for the next bill.
SMALLEST_CHARGE_CENTS = 50
# ASCII only: "١٢" is a number to Python's \d but not an amount we accept.
_AMOUNT = re.compile(r"^\$?(?P<whole>[0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)(?:\.(?P<frac>[0-9]+))?$", re.ASCII)
_SYMBOLS = {"USD": "$", "CAD": "$", "AUD": "$", "NZD": "$", "EUR": "€", "GBP": "£"}


class AmountError(ValueError):
    """An amount the customer typed that we cannot accept; str() is the message."""

    @property
    def message(self):
        """The message, as billing.words.Text (so that a page can say it in the customer's language)."""
        return self.args[0]


def parse_amount(text):
    """Turn what a customer typed ("45", "45.5", "$1,045.50") into cents, strictly."""
    if text is None:
        raise AmountError(N_("Enter an amount."))
    text = str(text).strip()
    if not text:
        raise AmountError(N_("Enter an amount."))
    if len(text) > MAX_INPUT_LENGTH:
        raise AmountError(N_("That amount is too long. Enter dollars and cents, like 45.00."))
    if text.startswith("-") or text.startswith("$-"):
        raise AmountError(N_("Enter an amount greater than zero."))
    if not text.isascii():
        raise AmountError(N_("Use only the digits 0-9 and a decimal point, like 45.00."))
    m = _AMOUNT.match(text)
    if not m:
        raise AmountError(N_("Enter the amount in dollars and cents, like 45.00."))
    frac = m.group("frac")
    if frac is not None and len(frac) > 2:
        raise AmountError(N_("Amounts can have at most 2 decimal places (cents)."))
    whole = int(m.group("whole").replace(",", ""))
    cents = whole * 100 + int((frac or "0").ljust(2, "0"))
    if cents <= 0:
        raise AmountError(N_("Enter an amount greater than zero."))
    if cents > MAX_CENTS:
        raise AmountError(N_("Enter an amount of at most %(amount)s.", amount=format_money(MAX_CENTS)))
    return cents


def deposit_cents(text):
    """A verification deposit's cents, typed as cents ("32") or as dollars ("0.32", "$0.32"); None when neither.

    Deposits are under $1, so a bare one- or two-digit number is cents (what the bank statement shows as
    "0.32" is typed "32" as often as not); ``parse_amount`` would read "32" as $32.
    """
    text = (text or "").strip().lstrip("$").strip()
    if re.fullmatch(r"[0-9]{1,2}", text, re.ASCII):
        return int(text)
    if re.fullmatch(r"0?\.[0-9]{2}", text, re.ASCII):
        return int(Decimal(text) * 100)
    return None


def cents_to_input(cents):
    """Cents as a plain form value: 4500 -> "45.00"."""
    sign = "-" if cents < 0 else ""
    cents = abs(int(cents))
    return f"{sign}{cents // 100}.{cents % 100:02d}"


def format_money(cents, currency="USD", locale=None):
    """Cents for display: 123456 -> "$1,234.56"; negative as "-$5.00"; with a Babel ``locale`` ("es_US"), as
    that locale writes the currency (CLDR's patterns, through Babel)."""
    cents = int(cents)
    if locale is not None:
        return _formatted(cents, currency, str(locale))
    sign = "-" if cents < 0 else ""
    cents = abs(cents)
    symbol = _SYMBOLS.get(currency)
    body = f"{cents // 100:,}.{cents % 100:02d}"
    return f"{sign}{symbol}{body}" if symbol else f"{sign}{body} {currency}"


@functools.lru_cache(maxsize=4096)
def _formatted(cents, currency, locale):
    # Babel looks the locale's currency pattern up and parses it on every call (~20 µs); a page shows the
    # same few amounts many times, and the result depends on nothing else.
    return format_currency(Decimal(cents).scaleb(-2), currency, locale=locale)
