"""Cash, check and money-order payments recorded at the counter: the ledger rules, once per form, reversible."""
import datetime as dt
import re

from billing import accounts
from db.models import Allocation, AuditLog, CreditEntry, Invoice, OfflinePayment, Outbox, Payment, PaymentReversal
from tests.factories import make_customer, make_invoice
from tests.staff_support import clerk, staff  # noqa: F401

TODAY = dt.date.today()


def form_for(portal, customer, **fields):
    """The Record-a-payment form as the customer's page renders it (its idempotency key), filled in."""
    page = portal.get(f"/staff/customers/{customer.id}").get_data(as_text=True)
    key = re.search(r'name="idempotency_key" value="([^"]+)"', page).group(1)
    return {"idempotency_key": key, "kind": "cash", "amount": "10.00", "received_on": TODAY.isoformat(),
            "check_number": "", "note": "", "invoice": "", **fields}


def record(portal, customer, **fields):
    return portal.post(f"/staff/customers/{customer.id}/payments", form_for(portal, customer, **fields))


def ledger_holds(payment):
    """Allocations plus credit of a payment equal what it received less what was taken back."""
    allocated = sum(a.amount_cents for a in Allocation.select().where(Allocation.payment == payment.id))
    credit = sum(c.amount_cents for c in CreditEntry.select().where(CreditEntry.payment == payment.id))
    taken = sum(r.amount_cents for r in PaymentReversal.select().where(PaymentReversal.payment == payment.id))
    return allocated + credit == payment.amount_cents - taken


def test_cash_pays_the_chosen_invoice_first_then_the_oldest_and_the_rest_is_credit(app, clerk):
    c = make_customer(email="ana@example.test")
    old = make_invoice(c, cents=3000, due=TODAY - dt.timedelta(days=30), number="OLD-1")
    chosen = make_invoice(c, cents=2000, due=TODAY + dt.timedelta(days=30), number="NEW-1")
    resp = record(clerk, c, amount="60.00", invoice=str(chosen.id), note="paid at the desk")
    assert resp.status_code == 303
    p = Payment.get(Payment.customer == c.id)
    assert resp.headers["Location"].endswith(f"/staff/payments/{p.ref}")
    assert (p.status, p.processor, p.origin, p.method_type, p.amount_cents) == \
        ("succeeded", "offline", "counter", "cash", 6000)
    applied = {a.invoice.number: a.amount_cents for a in Allocation.select().where(Allocation.payment == p.id)}
    assert applied == {"NEW-1": 2000, "OLD-1": 3000}
    assert CreditEntry.get(CreditEntry.payment == p.id).amount_cents == 1000
    assert ledger_holds(p)
    row = OfflinePayment.get(OfflinePayment.payment == p.id)
    assert (row.kind, row.received_on, row.note) == ("cash", TODAY, "paid at the desk")
    assert row.recorded_by.startswith("staff:")
    mail = Outbox.get(Outbox.kind == "payment_receipt")
    assert mail.to_addr == "ana@example.test" and p.ref in mail.text_body and "Method: Cash" in mail.text_body
    receipt = clerk.get(resp.headers["Location"]).get_data(as_text=True)
    assert "Receipt" in receipt and "$60.00" in receipt and p.ref in receipt
    assert "queued for ana@example.test (not sent yet)" in receipt
    assert "Invoice NEW-1" in receipt and "Account credit" in receipt
    assert AuditLog.select().where((AuditLog.entity_id == p.ref) & (AuditLog.action == "payment.succeeded")).exists()
    assert Invoice.get_by_id(old.id).id == old.id


def test_a_double_submitted_payment_form_records_one_payment(app, clerk):
    c = make_customer()
    inv = make_invoice(c, cents=5000)
    # Pays the chosen invoice in full: the second post must not be refused because it is no longer open.
    form = form_for(clerk, c, amount="50.00", kind="check", check_number="1042", invoice=str(inv.id))
    first = clerk.post(f"/staff/customers/{c.id}/payments", form)
    second = clerk.post(f"/staff/customers/{c.id}/payments", form)
    assert first.status_code == second.status_code == 303
    assert first.headers["Location"] == second.headers["Location"]
    assert Payment.select().where(Payment.customer == c.id).count() == 1
    assert Allocation.select().count() == 1 and Outbox.select().where(Outbox.kind == "payment_receipt").count() == 1
    assert Payment.get(Payment.customer == c.id).method_brand == "Check no. 1042"


def test_a_form_key_cannot_record_for_another_customer(app, clerk):
    a, b = make_customer(), make_customer()
    form = form_for(clerk, a, amount="5.00")
    assert clerk.post(f"/staff/customers/{a.id}/payments", form).status_code == 303
    resp = clerk.post(f"/staff/customers/{b.id}/payments", form)
    assert resp.status_code == 422 and "This form has expired" in resp.get_data(as_text=True)
    assert Payment.select().where(Payment.customer == b.id).count() == 0


def test_bad_payment_fields_are_shown_by_field_and_nothing_is_written(app, clerk):
    c = make_customer()
    other = make_invoice(make_customer(), cents=1000)
    resp = record(clerk, c, kind="check", amount="-5", check_number="", invoice=str(other.id),
                  received_on=(TODAY + dt.timedelta(days=1)).isoformat())
    assert resp.status_code == 422
    page = resp.get_data(as_text=True)
    for field in ("amount", "check_number", "invoice", "received_on"):
        assert f'id="{field}-error"' in page, field
    assert "The date received cannot be in the future." in page
    for bad in ({"kind": "bitcoin"}, {"amount": "12.345"}, {"received_on": "yesterday"},
                {"received_on": (TODAY - dt.timedelta(days=400)).isoformat()}, {"amount": "100000.01"},
                {"idempotency_key": "short"}, {"note": "x" * 501}, {"check_number": "<script>"}):
        assert record(clerk, c, **bad).status_code == 422, bad
    assert Payment.select().count() == 0 and OfflinePayment.select().count() == 0


def test_a_bounced_check_is_reversed_by_new_rows_and_the_invoice_reopens(app, clerk):
    c = make_customer(email="bo@example.test")
    inv = make_invoice(c, cents=4000, number="BOUNCE-1")
    record(clerk, c, kind="check", check_number="77", amount="50.00")
    p = Payment.get(Payment.customer == c.id)
    before = [(a.id, a.amount_cents) for a in Allocation.select()]
    missing = clerk.post(f"/staff/payments/{p.ref}/reverse", {"reason": " "})
    assert missing.status_code == 422 and 'id="reason-error"' in missing.get_data(as_text=True)
    assert Payment.get_by_id(p.id).status == "succeeded"
    resp = clerk.post(f"/staff/payments/{p.ref}/reverse", {"reason": "Check returned unpaid (NSF)"})
    assert resp.status_code == 303
    p = Payment.get_by_id(p.id)
    assert p.status == "reversed" and p.failure_message == "Check returned unpaid (NSF)"
    # Old rows untouched; the reversal is new rows: -4000 on the invoice and -1000 of the credit.
    assert [(a.id, a.amount_cents) for a in Allocation.select().where(Allocation.id.in_([i for i, _ in before]))] \
        == before
    assert sum(a.amount_cents for a in Allocation.select().where(Allocation.invoice == inv.id)) == 0
    assert CreditEntry.balance(c.id) == 0 and ledger_holds(p)
    rev = PaymentReversal.get(PaymentReversal.payment == p.id)
    assert (rev.kind, rev.amount_cents, rev.reason) == ("counter_reversal", 5000, "Check returned unpaid (NSF)")
    mail = Outbox.get(Outbox.kind == "payment.reversal")
    assert mail.to_addr == "bo@example.test" and "Check returned unpaid (NSF)" in mail.text_body
    again = clerk.post(f"/staff/payments/{p.ref}/reverse", {"reason": "twice"})
    assert again.status_code == 303 and PaymentReversal.select().count() == 1
    page = clerk.get(f"/staff/payments/{p.ref}").get_data(as_text=True)
    assert "Reversed by staff" in page and 'id="reverse-payment"' not in page
    statement = accounts.statement(c.id, TODAY - dt.timedelta(days=60), TODAY + dt.timedelta(days=1))
    assert statement.closing_cents == 4000  # owes the invoice again
    assert [r.kind for r in statement.rows] == ["invoice", "payment", "reversal"]


def test_the_customer_sees_a_counter_payment_in_the_portal(app, clerk, client):
    from tests.factories import PASSWORD, Portal

    c = make_customer()
    make_invoice(c, cents=2500)
    record(clerk, c, kind="money_order", check_number="MO-55", amount="25.00")
    p = Payment.get(Payment.customer == c.id)
    me = Portal(app.test_client())
    assert me.login(c.email, PASSWORD).status_code == 302
    page = me.get(f"/payments/{p.ref}")
    assert page.status_code == 200 and "Payment was successful" in page.get_data(as_text=True)
    assert "Money order no. MO-55" in me.get("/payments").get_data(as_text=True)
    assert accounts.summary(c.id).balance_cents == 0


def test_a_processor_payment_is_not_reversed_at_the_counter(app, clerk):
    from tests.test_staff_pages import _payment

    c = make_customer()
    _payment(c, "PAY-CARDONLY", "succeeded")
    resp = clerk.post("/staff/payments/PAY-CARDONLY/reverse", {"reason": "try"})
    assert resp.status_code == 422 and Payment.get(Payment.ref == "PAY-CARDONLY").status == "succeeded"
    assert clerk.get("/staff/payments/PAY-NOPE").status_code == 404
