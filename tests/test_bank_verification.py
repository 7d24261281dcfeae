"""Bank accounts that must be verified with microdeposits before they are debited (state awaiting_verification),
through the sandbox: its test accounts, the portal's verification form (where the charge-time check runs), the
sandbox's own page (the processor's, as Stripe's hosted one), the reservation, autopay, reconcile and the email."""
import datetime as dt
import re
from urllib.parse import parse_qs, urlsplit

import pytest

from billing import accounts, autopay, methods, payments
from billing.processors import REQUIRES_VERIFICATION
from db import write_tx
from db.models import (Allocation, AutopayCharge, Customer, MethodSetup, Outbox, Payment, PaymentInvoice, PaymentMethod,
                       SandboxIntent, utcnow)
from tests.factories import make_customer, make_invoice
from views.sandbox import tick

TODAY = dt.date.today()
BILLING = {"name": "Dana Demo", "street": "12 Ridge Road", "city": "Austin", "state": "TX", "zip": "78701",
           "email": "dana@example.test", "phone": "512-555-0100"}
AMOUNTS_ACCOUNT = "000555555559"  # verified by the two deposits' amounts: 32 and 45 cents
CODE_ACCOUNT = "000666666664"  # verified by the one deposit's descriptor code: SM11AA
ACH = {"holder": "Dana Demo", "routing": "110000000", "account_type": "checking", "accepted": "1"}


@pytest.fixture
def owing(customer):
    """The logged-in customer owes two invoices: $30 (older) and $40."""
    old = make_invoice(customer, 3000, due=TODAY - dt.timedelta(days=20), number="OLD-1")
    new = make_invoice(customer, 4000, due=TODAY + dt.timedelta(days=10), number="NEW-2")
    return old, new


def _form(url, fields):
    parts = urlsplit(url)
    return parts.path, {**{k: v[0] for k, v in parse_qs(parts.query).items()}, **fields}


def pay_by_bank(portal, amount="70.00", account=AMOUNTS_ACCOUNT):
    """Choose ACH, confirm billing, and Pay in the sandbox's window with ``account``; returns the payment."""
    resp = portal.post("/pay", {"amount": amount, "method_type": "ach", "key": payments.new_idempotency_key()})
    ref = resp.location.rsplit("/", 1)[1]
    entry = portal.post(f"/payments/{ref}/billing", BILLING).location
    path, data = _form(entry, {**ACH, "account": account})
    assert portal.post(path, data).status_code == 303  # back to the portal's page, which shows the way on
    portal.get(f"/payments/{ref}")
    return Payment.get(Payment.ref == ref)


def verify(portal, payment_or_url, **fields):
    """A payment: the portal's own form on its page. A URL: the processor's page (a setup's, or Stripe's hosted)."""
    if not isinstance(payment_or_url, str):
        return portal.post(f"/payments/{payment_or_url.ref}/verify", fields)
    path, data = _form(payment_or_url, fields)
    return portal.post(path, data)


def on_processor_page(portal, payment, **fields):
    """The customer verifies on the processor's own page, not the portal's: no charge-time check there."""
    return verify(portal, payment.verify_url, **fields)


def fresh(payment):
    return Payment.get_by_id(payment.id)


# --- The state and its reservation. -------------------------------------------------------------------------


def test_a_bank_account_that_needs_verification_waits_with_its_amount_reserved_and_nothing_debited(logged_in, owing):
    old, new = owing
    p = pay_by_bank(logged_in)
    assert p.status == payments.AWAITING_VERIFICATION and p.verify_type == "amounts"
    assert re.search(rf"/sandbox/verify/{p.processor_ref}\?secret=", p.verify_url)
    assert dt.timedelta(days=9) < p.verify_expires_at - utcnow() <= dt.timedelta(days=10)
    assert SandboxIntent.get_by_id(p.processor_ref).status == "requires_action"  # not debited
    assert {r.invoice_id: r.amount_cents for r in PaymentInvoice.select()} == {old.id: 3000, new.id: 4000}
    assert accounts.invoice_view(old.customer_id, old.id).pending_cents == 3000
    assert accounts.summary(old.customer_id).pending_cents == 7000
    assert payments.room(old.customer_id).others_cents == 7000
    assert "Pending" in logged_in.get(f"/invoices/{old.id}").get_data(as_text=True)


def test_invoices_waiting_for_verification_cannot_be_paid_twice(logged_in, owing):
    old, new = owing
    p = pay_by_bank(logged_in)
    # Only the prepayment allowance ($200 here) is left to pay, as credit: the $70 is counted as on its way.
    again = logged_in.post("/pay", {"amount": "200.01", "method_type": "card", "key": payments.new_idempotency_key()})
    assert again.status_code == 422
    assert "The most you can pay now is $200.00 ($70.00 is already being processed" in again.get_data(as_text=True)
    invoice = logged_in.post("/pay", {"amount": "30.00", "method_type": "card", "invoice_id": str(old.id),
                                      "key": payments.new_idempotency_key()})
    assert invoice.status_code == 422 and "already being paid" in invoice.get_data(as_text=True)
    # The rule every charge path checks counts it too, however long it has waited.
    with write_tx():
        Payment.update(updated_at=utcnow() - dt.timedelta(days=5)).where(Payment.id == p.id).execute()
        other = Payment.create(ref="PAY-OTHER01", customer=old.customer_id, idempotency_key="k" * 20,
                               amount_cents=3000, method_type="card", status=payments.AWAITING_DETAILS,
                               processor="sandbox", owed_cents=7000)
    with pytest.raises(payments.NoLongerFits):
        payments.check_fits(other)


def test_the_payment_page_has_the_form_and_home_and_payments_tab_lead_to_it(logged_in, owing):
    p = pay_by_bank(logged_in)
    page = logged_in.get(f"/payments/{p.ref}").get_data(as_text=True)
    assert "Verify your bank account to finish this payment" in page
    assert f'<form method="post" action="/payments/{p.ref}/verify" id="verify"' in page
    assert 'id="amount1"' in page and 'id="amount2"' in page and "They are 32 and 45 cents." in page
    assert "Verify and pay $70.00" in page
    home = logged_in.get("/").get_data(as_text=True)
    assert f"Payment {p.ref} for $70.00 is waiting for you to verify your bank account." in home
    assert f'href="/payments/{p.ref}#verify"' in home
    tab = logged_in.get("/payments").get_data(as_text=True)
    assert f'id="verify-{p.ref}"' in tab and "Waiting for bank account verification" in tab
    for html in (page, home, tab):  # the processor's own page is never where the portal sends the customer
        assert "/sandbox/verify/" not in html


def test_the_customer_is_emailed_the_link_once_in_their_language(logged_in, owing, customer, app):
    with write_tx():
        Customer.update(language="es").where(Customer.id == customer.id).execute()
    p = pay_by_bank(logged_in)
    tick(app)  # the sandbox's requires_action webhook: the same move, recorded once
    mail = Outbox.get(Outbox.kind == "bank_verification")
    assert Outbox.select().where(Outbox.kind == "bank_verification").count() == 1
    assert mail.to_addr == BILLING["email"]
    assert mail.subject.endswith(": Verifique su cuenta bancaria para completar su pago")
    assert f"/payments/{p.ref}#verify" in mail.text_body and "dos depósitos pequeños" in mail.text_body
    assert "/sandbox/verify/" not in mail.text_body


# --- Verifying: the portal's form, and the processor's own page. ---------------------------------------------


def test_the_right_amounts_move_the_debit_to_processing_and_it_then_settles(app, logged_in, owing):
    old, new = owing
    p = pay_by_bank(logged_in)
    resp = verify(logged_in, p, amount1="32", amount2="$0.45")
    assert resp.status_code == 303 and resp.location.endswith(f"/payments/{p.ref}")
    assert "Your bank payment is processing" in logged_in.get(f"/payments/{p.ref}").get_data(as_text=True)
    assert fresh(p).status == payments.PROCESSING
    assert accounts.invoice_view(old.customer_id, old.id).pending_cents == 3000  # still on its way
    tick(app, force=True)
    assert fresh(p).status == payments.SUCCEEDED
    assert accounts.invoice_view(old.customer_id, old.id).status == "Paid"
    again = verify(logged_in, p, amount1="32", amount2="45")  # nothing more to verify: the page, unchanged
    assert again.status_code == 303 and fresh(p).status == payments.SUCCEEDED
    assert SandboxIntent.get_by_id(p.processor_ref).verify_attempts == 0


def test_the_form_works_as_an_htmx_step_too(logged_in, owing):
    p = pay_by_bank(logged_in)
    wrong = logged_in.post(f"/payments/{p.ref}/verify", {"amount1": "1", "amount2": "2"}, headers={"HX-Request": "true"})
    html = wrong.get_data(as_text=True)
    assert wrong.status_code == 422 and html.lstrip().startswith('<section id="pay-step"') and "Tries left: 2." in html
    right = logged_in.post(f"/payments/{p.ref}/verify", {"amount1": "32", "amount2": "45"},
                           headers={"HX-Request": "true"})
    assert right.status_code == 200 and "Your bank payment is processing" in right.get_data(as_text=True)


def test_the_processors_own_page_still_verifies_and_the_portal_records_it(logged_in, owing):
    p = pay_by_bank(logged_in)
    form = logged_in.get(p.verify_url).get_data(as_text=True)
    assert 'id="amount1"' in form and "They are 32 and 45 cents." in form
    resp = on_processor_page(logged_in, p, amount1="32", amount2="45")
    assert resp.status_code == 200 and 'id="verify-done"' in resp.get_data(as_text=True)
    assert fresh(p).status == payments.PROCESSING
    assert on_processor_page(logged_in, p, amount1="32", amount2="45").status_code == 409


def _paid_at_the_counter(customer_id, cents):
    payment, _ = payments.record_offline(
        customer_id, amount_cents=cents, kind="cash", method_text="Cash", idempotency_key=payments.new_idempotency_key(),
        invoice_id=None, details=dict(check_number="", received_on=TODAY, note="", recorded_by="staff:1"),
        actor="staff:1")
    return payment


def test_a_payment_that_no_longer_fits_when_verified_is_not_debited_and_says_what_changed(logged_in, owing):
    old, new = owing
    p = pay_by_bank(logged_in)
    _paid_at_the_counter(old.customer_id, 7000)  # the $70 came in at the counter meanwhile
    resp = verify(logged_in, p, amount1="32", amount2="45")
    page = logged_in.get(resp.location).get_data(as_text=True)
    p = fresh(p)
    assert (p.status, p.failure_code) == (payments.CANCELED, payments.NO_LONGER_FITS)
    intent = SandboxIntent.get_by_id(p.processor_ref)
    assert intent.status == "canceled" and intent.verify_attempts == 0  # never verified, never debited
    assert "This payment of $70.00 was not charged." in page and "you owe $0.00 now" in page
    assert accounts.summary(old.customer_id).credit_cents == 0
    assert payments.room(old.customer_id).others_cents == 0


def test_a_payment_that_fits_in_part_offers_the_new_amount_in_one_click(logged_in, owing):
    old, new = owing
    p = pay_by_bank(logged_in)
    _paid_at_the_counter(old.customer_id, 3000)
    page = logged_in.get(verify(logged_in, p, amount1="32", amount2="45").location).get_data(as_text=True)
    assert fresh(p).status == payments.CANCELED
    assert 'id="pay-renew"' in page and "you owe $40.00 now" in page


def test_verified_on_the_processors_page_after_the_balance_was_paid_is_held_not_credited(logged_in, owing):
    old, new = owing
    p = pay_by_bank(logged_in)
    _paid_at_the_counter(old.customer_id, 7000)
    on_processor_page(logged_in, p, amount1="32", amount2="45")  # money moves there, unchecked by the portal
    p = fresh(p)
    assert (p.status, p.failure_code) == (payments.HELD, payments.UNCHECKED)
    assert "without the portal's charge-time check" in p.failure_message
    assert accounts.summary(old.customer_id).credit_cents == 0  # nothing allocated, nothing became credit
    assert Allocation.select().where(Allocation.payment == p.id).count() == 0
    page = logged_in.get(f"/payments/{p.ref}").get_data(as_text=True)
    assert "We are checking this payment" in page and 'id="pay-held-excess"' in page
    audit = accounts.AuditLog.get(accounts.AuditLog.action == "payment.held")
    assert audit.entity_id == p.ref and '"unchecked": true' in audit.detail


def test_wrong_amounts_are_said_next_to_the_field_with_the_tries_left(logged_in, owing):
    p = pay_by_bank(logged_in)
    resp = verify(logged_in, p, amount1="12", amount2="34")
    html = resp.get_data(as_text=True)
    assert resp.status_code == 422 and 'id="amounts-error"' in html
    assert "Those amounts do not match the deposits. Tries left: 2." in html
    assert 'aria-describedby="amounts-error"' in html and 'value="12"' in html
    bad = verify(logged_in, p, amount1="abc", amount2="")
    assert bad.status_code == 422 and "in cents, like 32 and 45" in bad.get_data(as_text=True)
    assert SandboxIntent.get_by_id(p.processor_ref).verify_attempts == 1  # a malformed entry is not a try
    assert fresh(p).status == payments.AWAITING_VERIFICATION


def test_too_many_wrong_tries_fail_the_payment_and_free_its_invoices(logged_in, owing):
    old, new = owing
    p = pay_by_bank(logged_in)
    for _ in range(2):
        assert verify(logged_in, p, amount1="1", amount2="2").status_code == 422
    last = verify(logged_in, p, amount1="1", amount2="2")
    assert last.status_code == 303
    p = fresh(p)
    assert p.status == payments.FAILED
    assert p.failure_code == "payment_method_microdeposit_verification_attempts_exceeded"
    assert accounts.invoice_view(old.customer_id, old.id).pending_cents == 0
    assert payments.room(old.customer_id).others_cents == 0
    assert "Payment failed" in logged_in.get(f"/payments/{p.ref}").get_data(as_text=True)


@pytest.mark.parametrize("amounts,code", [
    (("10", "11"), "payment_method_microdeposit_verification_attempts_exceeded"),
    (("40", "41"), "payment_method_microdeposit_verification_timeout"),
])
def test_stripes_test_amounts_for_a_customer_out_of_tries_or_too_late_fail_at_once(logged_in, owing, amounts, code):
    p = pay_by_bank(logged_in)
    verify(logged_in, p, amount1=amounts[0], amount2=amounts[1])
    assert (fresh(p).status, fresh(p).failure_code) == (payments.FAILED, code)


def test_a_descriptor_code_account_is_verified_by_its_code(logged_in, owing):
    p = pay_by_bank(logged_in, account=CODE_ACCOUNT)
    assert p.verify_type == "descriptor_code"
    page = logged_in.get(f"/payments/{p.ref}").get_data(as_text=True)
    assert 'id="descriptor_code"' in page and "The code is SM11AA." in page
    assert verify(logged_in, p, descriptor_code="XX11").status_code == 422  # not a code: not a try
    assert SandboxIntent.get_by_id(p.processor_ref).verify_attempts == 0
    wrong = verify(logged_in, p, descriptor_code="SM12AB")
    assert wrong.status_code == 422 and 'id="descriptor_code-error"' in wrong.get_data(as_text=True)
    assert "Tries left: 9." in wrong.get_data(as_text=True)
    assert verify(logged_in, p, descriptor_code=" sm11aa ").status_code == 303
    assert fresh(p).status == payments.PROCESSING


def test_the_verification_page_needs_the_intents_secret(client, logged_in, owing):
    p = pay_by_bank(logged_in)
    assert client.get(f"/sandbox/verify/{p.processor_ref}?secret=wrong").status_code == 404
    assert client.get(f"/sandbox/verify/{p.processor_ref}").status_code == 404


def test_the_verification_page_speaks_spanish(client, logged_in, owing):
    p = pay_by_bank(logged_in)
    page = client.get(p.verify_url, headers={"Accept-Language": "es"}).get_data(as_text=True)
    assert "Verifique su cuenta bancaria" in page and "Primer depósito" in page and "Son de 32 y 45 centavos." in page
    wrong = on_processor_page(logged_in, p, amount1="1", amount2="2").get_data(as_text=True)
    assert "Those amounts do not match" in wrong  # English for an English browser
    es = client.post(urlsplit(p.verify_url).path, data={**_form(p.verify_url, {})[1], "amount1": "1", "amount2": "2",
                                                        "csrf_token": logged_in.csrf()},
                     headers={"Accept-Language": "es"}).get_data(as_text=True)
    assert "Esos montos no coinciden con los depósitos. Intentos restantes: 1." in es


# --- Reconcile and autopay. ---------------------------------------------------------------------------------


def test_reconcile_follows_it_however_old_and_cancels_it_once_expired(app, logged_in, owing):
    old, new = owing
    proc = app.extensions["processor"]
    p = pay_by_bank(logged_in)
    with write_tx():  # older than reconcile's usual window, not yet expired
        Payment.update(created_at=utcnow() - dt.timedelta(days=9), updated_at=utcnow() - dt.timedelta(days=9)).where(
            Payment.id == p.id).execute()
    assert payments.reconcile(proc) == [(p.ref, payments.AWAITING_VERIFICATION, payments.AWAITING_VERIFICATION)]
    report = payments.reconcile(proc, now=utcnow() + dt.timedelta(days=11))
    assert report == [(p.ref, payments.AWAITING_VERIFICATION, payments.CANCELED)]
    p = fresh(p)
    assert p.failure_code == "verification_expired"
    assert SandboxIntent.get_by_id(p.processor_ref).status == "canceled"  # it can never be verified now
    assert accounts.invoice_view(old.customer_id, old.id).pending_cents == 0
    assert payments.room(old.customer_id).others_cents == 0
    assert payments.reconcile(proc, now=utcnow() + dt.timedelta(days=12)) == []


def test_reconcile_records_a_verification_it_missed(app, logged_in, owing):
    proc = app.extensions["processor"]
    p = pay_by_bank(logged_in)
    proc.verify_microdeposits(p.processor_ref, amounts=[32, 45])  # the portal did not hear of it
    assert fresh(p).status == payments.AWAITING_VERIFICATION
    payments.reconcile(proc, now=utcnow() + dt.timedelta(minutes=10))
    assert fresh(p).status == payments.PROCESSING


def test_the_state_machine_moves_to_verification_once_and_only_from_awaiting_details(app, logged_in, owing):
    proc = app.extensions["processor"]
    p = pay_by_bank(logged_in)
    state = proc.retrieve_payment_intent(p.processor_ref)
    assert state.status == REQUIRES_VERIFICATION and state.verification.url == p.verify_url
    for _ in range(2):
        payments.apply_intent_state(p.id, state)
    assert fresh(p).status == payments.AWAITING_VERIFICATION
    audits = [a for a in accounts.AuditLog.select() if a.action == "payment.awaiting_verification"]
    assert len(audits) == 1
    assert payments.sources_of(payments.AWAITING_VERIFICATION) == [payments.AWAITING_DETAILS]
    payments.retire(fresh(p), proc, code="canceled_by_customer")
    assert fresh(p).status == payments.CANCELED
    payments.apply_intent_state(p.id, state)  # a late report cannot bring it back
    assert fresh(p).status == payments.CANCELED


def test_autopay_leaves_invoices_waiting_for_verification_alone_for_as_long_as_it_lasts(app, logged_in, owing,
                                                                                       customer):
    proc = app.extensions["processor"]
    old, new = owing
    setup = methods.start_setup(customer.id, "card", proc)
    proc.confirm_setup_card(setup.processor_ref, "4242424242424242", "12/34", "123", "78701")
    method = methods.sync_setup(setup, proc).payment_method
    autopay.turn_on(customer.id, method.id, accepted=True, ip="203.0.113.9", user_agent="pytest")
    p = pay_by_bank(logged_in)
    with write_tx():  # long past the on-session grace autopay gives a customer paying in the portal
        Payment.update(updated_at=utcnow() - dt.timedelta(days=3)).where(Payment.id == p.id).execute()
    summary = autopay.run(proc, on=TODAY + dt.timedelta(days=10), echo=lambda line: None)
    assert summary.charged == 0 and AutopayCharge.select().count() == 0
    assert fresh(p).status == payments.AWAITING_VERIFICATION


# --- Saving a bank account from Payment methods (a setup intent). -------------------------------------------


def _add_bank_account(portal, account):
    entry = portal.post("/methods/add", {"method_type": "ach"}).location
    path, data = _form(entry, {**ACH, "account": account})
    resp = portal.post(path, data)
    assert resp.status_code == 303, resp.get_data(as_text=True)
    return MethodSetup.get(MethodSetup.processor_ref == urlsplit(entry).path.rsplit("/", 1)[1])


def test_a_bank_account_saved_from_payment_methods_is_saved_once_verified(app, logged_in, customer):
    setup = _add_bank_account(logged_in, AMOUNTS_ACCOUNT)
    page = logged_in.get(f"/methods/setup/{setup.ref}").get_data(as_text=True)
    assert "Verify your bank account to save it" in page and 'id="setup-verify"' in page
    assert PaymentMethod.select().count() == 0
    tick(app)  # the sandbox's setup_intent.requires_action webhook: the customer is emailed the link
    mail = Outbox.get(Outbox.kind == "bank_verification")
    assert f"/sandbox/verify/{setup.processor_ref}" in mail.text_body and mail.to_addr == customer.email
    url = app.extensions["processor"].retrieve_setup_intent(setup.processor_ref).verification.url
    assert verify(logged_in, url, amount1="5", amount2="6").status_code == 422
    done = verify(logged_in, url, amount1="32", amount2="45")
    assert done.status_code == 200 and "The account is saved with" in done.get_data(as_text=True)
    method = PaymentMethod.get()
    assert (method.method_type, method.last4, method.customer_id) == ("ach", "5559", customer.id)
    assert MethodSetup.get_by_id(setup.id).status == methods.SETUP_SAVED


def test_a_bank_account_that_fails_verification_is_not_saved_and_can_be_entered_again(app, logged_in):
    setup = _add_bank_account(logged_in, CODE_ACCOUNT)
    url = app.extensions["processor"].retrieve_setup_intent(setup.processor_ref).verification.url
    failed = verify(logged_in, url, descriptor_code="SM33CC")
    assert 'id="verify-failed"' in failed.get_data(as_text=True)
    assert PaymentMethod.select().count() == 0 and MethodSetup.get_by_id(setup.id).status == methods.SETUP_OPEN
    entry = logged_in.get(f"/sandbox/setup/{setup.processor_ref}?secret="
                          f"{SandboxIntent.get_by_id(setup.processor_ref).client_secret}").get_data(as_text=True)
    assert 'id="account"' in entry  # the window takes another account


def test_a_pay_link_payment_waiting_for_verification_shows_the_link_and_not_the_billing_form(app, portal):
    from billing import paylinks

    customer = make_customer()
    invoice = make_invoice(customer, cents=4000, number="LINK-V1")
    token = paylinks.make(paylinks.keys(app.config), invoice.id)
    key = re.search(r'name="key" value="([^"]+)"', portal.get(f"/paylink/{token}").get_data(as_text=True)).group(1)
    pay_url = portal.post(f"/paylink/{token}", {"method_type": "ach", "key": key}).headers["Location"]
    entry = portal.post(pay_url, {"name": "Pat Payer", "email": "pat@example.test"}).headers["Location"]
    form = dict(re.findall(r'name="(secret|mode|back)" value="([^"]*)"', portal.get(entry).get_data(as_text=True)))
    done = portal.post(urlsplit(entry).path, {**form, **ACH, "account": AMOUNTS_ACCOUNT})
    assert done.status_code == 303
    page = portal.get(pay_url).get_data(as_text=True)
    p = Payment.get(Payment.target_invoice == invoice.id)
    assert p.status == payments.AWAITING_VERIFICATION
    assert "Verify your bank account to finish this payment" in page and "Billing Information" not in page
    action = f"/paylink/{token}/{p.ref}/verify"
    assert f'action="{action}" id="verify"' in page and "/sandbox/verify/" not in page
    wrong = portal.post(action, {"amount1": "12", "amount2": "34"})
    assert wrong.status_code == 422 and "Tries left: 2." in wrong.get_data(as_text=True)
    assert portal.post(action, {"amount1": "x", "amount2": ""}).status_code == 422
    done = portal.post(action, {"amount1": "32", "amount2": "45"})
    assert done.status_code == 303 and fresh(p).status == payments.PROCESSING
    assert "Your bank payment is processing" in portal.get(pay_url).get_data(as_text=True)
    assert portal.post(f"/paylink/{token}/PAY-NOTOURS1/verify", {"amount1": "32", "amount2": "45"}).status_code == 404


def test_the_portals_form_speaks_spanish(logged_in, owing, customer):
    with write_tx():
        Customer.update(language="es").where(Customer.id == customer.id).execute()
    p = pay_by_bank(logged_in)
    page = logged_in.get(f"/payments/{p.ref}").get_data(as_text=True)
    assert "Primer depósito" in page and "Son de 32 y 45 centavos." in page and "Verificar y pagar" in page
    wrong = verify(logged_in, p, amount1="1", amount2="2").get_data(as_text=True)
    assert "Esos montos no coinciden con los depósitos. Intentos restantes: 2." in wrong
    bad = verify(logged_in, p, amount1="", amount2="").get_data(as_text=True)
    assert "centavos" in bad and "Enter the two" not in bad
