"""A balance smaller than the ISP's minimum payment can still be paid off, down to the smallest charge a
processor takes ($0.50); below that it waits for the next bill, and the page says so."""
import datetime as dt
import re

from billing import accounts, money, paylinks, payments
from db import write_tx
from db.models import Isp, Payment
from tests.factories import make_customer, make_invoice
from tests.test_pay_flow import GOOD_CARD, make_payment, pay_at_processor, start

TODAY = dt.date.today()


def _min(cents):
    with write_tx():
        Isp.update(min_payment_cents=cents, max_prepay_cents=0).execute()


def _error(resp):
    m = re.search(r'<span class="error" id="amount-error">([^<]+)</span>', resp.get_data(as_text=True))
    return m and m.group(1)


def test_a_balance_under_the_minimum_is_paid_off_in_full(logged_in, customer):
    _min(500)  # the ISP's minimum is $5.00, and only $0.75 is owed
    make_invoice(customer, 75, due=TODAY - dt.timedelta(days=3), number="TAIL-1")
    assert payments.amount_limits(customer.id)[:2] == (75, 75)
    assert "The minimum payment is $0.75." in _error(start(logged_in, "0.74", htmx=True))
    assert Payment.select().count() == 0
    ref, entry = make_payment(logged_in, "0.75")
    pay_at_processor(logged_in, entry, GOOD_CARD)
    assert "Payment was successful" in logged_in.get(f"/payments/{ref}").get_data(as_text=True)
    assert accounts.summary(customer.id).balance_cents == 0


def test_the_isp_minimum_still_holds_while_more_than_it_is_owed(logged_in, customer):
    _min(500)
    make_invoice(customer, 4000, number="BIG-1")
    assert payments.amount_limits(customer.id)[0] == 500
    assert "The minimum payment is $5.00." in _error(start(logged_in, "0.75", htmx=True))


def test_a_balance_under_the_smallest_charge_is_carried_with_a_clear_message(logged_in, customer):
    _min(100)
    make_invoice(customer, 30, number="CENTS-1")
    for typed in ("0.30", "0.50"):
        message = _error(start(logged_in, typed, htmx=True))
        assert message and "Your balance of $0.30 is less than the smallest payment we can take ($0.50)" in message
        assert "carried to your next bill" in message
    assert Payment.select().count() == 0


def test_what_is_on_its_way_counts_before_the_small_balance_rule(logged_in, customer):
    """$40.00 owed, $39.25 of it already in a payment: $0.75 is left, and that is the minimum now."""
    _min(500)
    make_invoice(customer, 4000, number="BIG-2")
    make_payment(logged_in, "39.25")  # reserved at Make Payment, not yet paid
    low, high, room = payments.amount_limits(customer.id)
    assert (room.owed_cents, low, high) == (75, 75, 75)


def test_a_pay_link_for_a_small_invoice_pays_it_and_never_below_the_smallest_charge(app):
    isp = Isp.current()
    assert paylinks.amount_rules(isp, 75)[0] == 75
    assert paylinks.amount_rules(isp, 7500)[0] == isp.min_payment_cents
    assert paylinks.amount_rules(isp, 20) == (money.SMALLEST_CHARGE_CENTS, 20)
    try:
        paylinks.check_amount(isp, 20, "0.20")
    except payments.FormErrors as e:
        assert "less than the smallest payment we can take" in e.errors["amount"]
    else:
        raise AssertionError("a $0.20 charge was accepted")


def test_settings_refuse_a_minimum_under_the_smallest_charge(app):
    import pytest

    from billing import settings

    form = {"name": "Test ISP", "min_payment": "0.25", "accept_card": "1", "show_invoices": "1",
            "show_payments": "1", "autopay_days_before_due": "3", "default_language": "en"}
    with pytest.raises(settings.SettingsErrors) as refused:
        settings.clean(form)
    assert "at least $0.50" in refused.value.errors["min_payment"]
    assert "min_payment" not in _errors_of(settings, {**form, "min_payment": "0.50"})


def _errors_of(settings, form):
    try:
        settings.clean(form)
    except settings.SettingsErrors as e:
        return e.errors
    return {}
