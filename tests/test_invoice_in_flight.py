"""Staff cannot edit or void an invoice while money for it is on its way: a charge claimed and not yet answered,
a payment held for checking, an ACH debit settling or waiting for its bank account's verification. The refusal names the payment; nothing is changed. An
attempt only open in a payment window does not block (its charge is checked again when it is made)."""
import pytest

from billing import invoicing, payments
from db import write_tx
from db.models import AuditLog, Invoice, InvoiceLine, Payment, SandboxIntent
from tests.factories import Portal
from tests.staff_support import CLERK_EMAIL, log_in_staff, make_staff
from tests.test_bank_verification import AMOUNTS_ACCOUNT
from tests.test_claim_expiry import THREE_D_SECURE
from tests.test_pay_flow import ACH_OK, GOOD_CARD, make_payment, owing, pay_at_processor  # noqa: F401  (a fixture)
from tests.test_staff_invoices import invoice_form


@pytest.fixture
def clerk(app):
    make_staff(CLERK_EMAIL, staff_role="clerk", name="Cary Clerk")
    return log_in_staff(Portal(app.test_client()), CLERK_EMAIL)


def claimed(logged_in):
    ref, entry = make_payment(logged_in, "30.00")
    pay_at_processor(logged_in, entry, THREE_D_SECURE)  # the bank's challenge, never answered
    return Payment.get(Payment.ref == ref), "is being charged and the processor has not answered yet"


def held(logged_in):
    ref, entry = make_payment(logged_in, "30.00")
    p = Payment.get(Payment.ref == ref)
    with write_tx():
        SandboxIntent.update(amount_cents=3100).where(SandboxIntent.id == p.processor_ref).execute()
    logged_in.get(pay_at_processor(logged_in, entry, GOOD_CARD).location)
    return Payment.get_by_id(p.id), "is held for checking"


def settling(logged_in):
    ref, entry = make_payment(logged_in, "30.00", method_type="ach")
    logged_in.get(pay_at_processor(logged_in, entry, ACH_OK).location)
    return Payment.get(Payment.ref == ref), "is still settling"


def verifying(logged_in):
    ref, entry = make_payment(logged_in, "30.00", method_type="ach")
    logged_in.get(pay_at_processor(logged_in, entry, {**ACH_OK, "account": AMOUNTS_ACCOUNT}).location)
    return Payment.get(Payment.ref == ref), "is waiting for the customer to verify the bank account"


@pytest.mark.parametrize("make, status", [(claimed, payments.AWAITING_DETAILS), (held, payments.HELD),
                                          (settling, payments.PROCESSING),
                                          (verifying, payments.AWAITING_VERIFICATION)],
                         ids=["claimed", "held", "settling_ach", "verifying_ach"])
def test_an_invoice_with_money_on_its_way_cannot_be_edited_or_voided(app, logged_in, owing, clerk, make, status):
    old, _ = owing
    p, words = make(logged_in)
    assert p.status == status
    assert invoicing.pending_cents(old.id) == 3000  # counted as the customer's own pages count it
    page = clerk.get(f"/staff/invoices/{old.id}").get_data(as_text=True)
    assert "Editing is closed" in page and p.ref in page and 'id="edit-invoice"' not in page
    edit = clerk.get(f"/staff/invoices/{old.id}/edit")
    assert edit.status_code == 409 and p.ref in edit.get_data(as_text=True)
    posted = clerk.post(f"/staff/invoices/{old.id}/edit", invoice_form(number=old.number,
                                                                       lines=(("Plan", "1", "10.00"),)))
    shown = posted.get_data(as_text=True)
    assert posted.status_code == 409 and p.ref in shown and words in shown
    void = clerk.post(f"/staff/invoices/{old.id}/void", {"void_reason": "billed the wrong plan"})
    shown = void.get_data(as_text=True)
    assert void.status_code == 422 and p.ref in shown and words in shown
    inv = Invoice.get_by_id(old.id)
    assert (inv.void, inv.total_cents) == (False, 3000)
    assert [line.unit_cents for line in InvoiceLine.select().where(InvoiceLine.invoice == old.id)] == [3000]
    assert not AuditLog.select().where(AuditLog.action.in_(["invoice.updated", "invoice.voided"])).exists()


def test_an_attempt_only_open_in_its_window_does_not_block_and_a_released_claim_frees_the_invoice(
        app, logged_in, owing, clerk):
    old, _ = owing
    make_payment(logged_in, "30.00")  # Make Payment: reserved, nothing asked of the processor yet
    assert invoicing.in_flight_payment(old.id) is None and invoicing.why_not_editable(old) is None
    p, _ = claimed(logged_in)
    assert invoicing.in_flight_payment(old.id).id == p.id
    processor = app.extensions["processor"]
    payments.reconcile(processor, now=p.charging_at + payments.CLAIM_TTL + payments.RESERVATION_TTL)
    assert Payment.get_by_id(p.id).status == payments.CANCELED
    void = clerk.post(f"/staff/invoices/{old.id}/void", {"void_reason": "billed the wrong plan"})
    assert void.status_code == 303 and Invoice.get_by_id(old.id).void
