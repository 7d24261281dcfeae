"""Convenience fees: the rule and its rounding, settings, what the customer sees, what is charged and recorded."""
import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing import accounts, autopay, fees, receipts
from db import write_tx
from db.models import Allocation, CreditEntry, Isp, Outbox, Payment, SandboxIntent
from tests.factories import make_invoice
from tests.staff_support import staff  # noqa: F401 - fixture
from tests.test_pay_flow import BILLING, GOOD_CARD, key, make_payment, pay_at_processor, ref_of, start

TODAY = dt.date.today()


def set_fees(card=(0, 0), ach=(0, 0)):
    with write_tx():
        Isp.update(card_fee_bp=card[0], card_fee_fixed_cents=card[1], ach_fee_bp=ach[0],
                   ach_fee_fixed_cents=ach[1]).execute()


# --- The rule. ------------------------------------------------------------------------------------


@pytest.mark.parametrize("bp,fixed,amount,fee", [
    (295, 30, 1010, 60),      # 29.795 cents rounds half up to 30, plus 30
    (250, 0, 1010, 25),       # 25.25 -> 25
    (250, 0, 1020, 26),       # 25.5 exactly: half up -> 26
    (0, 150, 99999, 150),     # fixed only
    (300, 0, 5999, 180),      # 179.97 -> 180
    (0, 0, 5000, 0),          # off
])
def test_fee_is_the_percentage_rounded_half_up_plus_the_fixed_part(bp, fixed, amount, fee):
    assert fees.FeeRule(bp, fixed).fee_for(amount) == fee


@given(bp=st.integers(0, fees.MAX_PERCENT_BP), fixed=st.integers(0, fees.MAX_FIXED_CENTS),
       amount=st.integers(1, 10**10))
def test_fee_matches_exact_rational_rounding_half_up(bp, fixed, amount):
    from fractions import Fraction

    exact = Fraction(amount * bp, 10_000)
    expected = int(exact) + (1 if exact - int(exact) >= Fraction(1, 2) else 0) + (fixed if bp or fixed else 0)
    assert fees.FeeRule(bp, fixed).fee_for(amount) == expected


@pytest.mark.parametrize("text,bp", [("2.95", 295), ("3", 300), ("3 %", 300), ("0.5", 50), ("", 0), ("10", 1000)])
def test_staff_percentages_are_read_strictly_into_basis_points(text, bp):
    assert fees.parse_percent(text) == bp


@pytest.mark.parametrize("text", ["29", "2.955", "-1", "2,95", "abc", "１"])
def test_bad_or_too_high_percentages_are_refused(text):
    with pytest.raises(ValueError):
        fees.parse_percent(text)


def test_rule_describes_itself():
    assert fees.FeeRule(295, 30).describe() == "2.95% + $0.30"
    assert fees.FeeRule(300, 0).describe() == "3%"
    assert fees.FeeRule(0, 125).describe() == "$1.25"


# --- Settings. --------------------------------------------------------------------------------------


def _settings_form(staff_portal, **changes):
    import re

    html = staff_portal.get("/staff/settings").get_data(as_text=True)
    form = dict(re.findall(r'<input id="s-[^"]+" name="([^"]+)"[^>]*?value="([^"]*)"', html))
    for name in re.findall(r'<input type="checkbox" name="([^"]+)" value="1" checked', html):
        form[name] = "1"
    form["autopay_days_before_due"] = "0"
    form.update(changes)
    return form


def test_fees_are_off_by_default_and_staff_set_them_per_type(app, staff):
    isp = Isp.current()
    assert (isp.card_fee_bp, isp.card_fee_fixed_cents, isp.ach_fee_bp, isp.ach_fee_fixed_cents) == (0, 0, 0, 0)
    resp = staff.post("/staff/settings", _settings_form(staff, card_fee_percent="2.95", card_fee_fixed="0.30",
                                                        ach_fee_percent="", ach_fee_fixed="1.00"))
    assert resp.status_code == 303, resp.get_data(as_text=True)
    isp = Isp.current()
    assert (isp.card_fee_bp, isp.card_fee_fixed_cents, isp.ach_fee_bp, isp.ach_fee_fixed_cents) == (295, 30, 0, 100)
    html = staff.get("/staff/settings").get_data(as_text=True)
    assert 'name="card_fee_percent" inputmode="decimal" maxlength="6" value="2.95"' in html


def test_a_bad_fee_is_shown_next_to_its_field_and_nothing_is_saved(app, staff):
    resp = staff.post("/staff/settings", _settings_form(staff, card_fee_percent="29", card_fee_fixed="abc"))
    html = resp.get_data(as_text=True)
    assert resp.status_code == 422
    assert 'id="card_fee_percent-error">The fee can be at most 10%.' in html
    assert 'id="card_fee_fixed-error">' in html
    assert Isp.current().card_fee_bp == 0


# --- What the customer sees and what is charged. ----------------------------------------------------


@pytest.fixture
def owing(customer):
    return make_invoice(customer, 6000, due=TODAY + dt.timedelta(days=5), number="INV-FEE-1")


def test_no_fee_anywhere_when_the_isp_leaves_it_off(logged_in, owing):
    assert "fee" not in logged_in.get("/payments").get_data(as_text=True).lower()
    ref = ref_of(start(logged_in, "60.00"))
    billing = logged_in.get(f"/payments/{ref}").get_data(as_text=True)
    assert 'id="fee-lines"' not in billing and "fee" not in billing.lower()
    assert Payment.get(Payment.ref == ref).fee_cents == 0


def test_the_fee_is_its_own_line_before_make_payment_and_charged_exactly_on_top(logged_in, owing):
    set_fees(card=(295, 30))
    method_page = logged_in.get("/payments").get_data(as_text=True)
    assert 'id="fee-note-card">(adds a 2.95% + $0.30 fee)' in method_page and 'id="fee-note-ach"' not in method_page
    ref = ref_of(start(logged_in, "60.00"))
    billing = logged_in.get(f"/payments/{ref}").get_data(as_text=True)
    assert billing.index('id="fee-lines"') < billing.index("Make Payment")
    assert 'id="fee-amount">$2.07<' in billing  # 177 cents (2.95 % of 6000) + 30
    assert '<strong>$62.07</strong>' in billing
    resp = logged_in.post(f"/payments/{ref}/billing", BILLING)
    payment = Payment.get(Payment.ref == ref)
    assert (payment.amount_cents, payment.fee_cents) == (6000, 207)
    assert SandboxIntent.get_by_id(payment.processor_ref).amount_cents == 6207  # the processor charges the total
    pay_at_processor(logged_in, resp.location, GOOD_CARD)
    result = logged_in.get(f"/payments/{ref}").get_data(as_text=True)
    assert "Payment was successful" in result and 'id="pay-fee">$2.07' in result and 'id="pay-total">$62.07' in result
    # The fee pays no invoice and never becomes credit: the invoice is paid by exactly its amount.
    assert [a.amount_cents for a in Allocation.select().where(Allocation.payment == payment.id)] == [6000]
    assert not CreditEntry.select().where(CreditEntry.payment == payment.id).exists()
    assert accounts.summary(payment.customer_id).credit_cents == 0


def test_changing_type_or_amount_before_billing_recomputes_the_fee(logged_in, owing):
    set_fees(card=(300, 0), ach=(0, 150))
    k = key()
    ref = ref_of(start(logged_in, "60.00", k=k))
    assert Payment.get(Payment.ref == ref).fee_cents == 180
    start(logged_in, "40.00", method_type="ach", k=k)
    assert Payment.get(Payment.ref == ref).fee_cents == 150


def test_the_receipt_the_sms_and_the_email_show_the_fee(logged_in, owing):
    set_fees(card=(0, 199))
    ref, entry = make_payment(logged_in, "60.00")
    pay_at_processor(logged_in, entry, GOOD_CARD)
    logged_in.get(f"/payments/{ref}")
    payment = Payment.get(Payment.ref == ref)
    html = logged_in.get(f"/payments/{ref}/receipt").get_data(as_text=True)
    assert 'id="receipt-fee">$1.99' in html and 'id="receipt-total">$61.99' in html
    sms = receipts.sms_text(receipts.receipt(payment, []))
    assert "payment $60.00 + fee $1.99 received" in sms and len(sms) <= 160
    body = Outbox.get(Outbox.kind == "payment_receipt").text_body
    assert "Card convenience fee: $1.99 (total charged $61.99)" in body


def test_staff_export_and_the_api_feed_carry_the_fee_apart_from_the_amount(app, logged_in, owing):
    import json

    from billing import api as api_rules
    from tests.factories import Portal
    from tests.staff_support import STAFF_EMAIL, STAFF_PASSWORD, make_staff

    set_fees(card=(0, 250))
    ref, entry = make_payment(logged_in, "60.00")
    pay_at_processor(logged_in, entry, GOOD_CARD)
    logged_in.get(f"/payments/{ref}")
    make_staff()
    staff = Portal(app.test_client())
    staff.login(STAFF_EMAIL, STAFF_PASSWORD)
    lines = staff.get("/staff/payments.csv").get_data(as_text=True).splitlines()
    header = lines[0].split(",")
    row = dict(zip(header, lines[1].split(",")))
    assert (row["amount"], row["fee"], row["charged"]) == ("60.00", "2.50", "62.50")
    app.config["API_FEED_LAG_SECONDS"] = 0  # the feed's 5-second lag is tested in tests/test_api.py
    _token_row, token = api_rules.create_token("books", actor="test")
    feed = json.loads(app.test_client().get("/api/v1/payments", headers={"Authorization": f"Bearer {token}"},
                                            query_string={"limit": 10}).get_data(as_text=True))
    mine = [p for p in feed["payments"] if p["ref"] == ref]
    assert mine, feed
    assert (mine[0]["amount_cents"], mine[0]["fee_cents"], mine[0]["charged_cents"]) == (6000, 250, 6250)
    assert mine[0]["applied"] == [{"invoice_number": "INV-FEE-1", "amount_cents": 6000}]


def test_autopay_charges_the_same_fee_and_its_authorization_says_so(app, customer, owing):
    set_fees(card=(295, 30))
    text = autopay.authorization_text()
    assert "convenience fee of 2.95% + $0.30" in text and "does not pay the invoice" in text
    set_fees()
    assert "fee" not in autopay.authorization_text()


def test_autopay_charges_the_invoice_plus_the_fee_and_applies_only_the_invoice_amount(ledger_db):
    from billing.processors.sandbox import SandboxProcessor
    from tests.test_autopay import enrolled, run

    sandbox = SandboxProcessor(webhook_secret="whsec_test")
    set_fees(card=(300, 25))
    customer, _method = enrolled(sandbox)
    inv = make_invoice(customer, 5000, due=TODAY)
    summary, lines = run(sandbox)
    payment = Payment.get(Payment.customer == customer.id)
    assert payment.status == "succeeded" and (payment.amount_cents, payment.fee_cents) == (5000, 175)
    assert SandboxIntent.get_by_id(payment.processor_ref).amount_cents == 5175
    assert [a.amount_cents for a in Allocation.select().where(Allocation.payment == payment.id)] == [5000]
    assert accounts.invoice_view(customer.id, inv.id).balance_cents == 0
    assert not CreditEntry.select().where(CreditEntry.payment == payment.id).exists()


def test_a_full_refund_of_the_charge_takes_back_the_amount_and_the_fee_never_touches_the_ledger(logged_in, owing):
    from billing import payments

    set_fees(card=(0, 300))
    ref, entry = make_payment(logged_in, "60.00")
    pay_at_processor(logged_in, entry, GOOD_CARD)
    logged_in.get(f"/payments/{ref}")
    payment = Payment.get(Payment.ref == ref)
    assert payments.record_refunds(payment.id, [("re_whole_charge", 6300)])  # as a dashboard refund reports it
    payment = Payment.get_by_id(payment.id)
    assert payment.status == "refunded" and payments.taken_back(payment.id) == 6000
    assert accounts.invoice_view(payment.customer_id, owing.id).balance_cents == 6000
    assert not payments.record_refunds(payment.id, [("re_too_much", 6301)])
