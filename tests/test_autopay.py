"""Autopay rules without Flask: the run, its outcomes, retries, idempotency, notices."""
import datetime as dt
import threading

import pytest

from billing import accounts, autopay, legal, methods, payments
from billing.processors.sandbox import SandboxProcessor
from db import database
from db.models import (
    Allocation,
    AutopayCharge,
    AutopayEnrolment,
    Invoice,
    Outbox,
    Payment,
    PaymentMethod,
    SandboxIntent,
)
from tests.factories import make_customer, make_invoice

TODAY = dt.date.today()
GOOD = "4242 4242 4242 4242"
NO_FUNDS = "4000 0000 0000 9995"
AUTHENTICATE = "4000 0027 6000 3184"


@pytest.fixture
def sandbox(ledger_db):
    return SandboxProcessor(webhook_secret="whsec_test")


def save_card(customer, processor, number=GOOD, expiry="12 / 34"):
    """A card saved through the processor's setup, as the payment methods page does it."""
    setup = methods.start_setup(customer.id, "card", processor)
    state, errors = processor.confirm_setup_card(setup.processor_ref, number, expiry, "123", "78701")
    assert not errors and state.status == "succeeded", (errors, state)
    return methods.sync_setup(setup, processor).payment_method


def save_account(customer, processor, account="000123456789"):
    setup = methods.start_setup(customer.id, "ach", processor)
    state, errors = processor.confirm_setup_ach(setup.processor_ref, "Pat Payer", "110000000", account,
                                                "checking", "1")
    assert not errors, errors
    return methods.sync_setup(setup, processor).payment_method


def enrolled(processor, number=GOOD, **kw):
    customer = make_customer(**kw)
    method = save_card(customer, processor, number)
    autopay.turn_on(customer.id, method.id, accepted=True, ip="203.0.113.9", user_agent="pytest")
    return customer, method


def run(processor, on=None, **kw):
    lines = []
    summary = autopay.run(processor, on=on or TODAY, echo=lines.append, **kw)
    return summary, lines


def charges_at_processor():
    """Intents the sandbox charged (setups have no amount)."""
    charged = (SandboxIntent.status == "succeeded") & (SandboxIntent.amount_cents > 0)
    return SandboxIntent.select().where(charged).count()


def mails(kind):
    return list(Outbox.select().where(Outbox.kind == kind).order_by(Outbox.id))


def test_turning_autopay_on_records_the_authorization(sandbox):
    customer, method = enrolled(sandbox)
    enrol = AutopayEnrolment.get(AutopayEnrolment.customer == customer.id)
    auth = enrol.authorization
    assert enrol.enabled and enrol.payment_method_id == method.id
    assert (auth.ip, auth.user_agent, auth.text_version) == ("203.0.113.9", "pytest", legal.AUTOPAY_VERSION)
    assert auth.accepted_at is not None and "on its due date" in auth.text
    assert methods.default_id(customer.id) == method.id


def test_turning_on_needs_the_box_ticked_and_an_own_method(sandbox):
    customer = make_customer()
    other = make_customer()
    theirs = save_card(other, sandbox)
    with pytest.raises(payments.FormErrors) as e:
        autopay.turn_on(customer.id, theirs.id, accepted=False)
    assert set(e.value.errors) == {"method", "accepted"}
    assert AutopayEnrolment.select().count() == 0


def test_due_invoices_are_charged_oldest_first_and_allocated(sandbox):
    customer, method = enrolled(sandbox)
    newer = make_invoice(customer, 4000, due=TODAY, number="B-2")
    older = make_invoice(customer, 3000, due=TODAY - dt.timedelta(days=30), number="A-1")
    later = make_invoice(customer, 5000, due=TODAY + dt.timedelta(days=20), number="C-3")

    summary, lines = run(sandbox)

    assert (summary.charged, summary.failed, summary.skipped, summary.total_cents) == (2, 0, 0, 7000)
    paid = list(Payment.select().where(Payment.status == payments.SUCCEEDED).order_by(Payment.id))
    assert [p.target_invoice_id for p in paid] == [older.id, newer.id]  # oldest first
    assert all(p.payment_method_id == method.id and p.method_last4 == "4242" for p in paid)
    assert {(a.invoice_id, a.amount_cents) for a in Allocation.select()} == {(older.id, 3000), (newer.id, 4000)}
    assert [v.invoice.number for v in accounts.invoice_views(customer.id) if v.balance_cents] == [later.number]
    assert len(mails("autopay_charged")) == 2 and not mails("payment_receipt")
    assert "charged 2, failed 0, skipped 0, total $70.00" in summary.line()
    assert lines[0].startswith(f"autopay {TODAY.isoformat()}: 2 open invoice(s)")


def test_the_isp_can_charge_days_before_the_due_date(sandbox):
    customer, _ = enrolled(sandbox)
    soon = make_invoice(customer, 4000, due=TODAY + dt.timedelta(days=5))
    assert run(sandbox)[0].charged == 0
    autopay.set_policy(days_before=5)
    assert run(sandbox)[0].charged == 1
    assert accounts.invoice_view(customer.id, soon.id).balance_cents == 0


def test_running_again_charges_nothing_more(sandbox):
    customer, _ = enrolled(sandbox)
    make_invoice(customer, 4000, due=TODAY)
    assert run(sandbox)[0].charged == 1
    again, _ = run(sandbox)
    assert (again.charged, again.failed) == (0, 0)
    assert charges_at_processor() == 1


def test_a_dry_run_changes_nothing(sandbox):
    customer, _ = enrolled(sandbox)
    make_invoice(customer, 4000, due=TODAY)
    summary, lines = run(sandbox, dry_run=True)
    assert (summary.charged, summary.total_cents) == (1, 4000)
    assert "would charge" in summary.line() and any("would charge" in x for x in lines)
    assert Payment.select().count() == 0 and AutopayCharge.select().count() == 0 and Outbox.select().count() == 0


def test_paid_and_pending_invoices_are_skipped(sandbox):
    customer = make_customer()
    account = save_account(customer, sandbox)
    autopay.turn_on(customer.id, account.id, accepted=True)
    inv = make_invoice(customer, 4000, due=TODAY)
    first, _ = run(sandbox)  # an ACH debit: processing until it settles
    assert (first.charged, first.processing) == (1, 1)
    assert AutopayCharge.get().status == autopay.PROCESSING
    assert mails("ach_pending")
    second, _ = run(sandbox)
    assert (second.charged, second.skipped, second.skip_reasons) == (0, 1, {"payment pending": 1})
    sandbox.settle(force=True)
    payments.sync(Payment.get(), sandbox)
    assert AutopayCharge.get().status == autopay.CHARGED and mails("autopay_charged")
    assert accounts.invoice_view(customer.id, inv.id).balance_cents == 0
    third, _ = run(sandbox)
    assert third.considered == 0  # a paid invoice is not even a candidate


def test_a_decline_is_recorded_with_its_reason_emailed_and_retried_by_policy(sandbox):
    customer, _ = enrolled(sandbox, NO_FUNDS)
    inv = make_invoice(customer, 4000, due=TODAY)

    summary, lines = run(sandbox)
    assert (summary.charged, summary.failed) == (0, 1)
    charge = AutopayCharge.get()
    assert (charge.status, charge.reason_code, charge.attempt) == ("failed", "insufficient_funds", 1)
    assert charge.retry_on == TODAY + dt.timedelta(days=3)
    assert charge.payment.status == payments.FAILED
    assert any("insufficient funds" in x for x in lines)
    email = mails("autopay_failed")[0]
    assert email.to_addr == customer.email and f"/invoices/{inv.id}/pay" in email.text_body
    assert "try again on" in email.text_body
    assert [a.invoice.id for a in autopay.alerts(customer.id)] == [inv.id]

    assert run(sandbox, on=TODAY + dt.timedelta(days=1))[0].skip_reasons == {"retry not due yet": 1}
    assert run(sandbox, on=TODAY + dt.timedelta(days=3))[0].failed == 1
    assert run(sandbox, on=TODAY + dt.timedelta(days=6))[0].failed == 1
    last = run(sandbox, on=TODAY + dt.timedelta(days=9))[0]
    assert (last.failed, last.skip_reasons) == (0, {"no attempts left": 1})
    attempts = list(AutopayCharge.select().order_by(AutopayCharge.attempt))
    assert [a.attempt for a in attempts] == [1, 2, 3] and attempts[-1].retry_on is None
    assert "will not try this invoice again" in mails("autopay_failed")[-1].text_body
    assert accounts.invoice_view(customer.id, inv.id).balance_cents == 4000


def pay_by_hand(customer, invoice, processor, cents):
    payment = payments.start_payment(customer.id, amount_text=f"{cents // 100}.00", method_type="card",
                                     idempotency_key=payments.new_idempotency_key(), invoice_id=invoice.id)
    payment = payments.confirm_billing(payment, {"name": "A B", "street": "1 Main St", "city": "Austin",
                                                 "state": "TX", "zip": "78701", "email": customer.email,
                                                 "phone": "512-555-0100"}, processor)
    state, _ = processor.confirm_card(payment.processor_ref, GOOD, "12 / 34", "123", "78701")
    return payments.apply_intent_state(payment.id, state)


def test_nothing_is_retried_after_the_customer_pays_by_hand(sandbox):
    customer, _ = enrolled(sandbox, NO_FUNDS)
    inv = make_invoice(customer, 4000, due=TODAY)
    run(sandbox)
    assert pay_by_hand(customer, inv, sandbox, 4000).status == payments.SUCCEEDED
    assert mails("payment_receipt")
    retry, _ = run(sandbox, on=TODAY + dt.timedelta(days=3))
    assert (retry.charged, retry.failed) == (0, 0)
    assert AutopayCharge.select().count() == 1 and autopay.alerts(customer.id) == []


def test_a_partial_payment_by_hand_also_stops_the_retry(sandbox):
    customer, _ = enrolled(sandbox, NO_FUNDS)
    inv = make_invoice(customer, 4000, due=TODAY)
    run(sandbox)
    pay_by_hand(customer, inv, sandbox, 1000)
    retry, _ = run(sandbox, on=TODAY + dt.timedelta(days=3))
    assert retry.skip_reasons == {"paid by hand after a failure": 1} and AutopayCharge.select().count() == 1


def test_authentication_required_waits_for_the_customer_with_a_link(sandbox):
    customer, _ = enrolled(sandbox, AUTHENTICATE)
    inv = make_invoice(customer, 4000, due=TODAY)
    summary, lines = run(sandbox)
    assert (summary.charged, summary.failed) == (0, 1)
    charge = AutopayCharge.get()
    assert (charge.status, charge.reason_code) == ("action_required", "authentication_required")
    payment = charge.payment
    assert payment.status == payments.AWAITING_DETAILS
    email = mails("autopay_failed")[0]
    assert f"/payments/{payment.ref}" in email.text_body and "confirm" in email.subject.lower()
    assert run(sandbox, on=TODAY + dt.timedelta(days=3))[0].failed == 0  # not charged off-session again
    # The customer approves on-session (the HTTP path is tested in test_autopay_pages.py).
    sandbox.complete_challenge(payment.processor_ref, approve=True)
    assert payments.sync(payment, sandbox).status == payments.SUCCEEDED
    assert AutopayCharge.get().status == autopay.CHARGED
    assert accounts.invoice_view(customer.id, inv.id).balance_cents == 0


def test_an_expired_card_fails_with_its_reason_and_is_not_sent_to_the_processor(sandbox):
    customer, method = enrolled(sandbox)
    last_month = TODAY.replace(day=1) - dt.timedelta(days=1)
    PaymentMethod.update(exp_month=last_month.month, exp_year=last_month.year).where(
        PaymentMethod.id == method.id).execute()
    make_invoice(customer, 4000, due=TODAY)
    intents = SandboxIntent.select().count()
    summary, _ = run(sandbox)
    assert summary.failed == 1
    charge = AutopayCharge.get()
    assert (charge.status, charge.reason_code, charge.payment_id) == ("failed", "expired_card", None)
    assert SandboxIntent.select().count() == intents
    assert "expired" in mails("autopay_failed")[0].text_body


def test_a_retry_uses_the_method_autopay_has_now(sandbox):
    customer, _ = enrolled(sandbox, NO_FUNDS)
    inv = make_invoice(customer, 4000, due=TODAY)
    run(sandbox)
    good = save_card(customer, sandbox)
    autopay.turn_on(customer.id, good.id, accepted=True)
    assert run(sandbox, on=TODAY + dt.timedelta(days=3))[0].charged == 1
    assert accounts.invoice_view(customer.id, inv.id).balance_cents == 0


def test_turning_autopay_off_or_removing_its_method_stops_charges(sandbox):
    customer, method = enrolled(sandbox)
    make_invoice(customer, 4000, due=TODAY)
    assert autopay.turn_off(customer.id)
    assert run(sandbox)[0].considered == 0
    autopay.turn_on(customer.id, method.id, accepted=True)
    removed = methods.remove(customer.id, method.id, user_id=customer.users[0].id, password="correct horse battery")
    assert removed.autopay_turned_off
    assert not AutopayEnrolment.get().enabled and "removed" in AutopayEnrolment.get().disabled_reason
    assert run(sandbox)[0].considered == 0 and Payment.select().count() == 0


def test_removing_needs_the_password(sandbox):
    customer, method = enrolled(sandbox)
    with pytest.raises(payments.FormErrors) as e:
        methods.remove(customer.id, method.id, user_id=customer.users[0].id, password="wrong")
    assert "password" in e.value.errors and AutopayEnrolment.get().enabled


def test_two_concurrent_runs_charge_each_invoice_once(sandbox):
    invoices = []
    for _ in range(12):
        customer, _ = enrolled(sandbox)
        invoices.append(make_invoice(customer, 2500, due=TODAY))
    database.close()
    barrier = threading.Barrier(2)
    results, errors = [], []

    def worker():
        try:
            barrier.wait()
            results.append(autopay.run(sandbox, on=TODAY, echo=lambda line: None))
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)
        finally:
            database.close()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert sum(r.charged for r in results) == 12 and sum(r.failed for r in results) == 0
    assert AutopayCharge.select().count() == 12
    assert Payment.select().where(Payment.status == payments.SUCCEEDED).count() == 12
    assert charges_at_processor() == 12
    for inv in invoices:
        assert Invoice.get_by_id(inv.id).allocations.count() == 1


def test_upcoming_charge_and_expiring_card_emails_go_out_once(sandbox):
    customer, method = enrolled(sandbox)
    make_invoice(customer, 4000, due=TODAY + dt.timedelta(days=3))
    expiring = save_card(customer, sandbox, expiry=f"{TODAY.month:02d} / {TODAY.year % 100:02d}")
    run(sandbox)
    run(sandbox)
    upcoming = mails("autopay_upcoming")
    assert len(upcoming) == 1 and "$40.00" in upcoming[0].text_body
    cards = mails("card_expiring")
    assert len(cards) == 1 and f"ending {expiring.last4}" in cards[0].text_body
    views = {v.method.id: v for v in methods.saved(customer.id)}
    assert views[expiring.id].expiring and not views[method.id].expiring


def test_home_status_shows_the_next_date_and_amount(sandbox):
    customer, method = enrolled(sandbox)
    make_invoice(customer, 4000, due=TODAY + dt.timedelta(days=8))
    make_invoice(customer, 1500, due=TODAY + dt.timedelta(days=8))
    make_invoice(customer, 9900, due=TODAY + dt.timedelta(days=38))
    status = autopay.status(customer.id)
    assert status.enabled and status.method.id == method.id
    assert (status.next_on, status.next_cents) == (TODAY + dt.timedelta(days=8), 5500)
    autopay.turn_off(customer.id)
    assert not autopay.status(customer.id).enabled
