"""Racing writers on one SQLite file: BEGIN IMMEDIATE and UNIQUE keys keep money exactly-once."""
import threading

from peewee import fn

from billing import payments
from billing.processors import SUCCEEDED, IntentState, IntentUpdate
from db.models import Allocation, Payment, WebhookEvent
from tests.factories import make_customer, make_invoice


def race(n, fn_):
    """Run fn_(i) in n threads released at the same moment; return results or exceptions."""
    barrier = threading.Barrier(n)
    results = [None] * n

    def run(i):
        barrier.wait()
        try:
            results[i] = fn_(i)
        except Exception as e:  # noqa: BLE001 - collected and asserted on
            results[i] = e

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return results


def test_eight_concurrent_reports_of_one_success_allocate_once(ledger_db):
    c = make_customer()
    make_invoice(c, 3000)
    make_invoice(c, 3000)
    p = Payment.create(ref="PAY-RACE0001", customer=c.id, idempotency_key="k" * 32, amount_cents=5000,
                       method_type="card", status=payments.AWAITING_DETAILS, processor="sandbox",
                       processor_ref="pi_race")
    state = IntentState(id="pi_race", status=SUCCEEDED, amount_cents=5000, brand="Visa", last4="4242",
                         currency="USD")
    results = race(8, lambda i: payments.apply_intent_state(p.id, state).status)
    assert results == [payments.SUCCEEDED] * 8, results
    assert Allocation.select(fn.SUM(Allocation.amount_cents)).scalar() == 5000
    assert Allocation.select().count() == 2


def test_concurrent_submits_with_one_key_create_one_payment(ledger_db):
    c = make_customer()
    make_invoice(c, 3000)
    key = payments.new_idempotency_key()
    results = race(6, lambda i: payments.start_payment(c.id, amount_text="30.00", method_type="card",
                                                       idempotency_key=key).ref)
    assert len(set(results)) == 1, results
    assert Payment.select().count() == 1


def test_the_same_webhook_event_three_times_at_once_is_applied_once(ledger_db):
    from billing.processors.sandbox import SandboxProcessor

    c = make_customer()
    make_invoice(c, 3000)
    proc = SandboxProcessor(webhook_secret="x")
    p = payments.start_payment(c.id, amount_text="30.00", method_type="card",
                               idempotency_key=payments.new_idempotency_key())
    p = payments.confirm_billing(p, {"name": "A", "street": "1 St", "city": "Austin", "state": "TX",
                                     "zip": "78701", "email": "a@example.test", "phone": "5125550100"}, proc)
    proc.confirm_card(p.processor_ref, "4242424242424242", "12/34", "123", "78701")
    update = IntentUpdate(p.processor_ref, proc.retrieve_payment_intent(p.processor_ref))
    results = race(3, lambda i: payments.handle_remote_event(proc, "evt_same", "payment_intent.succeeded", update))
    assert sorted(results) == [False, False, True], results
    assert WebhookEvent.select().count() == 1
    assert Allocation.select(fn.SUM(Allocation.amount_cents)).scalar() == 3000
