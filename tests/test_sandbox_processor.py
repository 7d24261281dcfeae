"""The sandbox implements the whole processor interface: refunds (full and partial), disputes and their
outcomes, cancel, off-session charges and separate setup intents, through the real pay flow, the real
``flask`` commands and the sandbox's own signed webhooks (delivered by ``tick``, as its worker does)."""
import pytest

from billing import accounts, payments
from billing.processors import CANCELED, REQUIRES_PAYMENT_METHOD, SUCCEEDED, Capability, ProcessorError
from db.models import Payment, PaymentReversal, SandboxDispute, SandboxRefund, WebhookEvent
from tests.staff_support import owner  # noqa: F401
from tests.test_pay_flow import ACH_OK, GOOD_CARD, make_payment, owing, pay_at_processor  # noqa: F401
from views.sandbox import tick

DISPUTED_CARD = {**GOOD_CARD, "number": "4000 0000 0000 0259"}


def paid(logged_in, amount="50.00", card=GOOD_CARD):
    ref, entry = make_payment(logged_in, amount)
    pay_at_processor(logged_in, entry, card)
    logged_in.get(f"/payments/{ref}")  # the portal asks the processor, as the page's poll does
    payment = Payment.get(Payment.ref == ref)
    assert payment.status == payments.SUCCEEDED
    return payment


def fresh(payment):
    return Payment.get_by_id(payment.id)


def test_the_sandbox_declares_what_it_implements(app):
    proc = app.extensions["processor"]
    assert proc.capabilities == {Capability.SAVED_METHODS, Capability.OFF_SESSION, Capability.REFUNDS,
                                 Capability.DISPUTES, Capability.BANK_VERIFICATION}
    assert proc.can(Capability.BANK_VERIFICATION)  # the microdeposit step (tests/test_bank_verification.py)


def test_refund_command_refunds_part_then_the_rest_and_the_invoices_reopen(app, runner, logged_in, owing):
    old, new = owing
    payment = paid(logged_in)
    part = runner.invoke(args=["refund", payment.ref, "20.00"])
    assert part.exit_code == 0, part.output
    assert "$30.00 still refundable" in part.output and fresh(payment).status == payments.SUCCEEDED
    assert accounts.invoice_view(payment.customer_id, new.id).balance_cents == 4000  # newest allocation first
    assert accounts.invoice_view(payment.customer_id, old.id).balance_cents == 0
    assert SandboxRefund.select().count() == 1
    rest = runner.invoke(args=["refund", payment.ref])
    assert rest.exit_code == 0, rest.output
    assert fresh(payment).status == payments.REFUNDED
    assert accounts.invoice_view(payment.customer_id, old.id).balance_cents == 3000
    assert sum(r.amount_cents for r in SandboxRefund.select()) == 5000
    # The sandbox's webhooks then arrive (the success and two refunds): nothing is taken back twice.
    _, delivered = tick(app)
    assert delivered == 3 and WebhookEvent.select().where(WebhookEvent.event_type == "charge.refunded").count() == 2
    assert payments.taken_back(payment.id) == 5000
    more = runner.invoke(args=["refund", payment.ref, "1.00"])
    assert more.exit_code != 0 and "refunded" in more.output.lower()


def test_the_sandbox_refuses_a_refund_larger_than_what_is_left_and_repeats_a_key_as_one_refund(app, logged_in,
                                                                                              owing):
    proc = app.extensions["processor"]
    payment = paid(logged_in, "30.00")
    with pytest.raises(ProcessorError):
        proc.refund(payment.processor_ref, 3001, "too-much")
    first = proc.refund(payment.processor_ref, 1000, "same-key")
    assert proc.refund(payment.processor_ref, 1000, "same-key") == first
    assert SandboxRefund.select().count() == 1
    with pytest.raises(ProcessorError):
        proc.refund(payment.processor_ref, 500, "same-key")  # the same key with another amount


def test_a_disputed_test_card_is_disputed_then_won_and_the_money_comes_back(app, runner, logged_in, owing):
    payment = paid(logged_in, card=DISPUTED_CARD)
    tick(app)  # payment_intent.succeeded and charge.dispute.created
    assert fresh(payment).status == payments.DISPUTED
    assert payments.taken_back(payment.id) == 5000
    refused = runner.invoke(args=["refund", payment.ref])
    assert refused.exit_code != 0  # a disputed payment is not refunded
    won = runner.invoke(args=["sandbox-dispute", payment.ref, "--won"])
    assert won.exit_code == 0, won.output
    assert fresh(payment).status == payments.SUCCEEDED and payments.taken_back(payment.id) == 0
    assert [k for (k,) in PaymentReversal.select(PaymentReversal.kind).tuples()] == ["dispute", "dispute_won"]


def test_a_dispute_opened_from_the_command_line_and_lost_reverses_the_payment(app, runner, logged_in, owing):
    payment = paid(logged_in)
    opened = runner.invoke(args=["sandbox-dispute", payment.ref])
    assert opened.exit_code == 0, opened.output
    assert fresh(payment).status == payments.DISPUTED
    lost = runner.invoke(args=["sandbox-dispute", payment.ref, "--lost"])
    assert lost.exit_code == 0, lost.output
    assert fresh(payment).status == payments.REVERSED and payments.taken_back(payment.id) == 5000
    again = runner.invoke(args=["sandbox-dispute", payment.ref, "--won"])
    assert again.exit_code != 0 and "no open dispute" in again.output


def test_an_inquiry_takes_nothing_staff_see_it_and_it_may_become_a_chargeback(app, runner, logged_in, owing,
                                                                             owner):
    payment = paid(logged_in)
    opened = runner.invoke(args=["sandbox-dispute", payment.ref, "--inquiry"])
    assert opened.exit_code == 0 and "inquiry opened" in opened.output, opened.output
    assert fresh(payment).status == payments.SUCCEEDED and payments.taken_back(payment.id) == 0
    page = owner.get(f"/staff/payments/{payment.ref}").get_data(as_text=True)
    assert 'id="disputes"' in page and "Inquiry: the bank asks for information (no money taken)" in page
    escalated = runner.invoke(args=["sandbox-dispute", payment.ref, "--lost"])
    assert escalated.exit_code == 0, escalated.output
    assert fresh(payment).status == payments.DISPUTED and payments.taken_back(payment.id) == 5000
    assert "Chargeback: evidence needed" in owner.get(f"/staff/payments/{payment.ref}").get_data(as_text=True)
    won = runner.invoke(args=["sandbox-dispute", payment.ref, "--won"])
    assert won.exit_code == 0, won.output
    assert fresh(payment).status == payments.SUCCEEDED and payments.taken_back(payment.id) == 0


def test_an_inquiry_that_closes_moves_no_money_at_all(app, runner, logged_in, owing):
    payment = paid(logged_in)
    assert runner.invoke(args=["sandbox-dispute", payment.ref, "--inquiry"]).exit_code == 0
    closed = runner.invoke(args=["sandbox-dispute", payment.ref, "--won"])
    assert closed.exit_code == 0, closed.output
    assert SandboxDispute.get().status == "warning_closed"
    assert fresh(payment).status == payments.SUCCEEDED and PaymentReversal.select().count() == 0
    again = runner.invoke(args=["sandbox-dispute", payment.ref, "--won"])
    assert again.exit_code != 0 and "no open dispute" in again.output


def test_a_late_ach_return_is_a_dispute_lost_at_once_as_with_stripe(app, runner, logged_in, owing):
    ref, entry = make_payment(logged_in, "50.00", method_type="ach")
    pay_at_processor(logged_in, entry, ACH_OK)
    tick(app, force=True)  # the debit settles, and its webhooks arrive
    payment = Payment.get(Payment.ref == ref)
    assert payment.status == payments.SUCCEEDED
    result = runner.invoke(args=["sandbox-dispute", ref])
    assert result.exit_code == 0, result.output
    assert SandboxDispute.get().status == "lost" and SandboxDispute.get().reason == "debit_not_authorized"
    assert fresh(payment).status == payments.REVERSED and payments.taken_back(payment.id) == 5000


def test_cancel_stops_an_unpaid_intent_for_good_and_leaves_a_paid_one(app, logged_in, owing):
    proc = app.extensions["processor"]
    ref, entry = make_payment(logged_in, "10.00")
    intent_id = Payment.get(Payment.ref == ref).processor_ref
    assert proc.cancel_payment_intent(intent_id).status == CANCELED
    with pytest.raises(ProcessorError):
        proc.charge_saved_method(intent_id, "pm_sbx_unknown")
    paid_one = paid(logged_in, "10.00")
    assert proc.cancel_payment_intent(paid_one.processor_ref).status == SUCCEEDED


def test_setup_and_payment_intents_are_separate_calls(app):
    proc = app.extensions["processor"]
    setup = proc.create_setup_intent(method_type="card", idempotency_key="setup-key-0000001", customer_id=1)
    assert setup.status == REQUIRES_PAYMENT_METHOD and setup.amount_cents == 0
    assert proc.retrieve_setup_intent(setup.id).id == setup.id
    with pytest.raises(ProcessorError):
        proc.retrieve_payment_intent(setup.id)  # a setup is not a payment, whatever its id looks like
    assert proc.cancel_setup_intent(setup.id).status == CANCELED


def test_an_off_session_charge_with_the_same_key_charges_once(app, logged_in, owing):
    proc = app.extensions["processor"]
    first = paid(logged_in, "10.00")
    token = proc.retrieve_payment_intent(first.processor_ref).method_token
    kwargs = dict(amount_cents=700, currency="USD", method_type="card", method_token=token, customer_id=1,
                  idempotency_key="autopay-key-000001")
    one = proc.charge_off_session(**kwargs)
    assert one.status == SUCCEEDED
    assert proc.charge_off_session(**kwargs).id == one.id
