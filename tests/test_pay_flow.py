"""The pay flow through HTTP: amount rules, billing, the sandbox processor, exactly-once, ACH, webhooks."""
import datetime as dt
import json
import logging
import re
import time
from urllib.parse import parse_qs, urlsplit

import pytest

from billing import accounts, payments
from db import database
from db.models import Allocation, Payment, PaymentInvoice, PaymentMethod, SandboxEvent, WebhookEvent
from tests.factories import make_invoice
from views.sandbox import deliver_events, tick

TODAY = dt.date.today()
BILLING = {"name": "Dana Demo", "street": "12 Ridge Road", "city": "Austin", "state": "TX", "zip": "78701",
           "email": "dana@example.test", "phone": "512-555-0100"}
GOOD_CARD = {"number": "4242 4242 4242 4242", "expiry": "12 / 34", "cvc": "123", "zip": "78701"}
ACH_OK = {"holder": "Dana Demo", "routing": "110000000", "account": "000123456789", "account_type": "checking",
          "accepted": "1"}


def key():
    return payments.new_idempotency_key()


def start(portal, amount="50.00", method_type="card", k=None, htmx=False, **extra):
    data = {"amount": amount, "method_type": method_type, "key": k or key(), **extra}
    return portal.post("/pay", data, htmx=htmx)


def ref_of(resp):
    return resp.location.rsplit("/", 1)[1]


def make_payment(portal, amount="50.00", method_type="card", **extra):
    """Steps 2 and 3; returns (payment ref, the processor's entry URL)."""
    ref = ref_of(start(portal, amount, method_type, **extra))
    resp = portal.post(f"/payments/{ref}/billing", BILLING)
    assert resp.status_code == 303, resp.get_data(as_text=True)
    return ref, resp.location


def pay_at_processor(portal, entry_url, fields):
    """Submit the sandbox's entry page, as the customer does in the pop-up."""
    parts = urlsplit(entry_url)
    q = {k: v[0] for k, v in parse_qs(parts.query).items()}
    return portal.post(parts.path, {**q, **fields})  # fields win, e.g. a forged "back"


@pytest.fixture
def owing(customer):
    """The logged-in customer owes two invoices: $30 (older) and $40."""
    old = make_invoice(customer, 3000, due=TODAY - dt.timedelta(days=20), number="OLD-1")
    new = make_invoice(customer, 4000, due=TODAY + dt.timedelta(days=10), number="NEW-2")
    return old, new


# --- Step 2: amount rules. -----------------------------------------------------


def test_payments_tab_prefills_the_balance_due(logged_in, owing):
    html = logged_in.get("/payments").get_data(as_text=True)
    assert 'name="amount" inputmode="decimal" autocomplete="off" maxlength="20" value="70.00"' in html
    assert "Credit / Debit Card" in html and "ACH" in html and ">Continue<" in html


def test_pay_now_prefills_that_invoices_balance(logged_in, owing):
    old, new = owing
    html = logged_in.get(f"/invoices/{new.id}/pay").get_data(as_text=True)
    assert 'value="40.00"' in html and f'name="invoice_id" value="{new.id}"' in html


@pytest.mark.parametrize("amount,message", [
    ("12.345", "at most 2 decimal places"),
    ("1e3", "dollars and cents"),
    ("-5", "greater than zero"),
    ("0", "greater than zero"),
    ("abc", "dollars and cents"),
    ("", "Enter an amount."),
    ("\u0663\u0660", "digits 0-9"),
    ("9" * 400, "too long"),
    ("0.99", "The minimum payment is $1.00."),
    ("270.01", "The most you can pay now is $270.00."),  # $70 owed + $200 allowed prepayment
])
def test_bad_amounts_get_a_message_at_the_field_and_nothing_is_created(logged_in, owing, amount, message):
    resp = start(logged_in, amount, htmx=True)
    assert resp.status_code == 422
    html = resp.get_data(as_text=True)
    m = re.search(r'<span class="error" id="amount-error">([^<]+)</span>', html)
    assert m and message in m.group(1)
    assert 'aria-describedby="amount-error"' in html
    assert Payment.select().count() == 0


def test_nothing_to_pay_without_prepayment(logged_in, customer):
    from db.models import Isp

    Isp.update(max_prepay_cents=0).execute()
    resp = start(logged_in, "5.00")
    assert "You have no balance to pay right now." in resp.get_data(as_text=True)


def test_a_bad_payment_type_or_saved_method_is_refused(logged_in, owing):
    assert "Choose a payment type." in start(logged_in, method_type="bitcoin").get_data(as_text=True)
    resp = start(logged_in, saved_method="12345")
    assert "Choose one of your saved methods" in resp.get_data(as_text=True)
    assert Payment.select().count() == 0


def test_a_form_without_its_key_has_expired(logged_in, owing):
    resp = logged_in.post("/pay", {"amount": "10.00", "method_type": "card"})
    assert resp.status_code == 422 and "This form has expired" in resp.get_data(as_text=True)


def test_continue_shows_billing_information_prefilled(logged_in, customer, owing):
    resp = start(logged_in, "70.00", htmx=True)
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200 and html.lstrip().startswith('<section id="pay-step">')
    assert "Billing Information" in html and f'value="{customer.street}"' in html
    assert "save this payment method to auto pay" in html.lower() and "Make Payment" in html
    assert resp.headers["HX-Push-Url"].startswith("/payments/PAY-")


def test_resubmitting_step_two_keeps_one_payment(logged_in, owing):
    k = key()
    first = ref_of(start(logged_in, "20.00", k=k))
    second = ref_of(start(logged_in, "25.00", k=k))  # went back and changed the amount
    assert first == second
    assert Payment.select().count() == 1 and Payment.get().amount_cents == 2500


# --- Step 3: billing information. ----------------------------------------------------


@pytest.mark.parametrize("field,value,message", [
    ("name", "", "Enter your name."),
    ("street", "", "Enter the street address."),
    ("city", "x" * 101, "too long"),
    ("state", "Texas", "2-letter state code"),
    ("zip", "7870", "5-digit ZIP"),
    ("email", "dana@", "Enter an email address"),
    ("phone", "555", "10-digit phone number"),
])
def test_billing_fields_are_validated_one_by_one(logged_in, owing, field, value, message):
    ref = ref_of(start(logged_in))
    resp = logged_in.post(f"/payments/{ref}/billing", {**BILLING, field: value}, htmx=True)
    assert resp.status_code == 422
    m = re.search(rf'<span class="error" id="{field}-error">([^<]+)</span>', resp.get_data(as_text=True))
    assert m and message in m.group(1)
    p = Payment.get(Payment.ref == ref)
    assert p.status == payments.CREATED and p.processor_ref is None


def test_make_payment_without_js_opens_the_processor_page_in_this_tab(logged_in, owing):
    ref, entry = make_payment(logged_in, "70.00")
    q = parse_qs(urlsplit(entry).query)
    assert entry.startswith("/sandbox/pay/pi_sbx_") and q["mode"] == ["page"] and q["back"] == [f"/payments/{ref}"]
    page = logged_in.get(entry).get_data(as_text=True)
    assert "Card number" in page and "Expiry" in page and "CVC" in page and "ZIP" in page and ">Pay<" in page
    assert "$70.00" in page
    p = Payment.get(Payment.ref == ref)
    assert p.status == payments.AWAITING_DETAILS and p.billing_state == "TX"


def test_make_payment_with_htmx_shows_the_payment_window_step(logged_in, owing):
    ref = ref_of(start(logged_in))
    resp = logged_in.post(f"/payments/{ref}/billing", BILLING, htmx=True)
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200 and 'id="pay-window"' in html
    assert 'data-popup-url="/sandbox/pay/' in html and "mode=popup" in html and "mode=inline" in html
    assert 'id="pay-blocked"' in html and "blocked the payment window" in html
    assert 'hx-trigger="every 2s, check"' in html


# --- The processor's page and the outcome. --------------------------------------------


def test_card_payment_for_the_total_goes_to_the_oldest_invoice_first(logged_in, owing):
    old, new = owing
    ref, entry = make_payment(logged_in, "50.00")
    resp = pay_at_processor(logged_in, entry, GOOD_CARD)
    assert resp.status_code == 303 and resp.location == f"/payments/{ref}"
    page = logged_in.get(resp.location).get_data(as_text=True)
    assert "Payment was successful" in page and ref in page and "$50.00" in page
    assert "Visa ending 4242" in page and "OLD-1" in page and "NEW-2" in page
    assert accounts.invoice_view(old.customer_id, old.id).balance_cents == 0
    assert accounts.invoice_view(old.customer_id, new.id).balance_cents == 2000


def test_pay_now_fills_that_invoice_first(logged_in, owing):
    old, new = owing
    ref, entry = make_payment(logged_in, "40.00", invoice_id=str(new.id))
    pay_at_processor(logged_in, entry, GOOD_CARD)
    logged_in.get(f"/payments/{ref}")
    assert accounts.invoice_view(new.customer_id, new.id).status == "Paid"
    assert accounts.invoice_view(old.customer_id, old.id).balance_cents == 3000
    assert f"Payment {ref} applied" in logged_in.get(f"/invoices/{new.id}").get_data(as_text=True)


def test_the_outcome_comes_from_the_processor_not_the_url(logged_in, owing):
    ref, entry = make_payment(logged_in)
    for url in (f"/payments/{ref}?status=succeeded", f"/payments/{ref}/status?seen=x&paid=1"):
        assert "Payment was successful" not in logged_in.get(url, htmx=True).get_data(as_text=True)
    assert Payment.get(Payment.ref == ref).status == payments.AWAITING_DETAILS


def test_polling_returns_the_small_poller_until_something_changes(logged_in, owing):
    ref, entry = make_payment(logged_in)
    poll = logged_in.get(f"/payments/{ref}/status?seen=awaiting_details", htmx=True)
    assert poll.get_data(as_text=True).startswith('<p id="pay-poll"') and "HX-Retarget" not in poll.headers
    pay_at_processor(logged_in, entry, GOOD_CARD)
    done = logged_in.get(f"/payments/{ref}/status?seen=awaiting_details", htmx=True)
    assert done.headers["HX-Retarget"] == "#pay-step" and "Payment was successful" in done.get_data(as_text=True)
    assert "data-pay-final" in done.get_data(as_text=True)


@pytest.mark.parametrize("fields,field,message", [
    ({"number": "4242 4242 4242 4241"}, "number", "not valid"),
    ({"number": ""}, "number", "Enter the card number."),
    ({"expiry": "13 / 30"}, "expiry", "01 to 12"),
    ({"expiry": "01 / 20"}, "expiry", "expired"),
    ({"expiry": "soon"}, "expiry", "MM / YY"),
    ({"cvc": "12"}, "cvc", "3-digit"),
    ({"zip": "abc"}, "zip", "5-digit ZIP"),
])
def test_card_entry_is_checked_with_a_clear_message(logged_in, owing, fields, field, message):
    ref, entry = make_payment(logged_in)
    resp = pay_at_processor(logged_in, entry, {**GOOD_CARD, **fields})
    assert resp.status_code == 422
    m = re.search(rf'id="{field}-error">([^<]+)<', resp.get_data(as_text=True))
    assert m and message in m.group(1)
    assert Payment.get(Payment.ref == ref).status == payments.AWAITING_DETAILS


@pytest.mark.parametrize("number,reason", [
    ("4000 0000 0000 0002", "Your card was declined."),
    ("4000 0000 0000 9995", "Your card has insufficient funds."),
])
def test_a_declined_card_records_nothing_and_another_card_can_pay(logged_in, owing, number, reason):
    ref, entry = make_payment(logged_in, "30.00")
    resp = pay_at_processor(logged_in, entry, {**GOOD_CARD, "number": number})
    assert resp.status_code == 402 and reason in resp.get_data(as_text=True)
    page = logged_in.get(f"/payments/{ref}").get_data(as_text=True)
    assert "Payment was successful" not in page and reason in page
    assert Allocation.select().count() == 0
    resp = pay_at_processor(logged_in, entry, GOOD_CARD)
    assert resp.status_code == 303
    assert "Payment was successful" in logged_in.get(f"/payments/{ref}").get_data(as_text=True)
    assert Allocation.select().count() == 1


def test_three_d_secure_asks_for_a_challenge_in_the_window(logged_in, owing):
    ref, entry = make_payment(logged_in, "30.00")
    resp = pay_at_processor(logged_in, entry, {**GOOD_CARD, "number": "4000 0027 6000 3184"})
    html = resp.get_data(as_text=True)
    assert "Confirm it&#39;s you" in html or "Confirm it's you" in html
    q = {k: v[0] for k, v in parse_qs(urlsplit(entry).query).items()}
    intent_id = urlsplit(entry).path.rsplit("/", 1)[1]
    failed = logged_in.post(f"/sandbox/pay/{intent_id}/challenge", {**q, "outcome": "fail"})
    assert failed.status_code == 402 and "could not authenticate" in failed.get_data(as_text=True)
    pay_at_processor(logged_in, entry, {**GOOD_CARD, "number": "4000 0027 6000 3184"})
    ok = logged_in.post(f"/sandbox/pay/{intent_id}/challenge", {**q, "outcome": "approve"})
    assert ok.status_code == 303
    assert "Payment was successful" in logged_in.get(f"/payments/{ref}").get_data(as_text=True)


def test_the_entry_page_needs_the_client_secret(logged_in, owing):
    ref, entry = make_payment(logged_in)
    path = urlsplit(entry).path
    assert logged_in.get(path + "?secret=wrong").status_code == 404
    assert logged_in.get(path).status_code == 404


def test_return_address_cannot_leave_the_site(logged_in, owing):
    ref, entry = make_payment(logged_in)
    resp = pay_at_processor(logged_in, entry, {**GOOD_CARD, "back": "https://evil.example/"})
    assert resp.status_code == 303 and resp.location == "/payments"


# --- Exactly once. ----------------------------------------------------------------------


def test_double_click_on_pay_charges_once(logged_in, owing):
    ref, entry = make_payment(logged_in, "70.00")
    first = pay_at_processor(logged_in, entry, GOOD_CARD)
    second = pay_at_processor(logged_in, entry, GOOD_CARD)
    assert first.status_code == second.status_code == 303
    logged_in.get(f"/payments/{ref}")
    assert Allocation.select().count() == 2  # OLD-1 and NEW-2, once each
    assert sum(a.amount_cents for a in Allocation.select()) == 7000


def test_popup_page_and_webhook_all_reporting_allocate_once(app, logged_in, owing):
    ref, entry = make_payment(logged_in, "70.00")
    pay_at_processor(logged_in, entry, GOOD_CARD)
    for _ in range(3):
        logged_in.get(f"/payments/{ref}")
        logged_in.get(f"/payments/{ref}/status?seen=awaiting_details", htmx=True)
    tick(app)  # the processor's webhook arrives too
    event = SandboxEvent.get(SandboxEvent.event_type == "payment_intent.succeeded")
    SandboxEvent.update(delivered_at=None).where(SandboxEvent.id == event.id).execute()  # and again
    deliver_events(app)
    assert WebhookEvent.select().count() == 1
    assert sum(a.amount_cents for a in Allocation.select()) == 7000
    assert Payment.get(Payment.ref == ref).status == payments.SUCCEEDED


def test_make_payment_twice_opens_one_intent(logged_in, owing):
    ref = ref_of(start(logged_in))
    first = logged_in.post(f"/payments/{ref}/billing", BILLING).location
    second = logged_in.post(f"/payments/{ref}/billing", BILLING).location
    assert urlsplit(first).path == urlsplit(second).path


def test_reload_mid_flow_and_new_login_show_the_attempt_not_a_new_payment(app, logged_in, customer, owing):
    ref, entry = make_payment(logged_in, "30.00")
    logged_in.post("/logout")
    logged_in.login(customer.email)
    home = logged_in.get("/").get_data(as_text=True)
    assert ref in home and "waiting for payment details" in home
    tab = logged_in.get("/payments").get_data(as_text=True)
    assert ref in tab and "Continue this payment" in tab
    page = logged_in.get(f"/payments/{ref}").get_data(as_text=True)
    assert "Make the payment" in page and ref in page and "Open the payment window" in page


def test_a_canceled_payment_cannot_be_paid(logged_in, owing):
    ref, entry = make_payment(logged_in)
    assert logged_in.post(f"/payments/{ref}/cancel").status_code == 303
    resp = pay_at_processor(logged_in, entry, GOOD_CARD)
    logged_in.get(f"/payments/{ref}")
    assert Payment.get(Payment.ref == ref).status == payments.CANCELED
    assert Allocation.select().count() == 0 or resp.status_code != 303


# --- ACH. -------------------------------------------------------------------------------


def test_ach_is_processing_then_settles_to_paid(app, logged_in, owing):
    old, new = owing
    ref, entry = make_payment(logged_in, "30.00", method_type="ach")
    page = logged_in.get(entry).get_data(as_text=True)
    assert "Routing number" in page and "Account number" in page and "Checking" in page
    assert "you authorize Test ISP to debit the bank account" in page
    assert pay_at_processor(logged_in, entry, ACH_OK).status_code == 303
    status = logged_in.get(f"/payments/{ref}").get_data(as_text=True)
    assert "Your bank payment is processing" in status and "Sandbox Test Bank ending 6789" in status
    assert "Pending" in logged_in.get(f"/invoices/{old.id}").get_data(as_text=True)
    # not offered again as balance to pay
    assert 'value="40.00"' in logged_in.get("/payments").get_data(as_text=True)
    assert PaymentInvoice.select().count() == 1 and Allocation.select().count() == 0
    settled, delivered = tick(app, force=True)
    assert (settled, delivered) == (1, 2)  # processing + succeeded events
    assert accounts.invoice_view(old.customer_id, old.id).status == "Paid"
    assert "Payment was successful" in logged_in.get(f"/payments/{ref}").get_data(as_text=True)


@pytest.mark.parametrize("account,code", [("000111111116", "R03"), ("000222222227", "R01")])
def test_ach_that_fails_on_settlement_leaves_the_invoice_open(app, logged_in, owing, account, code):
    old, new = owing
    ref, entry = make_payment(logged_in, "30.00", method_type="ach")
    pay_at_processor(logged_in, entry, {**ACH_OK, "account": account})
    tick(app, force=True)
    p = Payment.get(Payment.ref == ref)
    assert p.status == payments.FAILED and p.failure_code == code
    assert accounts.invoice_view(old.customer_id, old.id).status == "Overdue"
    assert Allocation.select().count() == 0
    page = logged_in.get(f"/payments/{ref}").get_data(as_text=True)
    assert "Payment failed" in page and f"({code})" in page
    assert "Pending" not in logged_in.get(f"/invoices/{old.id}").get_data(as_text=True)


@pytest.mark.parametrize("fields,field", [
    ({"routing": "110000001"}, "routing"), ({"account": "12"}, "account"), ({"holder": ""}, "holder"),
    ({"accepted": ""}, "accepted"), ({"account_type": "crypto"}, "account_type"),
])
def test_ach_entry_is_checked(logged_in, owing, fields, field):
    ref, entry = make_payment(logged_in, "30.00", method_type="ach")
    resp = pay_at_processor(logged_in, entry, {**ACH_OK, **fields})
    assert resp.status_code == 422 and f'id="{field}-error"' in resp.get_data(as_text=True)


def test_ach_settles_by_itself_after_the_configured_delay(app, logged_in, owing):
    app.extensions["processor"].settle_seconds = 1
    ref, entry = make_payment(logged_in, "30.00", method_type="ach")
    pay_at_processor(logged_in, entry, ACH_OK)
    assert tick(app)[0] == 0
    time.sleep(1.1)
    assert tick(app)[0] == 1
    assert Payment.get(Payment.ref == ref).status == payments.SUCCEEDED


# --- Saved methods. ------------------------------------------------------------------------


def test_save_for_autopay_keeps_a_token_and_the_saved_card_can_pay(logged_in, owing):
    ref = ref_of(start(logged_in, "30.00"))
    entry = logged_in.post(f"/payments/{ref}/billing", {**BILLING, "save_for_autopay": "1"}).location
    pay_at_processor(logged_in, entry, GOOD_CARD)
    logged_in.get(f"/payments/{ref}")
    method = PaymentMethod.get()
    assert (method.brand, method.last4, method.exp_month, method.exp_year) == ("Visa", "4242", 12, 2034)
    assert Payment.get(Payment.ref == ref).save_for_autopay
    assert "Saved card: Visa ending 4242" in logged_in.get("/payments").get_data(as_text=True)
    ref2 = ref_of(start(logged_in, "40.00", saved_method=str(method.id)))
    resp = logged_in.post(f"/payments/{ref2}/billing", BILLING)
    assert resp.status_code == 303 and resp.location == f"/payments/{ref2}"  # no pop-up needed
    assert "Payment was successful" in logged_in.get(resp.location).get_data(as_text=True)


# --- Webhooks. -------------------------------------------------------------------------------


def _signed_event(app, intent_id, event_id="evt_test_1", t=None):
    body = json.dumps({"id": event_id, "type": "payment_intent.succeeded",
                       "data": {"object": {"id": intent_id}}}).encode()
    return body, app.extensions["processor"].sign(body, t)


def test_webhook_with_a_bad_or_stale_signature_is_refused_and_changes_nothing(app, logged_in, owing):
    ref, entry = make_payment(logged_in, "30.00")
    pay_at_processor(logged_in, entry, GOOD_CARD)
    intent_id = Payment.get(Payment.ref == ref).processor_ref
    body, sig = _signed_event(app, intent_id)
    client = app.test_client()
    tampered = body.replace(b"evt_test_1", b"evt_test_2")
    assert client.post("/webhooks/sandbox", data=tampered, headers={"Sandbox-Signature": sig}).status_code == 400
    _, stale = _signed_event(app, intent_id, t=time.time() - 301)
    assert client.post("/webhooks/sandbox", data=body, headers={"Sandbox-Signature": stale}).status_code == 400
    assert client.post("/webhooks/sandbox", data=body).status_code == 400
    assert Payment.get(Payment.ref == ref).status == payments.AWAITING_DETAILS
    assert WebhookEvent.select().count() == 0
    ok = client.post("/webhooks/sandbox", data=body, headers={"Sandbox-Signature": sig})
    assert ok.status_code == 200 and Payment.get(Payment.ref == ref).status == payments.SUCCEEDED


def test_webhook_needs_no_csrf_token_but_every_form_does(app, logged_in, owing):
    ref = ref_of(start(logged_in))
    assert logged_in.post(f"/payments/{ref}/billing", BILLING, csrf=False).status_code == 400
    assert logged_in.post("/pay", {"amount": "5"}, csrf=False).status_code == 400


# --- No card data anywhere. ----------------------------------------------------------------


def _every_row_as_text():
    """Every row of every table, on either engine."""
    rows = []
    for table in database.get_tables():
        rows += [repr(row) for row in database.execute_sql(f'SELECT * FROM "{table}"').fetchall()]
    return "\n".join(rows)


def test_no_card_or_account_number_reaches_tables_or_logs(app, logged_in, owing, caplog):
    caplog.set_level(logging.DEBUG)
    ref, entry = make_payment(logged_in, "30.00")
    pay_at_processor(logged_in, entry, {**GOOD_CARD, "number": "4000 0000 0000 0002"})
    pay_at_processor(logged_in, entry, {**GOOD_CARD, "number": "4242-4242-4242-4242"})
    ref2, entry2 = make_payment(logged_in, "20.00", method_type="ach")
    pay_at_processor(logged_in, entry2, ACH_OK)
    tick(app, force=True)
    dump = _every_row_as_text()
    logs = caplog.text
    for secret in ("4242424242424242", "4242 4242 4242 4242", "4000000000000002", "000123456789"):
        assert secret not in dump and secret not in logs
    # the entry page does not echo the number back after an error
    resp = pay_at_processor(logged_in, make_payment(logged_in, "5.00")[1],
                            {**GOOD_CARD, "number": "4242 4242 4242 4242", "cvc": "1"})
    assert "4242 4242 4242 4242" not in resp.get_data(as_text=True)


# --- The processor is down. -------------------------------------------------------------------


def test_processor_unreachable_at_make_payment_says_so_and_keeps_the_payment(app, logged_in, owing, monkeypatch):
    from billing.processors import ProcessorError

    proc = app.extensions["processor"]

    def down(**kwargs):
        raise ProcessorError("connection refused")

    monkeypatch.setattr(proc, "create_payment_intent", down)
    ref = ref_of(start(logged_in, "30.00"))
    resp = logged_in.post(f"/payments/{ref}/billing", BILLING, htmx=True)
    assert resp.status_code == 422
    assert "could not reach the payment processor" in resp.get_data(as_text=True)
    page = logged_in.get(f"/payments/{ref}")
    assert page.status_code == 200 and "could not reach the payment processor" in page.get_data(as_text=True)
    assert Allocation.select().count() == 0
    monkeypatch.undo()
    page = logged_in.get(f"/payments/{ref}").get_data(as_text=True)  # back up: the same payment carries on
    assert "Open the payment window" in page and Payment.select().count() == 1


def test_polling_while_the_processor_is_down_keeps_the_last_known_state(app, logged_in, owing, monkeypatch):
    from billing.processors import ProcessorError

    ref, entry = make_payment(logged_in)
    proc = app.extensions["processor"]

    def down(intent_id):
        raise ProcessorError("timeout")

    monkeypatch.setattr(proc, "retrieve_payment_intent", down)
    poll = logged_in.get(f"/payments/{ref}/status?seen=awaiting_details", htmx=True)
    assert poll.status_code == 200 and poll.get_data(as_text=True).startswith('<p id="pay-poll"')


def test_an_amount_chosen_days_ago_and_never_confirmed_is_not_offered_for_resuming(logged_in, owing):
    old_ref = ref_of(start(logged_in, "10.00"))
    two_days_ago = Payment.get(Payment.ref == old_ref).created_at - dt.timedelta(days=2)
    Payment.update(created_at=two_days_ago).where(Payment.ref == old_ref).execute()
    new_ref = ref_of(start(logged_in, "12.00"))
    tab = logged_in.get("/payments").get_data(as_text=True)
    assert new_ref in tab and old_ref not in tab


def test_the_default_saved_method_comes_preselected(logged_in, customer, owing):
    from billing import methods

    card = PaymentMethod.create(customer=customer.id, processor="sandbox", processor_ref="pm_sbx_card1",
                                method_type="card", brand="Visa", last4="4242", exp_month=12, exp_year=2034)
    bank = PaymentMethod.create(customer=customer.id, processor="sandbox", processor_ref="pm_sbx_bank1",
                                method_type="ach", brand="STRIPE TEST BANK", last4="6789")
    methods.set_default(customer.id, bank.id)
    html = logged_in.get("/payments").get_data(as_text=True)
    assert 'name="method_type" value="ach" checked' in html
    assert f'name="saved_method" value="{bank.id}" checked' in html
    assert f'name="saved_method" value="{card.id}" checked' not in html
    methods.set_default(customer.id, card.id)
    html = logged_in.get("/payments").get_data(as_text=True)
    assert 'name="method_type" value="card" checked' in html
    assert f'name="saved_method" value="{card.id}" checked' in html
