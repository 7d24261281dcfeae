"""Receipts: the confirmation code, the one-SMS text, the receipt page, support's look-up, and receipt email."""
import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from billing import receipts
from db import write_tx
from db.models import Isp, Outbox, Payment
from tests.factories import make_customer, make_invoice
from tests.test_pay_flow import GOOD_CARD, make_payment, pay_at_processor

LOOKALIKES = set("0O1IL2Z5S8B")


def paid(portal, amount="30.00"):
    """A card payment made through the pay flow; returns the Payment."""
    ref, entry = make_payment(portal, amount)
    pay_at_processor(portal, entry, GOOD_CARD)
    portal.get(f"/payments/{ref}")  # the result page asks the processor, as the customer's browser does
    payment = Payment.get(Payment.ref == ref)
    assert payment.status == "succeeded"
    return payment


@pytest.fixture
def owes(customer):
    return make_invoice(customer, 3000, number="INV-R-1")


def test_confirmation_codes_have_no_lookalike_characters():
    assert not LOOKALIKES & set(receipts.ALPHABET)
    for _ in range(200):
        code = receipts.new_code()
        assert len(code) == receipts.CODE_LENGTH and not LOOKALIKES & set(code)


def test_a_code_typed_or_heard_in_any_case_with_dashes_or_spaces_normalises():
    assert receipts.normalize(" k7p-4qx ") == "K7P4QX"
    assert receipts.normalize("K7P 4QX") == "K7P4QX"
    assert receipts.normalize("K0P-4QX") is None  # 0 is never in a code
    assert receipts.normalize("K7P-4Q") is None


def test_every_new_payment_gets_a_unique_code_when_it_is_created(logged_in, owes):
    a, _ = make_payment(logged_in, "10.00")
    b, _ = make_payment(logged_in, "10.00")
    codes = [Payment.get(Payment.ref == r).confirmation_code for r in (a, b)]
    assert all(codes) and codes[0] != codes[1]


def test_a_code_clash_is_retried_not_a_failure(logged_in, owes, monkeypatch):
    ref, _ = make_payment(logged_in, "10.00")
    taken = Payment.get(Payment.ref == ref).confirmation_code
    other = make_customer()
    with write_tx():
        p = Payment.create(ref="PAY-OLDROW1", customer=other.id, idempotency_key="k" * 20, amount_cents=100,
                           method_type="card", status="succeeded", processor="sandbox")
    fresh = iter([taken, taken, "ACDEFG"])
    monkeypatch.setattr(receipts, "new_code", lambda: next(fresh))
    assert receipts.assign_code(p.id) == "ACDEFG"
    assert receipts.assign_code(p.id) == "ACDEFG"  # assigned once: a second call keeps it


def test_the_sms_text_has_isp_amount_date_last4_and_code(logged_in, owes):
    payment = paid(logged_in)
    rec = receipts.receipt(payment, [])
    text = receipts.sms_text(rec)
    assert len(text) <= 160 and text.isascii()
    assert text.startswith("Test ISP: payment $30.00 received")
    assert f"{dt.date.today():%b} {dt.date.today().day} {dt.date.today():%Y}" in text
    assert "4242" in text and receipts.format_code(payment.confirmation_code) in text


@settings(max_examples=60, deadline=None)
@given(name=st.text(min_size=1, max_size=255), cents=st.integers(1, 10**11),
       brand=st.text(max_size=255), last4=st.from_regex(r"\A[0-9]{4}\Z"))
def test_the_sms_text_never_passes_160_characters_and_always_keeps_the_code(name, cents, brand, last4):
    payment = Payment(ref="PAY-X", amount_cents=cents, currency="USD", method_type="card", status="succeeded",
                      method_brand=brand, method_last4=last4, created_at=dt.datetime(2026, 9, 30, 12))
    rec = receipts.Receipt(isp=Isp(name=name, currency="USD"), payment=payment, customer=None, code="K7P-4QX",
                           status_word="received", method="", paid_on=dt.date(2026, 9, 30), applied=[],
                           amount_cents=cents)
    text = receipts.sms_text(rec)
    assert len(text) <= 160 and text.isascii()
    assert text.endswith("Confirmation K7P-4QX") and last4 in text


def test_receipt_page_shows_code_amount_method_and_the_sms_text(logged_in, owes):
    payment = paid(logged_in)
    html = logged_in.get(f"/payments/{payment.ref}/receipt").get_data(as_text=True)
    code = receipts.format_code(payment.confirmation_code)
    assert f'<strong id="receipt-code" class="code">{code}</strong>' in html
    assert "$30.00" in html and "ending 4242" in html and "INV-R-1" in html
    assert 'id="receipt-sms"' in html and "Test ISP: payment $30.00 received" in html
    text = logged_in.get(f"/payments/{payment.ref}/receipt.txt")
    assert text.mimetype == "text/plain" and len(text.get_data(as_text=True).strip()) <= 160
    assert code in text.get_data(as_text=True)


def test_the_result_page_links_to_the_receipt_and_shows_the_code(logged_in, owes):
    payment = paid(logged_in)
    html = logged_in.get(f"/payments/{payment.ref}").get_data(as_text=True)
    assert f"/payments/{payment.ref}/receipt" in html
    assert receipts.format_code(payment.confirmation_code) in html


def test_a_payment_made_before_codes_existed_gets_one_on_its_receipt(logged_in, customer):
    with write_tx():
        p = Payment.create(ref="PAY-LEGACY1", customer=customer.id, idempotency_key="L" * 20, amount_cents=1500,
                           method_type="card", status="succeeded", processor="sandbox", method_last4="1111",
                           settled_at=dt.datetime(2026, 1, 5))
    assert p.confirmation_code is None
    html = logged_in.get("/payments/PAY-LEGACY1/receipt").get_data(as_text=True)
    code = Payment.get_by_id(p.id).confirmation_code
    assert code and receipts.format_code(code) in html


def test_another_customers_receipt_is_not_found(app, owes, logged_in):
    from tests.factories import Portal

    payment = paid(logged_in)
    other = Portal(app.test_client())
    assert other.login(make_customer().email).status_code == 302
    for path in ("/receipt", "/receipt.txt", "/receipt.pdf", "/receipt/print"):
        assert logged_in.get(f"/payments/{payment.ref}{path}").status_code == 200, path
        assert other.get(f"/payments/{payment.ref}{path}").status_code == 404, path


def test_receipt_needs_a_login(client, customer):
    resp = client.get("/payments/PAY-ANY/receipt")
    assert resp.status_code == 302 and "/login" in resp.location


def test_receipt_email_carries_the_same_code(logged_in, owes):
    payment = paid(logged_in)
    mail = Outbox.get(Outbox.kind == "payment_receipt")
    code = receipts.format_code(payment.confirmation_code)
    assert f"Confirmation code: {code}" in mail.text_body
    assert f"/payments/{payment.ref}/receipt" in mail.text_body


def test_staff_find_a_payment_by_the_code_read_to_them(app, owes, logged_in):
    from tests.factories import Portal
    from tests.staff_support import STAFF_EMAIL, STAFF_PASSWORD, make_staff

    payment = paid(logged_in)
    code = receipts.format_code(payment.confirmation_code)
    make_staff()
    logged_in = Portal(app.test_client())
    assert logged_in.login(STAFF_EMAIL, STAFF_PASSWORD).status_code == 302
    resp = logged_in.get("/staff/payments/find?code=" + code.lower().replace("-", " "))
    assert resp.status_code == 303 and resp.location.endswith(f"/staff/payments/{payment.ref}")
    html = logged_in.get(resp.location).get_data(as_text=True)
    assert code in html and "$30.00" in html and "ending 4242" in html
    missing = logged_in.get("/staff/payments/find?code=AAAAAA")
    assert missing.status_code == 404
    assert "No payment has the confirmation code AAA-AAA." in missing.get_data(as_text=True)
    bad = logged_in.get("/staff/payments/find?code=OO11")
    assert bad.status_code == 404 and 'id="code-error"' in bad.get_data(as_text=True)
    csv_text = logged_in.get("/staff/payments.csv").get_data(as_text=True)
    assert "confirmation_code" in csv_text.splitlines()[0].split(",") and code in csv_text


def test_customers_cannot_use_the_staff_look_up(logged_in):
    assert logged_in.get("/staff/payments/find?code=AAAAAA").status_code == 403


def test_an_unknown_page_is_a_404_for_a_logged_in_customer_not_an_error(logged_in):
    resp = logged_in.get("/no-such-page")
    assert resp.status_code == 404 and "We could not find that page." in resp.get_data(as_text=True)


def test_a_check_taken_at_the_counter_has_a_code_and_a_receipt_the_customer_can_keep(app, tmp_path):
    from tests.factories import Portal
    from tests.staff_support import CLERK_EMAIL, STAFF_PASSWORD, make_staff
    from tests.test_documents import pdf_text
    from tests.test_offline_payments import record

    make_staff(CLERK_EMAIL, STAFF_PASSWORD, staff_role="clerk")
    clerk = Portal(app.test_client())
    assert clerk.login(CLERK_EMAIL, STAFF_PASSWORD).status_code == 302
    c = make_customer()
    make_invoice(c, cents=4000, number="INV-CTR-1")
    assert record(clerk, c, kind="check", amount="40.00", check_number="1042").status_code == 303
    p = Payment.get(Payment.customer == c.id)
    code = receipts.format_code(p.confirmation_code)
    assert p.confirmation_code and code in Outbox.get(Outbox.kind.in_(["payment_receipt", "ach_settled"])).text_body
    assert code in clerk.get(f"/staff/payments/{p.ref}").get_data(as_text=True)
    assert clerk.get(f"/staff/payments/find?code={code}").location.endswith(f"/staff/payments/{p.ref}")
    customer = Portal(app.test_client())
    customer.login(c.email)
    html = customer.get(f"/payments/{p.ref}/receipt").get_data(as_text=True)
    assert code in html and "$40.00" in html and "Check" in html and "INV-CTR-1" in html
    sms = customer.get(f"/payments/{p.ref}/receipt.txt").get_data(as_text=True)
    assert len(sms.strip()) <= 160 and "Check" in sms and code in sms
    assert code in pdf_text(customer.get(f"/payments/{p.ref}/receipt.pdf").get_data(), tmp_path)
