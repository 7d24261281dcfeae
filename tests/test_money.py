"""Money parsing and formatting: integer cents, strictly."""
import pytest

from billing.money import AmountError, cents_to_input, format_money, parse_amount


@pytest.mark.parametrize("text,cents", [
    ("45", 4500), ("45.5", 4550), ("45.50", 4550), ("$45.50", 4550), (" 1,045.07 ", 104507),
    ("0.01", 1), ("1.00", 100), ("999999.99", 99999999), ("007", 700),
])
def test_parse_accepts_dollars_and_cents(text, cents):
    assert parse_amount(text) == cents


@pytest.mark.parametrize("text,message", [
    ("", "Enter an amount."),
    ("   ", "Enter an amount."),
    (None, "Enter an amount."),
    ("12.345", "at most 2 decimal places"),
    ("1e3", "dollars and cents"),
    ("-5", "greater than zero"),
    ("0", "greater than zero"),
    ("0.00", "greater than zero"),
    ("abc", "dollars and cents"),
    ("12,34", "dollars and cents"),
    ("1.2.3", "dollars and cents"),
    ("\u0661\u0662", "digits 0-9"),  # Arabic-Indic digits
    ("\uff11\uff12", "digits 0-9"),  # full-width digits
    ("1" * 21, "too long"),
    ("NaN", "dollars and cents"),
    ("inf", "dollars and cents"),
    ("0x10", "dollars and cents"),
    ("12.", "dollars and cents"),
])
def test_parse_rejects_bad_amounts_with_a_clear_message(text, message):
    with pytest.raises(AmountError) as e:
        parse_amount(text)
    assert message in str(e.value)


@pytest.mark.parametrize("cents,shown", [
    (0, "$0.00"), (1, "$0.01"), (4550, "$45.50"), (123456789, "$1,234,567.89"), (-500, "-$5.00"),
])
def test_format_money(cents, shown):
    assert format_money(cents) == shown


def test_format_money_in_other_currencies():
    assert format_money(1999, "EUR") == "€19.99"
    assert format_money(1999, "CHF") == "19.99 CHF"


def test_cents_round_trip_through_the_form():
    for cents in (1, 99, 100, 4550, 100000):
        assert parse_amount(cents_to_input(cents)) == cents
