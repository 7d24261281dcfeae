"""Limits on numbers and dates where they enter the portal, so that no input can overflow a column or a date.

Every id, page number, amount and date typed, imported or sent through the API is checked against these
before it reaches a query: a database integer holds at most 2^63-1, Python's dates end at 9999-12-31 (so
"9999-12-31 plus a day" would crash), and a sum of amounts must stay far below 2^63.
"""
import datetime as dt
import re

from db.pages import MAX_PAGE

MAX_DB_INT = 2**63 - 1
# The largest single amount (an invoice, a payment, a setting): $10,000,000.00. Even 900 million invoices of
# this size stay below 2^63 cents, so no customer's total can overflow a BIGINT sum.
MAX_CENTS = 10_000_000_00
MIN_DATE = dt.date(1970, 1, 1)
MAX_DATE = dt.date(2199, 12, 31)
_ISO_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$", re.ASCII)


class BoundsError(ValueError):
    """A number or date outside what the portal accepts; str() is the message."""


def parse_date(text):
    """A YYYY-MM-DD date between MIN_DATE and MAX_DATE, or BoundsError saying what to type."""
    text = (text or "").strip()
    if not _ISO_DATE.match(text):
        raise BoundsError("Enter the date as YYYY-MM-DD.")
    try:
        value = dt.date.fromisoformat(text)
    except ValueError:
        raise BoundsError("That is not a real date; use YYYY-MM-DD, like 2026-03-01.") from None
    check_date(value)
    return value


def check_date(value):
    """Raise BoundsError unless the date is within the years the portal handles."""
    if not MIN_DATE <= value <= MAX_DATE:
        raise BoundsError(f"Enter a date between {MIN_DATE.year} and {MAX_DATE.year}.")
    return value


def parse_page(text):
    """A page number from a query string: 1 when missing or not a number, and at most MAX_PAGE."""
    text = (text or "").strip()
    if not text.isascii() or not text.isdigit() or len(text) > 7:
        return 1 if not (text.isascii() and text.isdigit()) else MAX_PAGE
    return min(max(int(text), 1), MAX_PAGE)


def check_cents(cents):
    """Raise BoundsError unless cents is a whole amount from 0 to MAX_CENTS."""
    if not isinstance(cents, int) or isinstance(cents, bool) or not 0 <= cents <= MAX_CENTS:
        raise BoundsError(f"Amounts must be from $0.00 to ${MAX_CENTS // 100:,}.00.")
    return cents


def parse_id(value):
    """A database id from a form or token (an int from 1 to 2^63-1), or None for anything else."""
    text = str(value).strip() if value is not None else ""
    if not text.isascii() or not text.isdigit() or len(text) > 19:
        return None
    number = int(text)
    return number if 1 <= number <= MAX_DB_INT else None


_LINE_BREAKS = {"\x85", "\u2028", "\u2029"}


def line_problem(value):
    """Why this text cannot be one line (a name, a subject: text that may become an email header), or None."""
    for c in value:
        if ord(c) < 0x20 or ord(c) == 0x7F or c in _LINE_BREAKS:
            return "must be one line of text, without line breaks or control characters"
    return None
