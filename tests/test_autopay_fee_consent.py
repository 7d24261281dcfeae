"""Autopay charges a convenience fee only when the authorization the customer accepted names it: a fee the
ISP turned on (or raised) later is not charged, the customer is asked once by email and on the Payment
methods page to accept the new terms, and after accepting them the fee is charged."""
import datetime as dt

from billing import autopay, fees
from db import write_tx
from db.models import AutopayAuthorization, AuditLog, Isp, Outbox, Payment, PaymentMethod, SandboxIntent
from tests.factories import make_invoice
from tests.test_autopay import enrolled, run, sandbox  # noqa: F401 - fixture
from tests.test_autopay_pages import add_card
from tests.test_fees import set_fees

TODAY = dt.date.today()


def reauthorize_mails():
    return list(Outbox.select().where(Outbox.kind == "autopay_reauthorize").order_by(Outbox.id))


def charged(customer):
    return list(Payment.select().where(Payment.customer == customer.id).order_by(Payment.id))


def test_a_fee_turned_on_after_the_authorization_is_not_charged_and_the_customer_is_asked_once(sandbox):
    customer, method = enrolled(sandbox)  # fees off: the accepted text names none
    set_fees(card=(300, 25))
    make_invoice(customer, 5000, due=TODAY, number="AP-1")
    summary, _lines = run(sandbox)
    payment = charged(customer)[0]
    assert payment.status == "succeeded" and (payment.amount_cents, payment.fee_cents) == (5000, 0)
    assert SandboxIntent.get_by_id(payment.processor_ref).amount_cents == 5000  # nothing more at the processor
    mails = reauthorize_mails()
    assert len(mails) == 1 and mails[0].to_addr == customer.email
    assert "3% + $0.25" in mails[0].text_body and "without the fee" in mails[0].text_body
    assert AuditLog.get(AuditLog.action == "autopay.fee_not_agreed").entity_id == str(customer.id)
    assert autopay.status(customer.id).unagreed_fee.describe() == "3% + $0.25"

    make_invoice(customer, 2000, due=TODAY, number="AP-2")  # the next run: still no fee, no second email
    run(sandbox)
    assert [p.fee_cents for p in charged(customer)] == [0, 0] and len(reauthorize_mails()) == 1


def test_after_accepting_the_new_terms_autopay_charges_the_fee(sandbox):
    customer, method = enrolled(sandbox)
    set_fees(card=(300, 25))
    assert autopay.status(customer.id).unagreed_fee
    autopay.turn_on(customer.id, method.id, accepted=True, ip="203.0.113.9", user_agent="pytest")
    assert "convenience fee of 3% + $0.25" in AutopayAuthorization.select().order_by(AutopayAuthorization.id.desc()
                                                                                    ).first().text
    assert autopay.status(customer.id).unagreed_fee is None
    make_invoice(customer, 5000, due=TODAY)
    run(sandbox)
    payment = charged(customer)[0]
    assert payment.fee_cents == 175 and SandboxIntent.get_by_id(payment.processor_ref).amount_cents == 5175
    assert reauthorize_mails() == []


def test_a_raised_fee_is_not_charged_under_the_old_authorization_but_a_renamed_isp_is_no_new_fee(sandbox):
    set_fees(card=(250, 0))
    customer, method = enrolled(sandbox)
    auth = AutopayAuthorization.get(AutopayAuthorization.customer == customer.id)
    with write_tx():
        Isp.update(name="Renamed Fiber Co").execute()
    assert autopay.fee_authorized(auth, "card")  # the fee the customer agreed to, whoever the ISP is now
    assert autopay.autopay_fee(auth, "card", 5000) == 125
    set_fees(card=(300, 0))
    assert not autopay.fee_authorized(auth, "card")
    make_invoice(customer, 5000, due=TODAY)
    run(sandbox)
    assert charged(customer)[0].fee_cents == 0 and len(reauthorize_mails()) == 1
    set_fees()  # fees off again: nothing to agree to
    assert autopay.fee_authorized(auth, "card") and autopay.status(customer.id).unagreed_fee is None


def test_the_upcoming_notice_names_only_a_fee_the_customer_agreed_to(sandbox):
    customer, _method = enrolled(sandbox)
    set_fees(card=(300, 25))
    make_invoice(customer, 5000, due=TODAY + dt.timedelta(days=2), number="SOON-1")
    run(sandbox)
    upcoming = Outbox.get(Outbox.kind == "autopay_upcoming")
    assert "$50.00" in upcoming.text_body and "fee" not in upcoming.text_body
    assert len(reauthorize_mails()) == 1  # asked already, before any charge


def test_the_methods_page_asks_to_accept_the_new_terms_and_accepting_them_clears_it(logged_in, customer):
    add_card(logged_in)
    method = PaymentMethod.get()
    logged_in.post("/methods/autopay/on", {"method": str(method.id), "accepted": "1"})
    assert 'id="autopay-reauthorize"' not in logged_in.get("/methods").get_data(as_text=True)
    set_fees(card=(295, 30))
    page = logged_in.get("/methods").get_data(as_text=True)
    assert 'id="autopay-reauthorize"' in page and "without the fee" in page
    home = logged_in.get("/").get_data(as_text=True)  # Home says so too, and links to the new terms
    assert 'id="autopay-reauthorize-home"' in home and "without the new 2.95% + $0.30 fee" in home
    assert "2.95% + $0.30" in page and "convenience fee of 2.95% + $0.30" in page  # the new terms, to accept
    again = logged_in.post("/methods/autopay/on", {"method": str(method.id), "accepted": "1"})
    assert again.status_code == 200 and 'id="autopay-reauthorize"' not in again.get_data(as_text=True)
    assert 'id="autopay-reauthorize-home"' not in logged_in.get("/").get_data(as_text=True)
    assert AutopayAuthorization.select().count() == 2
    assert fees.fee_cents(Isp.current(), "card", 5000) == 178


def test_autopay_status_reads_enrolment_and_method_once_and_the_authorization_only_when_a_fee_is_on(
        logged_in, customer):
    from tests.factories import counting_queries

    add_card(logged_in)
    logged_in.post("/methods/autopay/on", {"method": str(PaymentMethod.get().id), "accepted": "1"})
    with counting_queries() as seen:
        assert autopay.status(customer.id).unagreed_fee is None
    assert sum("autopay_enrolment" in sql for sql in seen) == 1, seen  # the one statement that joins them
    assert not any('FROM "autopay_authorization"' in sql for sql in seen), seen  # no fee: nothing to agree to
    set_fees(card=(295, 30))
    with counting_queries() as seen:
        assert autopay.status(customer.id).unagreed_fee.describe() == "2.95% + $0.30"
    assert sum("autopay_enrolment" in sql for sql in seen) == 1, seen
    assert sum('FROM "autopay_authorization"' in sql for sql in seen) == 1, seen
