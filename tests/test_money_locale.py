"""Money for the customer's locale, still through billing/money.py."""
from billing import money


def test_money_is_written_the_way_each_locale_writes_dollars():
    assert money.format_money(123456, "USD", locale="en_US") == "$1,234.56"
    assert money.format_money(123456, "USD", locale="es_US") == "$1,234.56"
    assert money.format_money(-500, "USD", locale="es_US") == "-$5.00"
    assert money.format_money(123456, "EUR", locale="es") == "1.234,56\xa0€"


def test_without_a_locale_money_reads_as_before():
    assert money.format_money(123456) == "$1,234.56"
    assert money.format_money(-500) == "-$5.00"
