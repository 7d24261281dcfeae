"""Money is checked when it moves: against a real gunicorn (4 workers), on SQLite and on PostgreSQL.

Each test attacks the pay flow the way a customer with many tabs, a retrying client, or a crash would,
then asks the sandbox processor what it really charged and checks the ledger.
"""
import datetime as dt
import json
import threading
import time

from peewee import fn

from billing import accounts, autopay, identity, payments
from db import write_tx
from db.models import (
    AuditLog,
    AutopayEnrolment,
    Customer,
    Invoice,
    Isp,
    Outbox,
    Payment,
    PaymentMethod,
    SandboxIntent,
    SandboxMethod,
)
from tests.live_support import (  # noqa: F401 - live and live_db are fixtures
    BILLING,
    Gunicorn,
    Session,
    ledger_holds,
    live,
    live_db,
    pay_in_window,
    pay_steps,
    start,
)

PASSWORD = "correct horse battery"


def _demo():
    customer = Customer.get(Customer.account_number == "100-2001")
    overdue = Invoice.get(Invoice.number == "INV-1002")
    return customer, overdue


def _mark():
    """The newest payment id now: what happened before it (the demo's own payments) is not counted."""
    return Payment.select(fn.COALESCE(fn.MAX(Payment.id), 0)).scalar()


def _charged(customer_id, after=0):
    """What the processor itself took from this customer: its succeeded intents (the sandbox's own table)."""
    refs = [p.processor_ref for p in Payment.select().where((Payment.customer == customer_id) & (Payment.id > after))
            if p.processor_ref]
    intents = list(SandboxIntent.select().where(SandboxIntent.id.in_(refs) & (SandboxIntent.status == "succeeded")))
    return sum(i.amount_cents for i in intents), len(intents)


def _record_all(session, customer_id):
    """Open every payment's page, as the customer coming back would: the portal records what the processor did."""
    for p in Payment.select().where(Payment.customer == customer_id):
        assert session.get(f"/payments/{p.ref}").status == 200


def _race(n, work, spacing=0.0):
    """Run work(i) in n threads released together (``spacing`` seconds apart); return results."""
    barrier = threading.Barrier(n)
    out = [None] * n

    def run(i):
        barrier.wait()
        time.sleep(i * spacing)
        try:
            out[i] = work(i)
        except Exception as e:  # noqa: BLE001 - asserted on below
            out[i] = e

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return out


def _lockstep(n, steps):
    """n tabs walking the same steps together: every tab does step k before any tab starts step k + 1."""
    barrier = threading.Barrier(n)
    state = [{} for _ in range(n)]
    errors = []

    def run(i):
        try:
            for step in steps:
                barrier.wait(120)
                step(i, state[i])
        except Exception as e:  # noqa: BLE001
            errors.append(e)
            barrier.abort()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert not errors, errors
    return state


def _customer_with(cents, email):
    """A new customer with a login and one invoice of ``cents``."""
    with write_tx():
        c = Customer.create(account_number=f"ACC-{email}", name="Race Tester", email=email, phone="512-555-0100",
                            street="1 Main St", city="Austin", state="TX", zip="78701")
    identity.create_user(email, PASSWORD, customer_id=c.id)
    inv = accounts.add_invoice(c.id, f"INV-{email}", dt.date.today() - dt.timedelta(days=20),
                               dt.date.today() + dt.timedelta(days=10), [("Internet service", 1, cents)])
    return c, inv


def _saved_card(customer_id):
    """A card the customer saved earlier: the sandbox's token and the portal's record of it."""
    with write_tx():
        token = SandboxMethod.create(id=f"pm_sbx_saved{customer_id}", method_type="card", brand="Visa",
                                     last4="4242", exp_month=12, exp_year=2034)
        return PaymentMethod.create(customer=customer_id, processor="sandbox", processor_ref=token.id,
                                    method_type="card", brand="Visa", last4="4242", exp_month=12, exp_year=2034)


def test_fifty_tabs_paying_one_invoice_at_once_charge_no_more_than_is_owed(live):
    customer, overdue = _demo()
    owed = accounts.summary(customer.id).balance_cents
    allowance = Isp.current().max_prepay_cents
    before, (received0, _, _) = _mark(), ledger_holds(customer.id)
    session = Session(live.url).login()
    answers = []

    def cont(i, s):
        s["cont"], s["csrf"] = start(session, 6499, overdue.id)
        answers.append(s["cont"].status)

    def make_payment(i, s):
        if s["cont"].status == 303:
            s["make"] = session.post(s["cont"].location + "/billing", BILLING, s["csrf"])
            answers.append(s["make"].status)

    def pay(i, s):
        make = s.get("make")
        if make is not None and make.status == 303 and "/sandbox/pay/" in make.location:
            answers.append(pay_in_window(session, make.location).status)

    started = time.monotonic()
    tabs = _lockstep(50, [cont, make_payment, pay])
    seconds = time.monotonic() - started
    charged, charges = _charged(customer.id, before)
    _record_all(session, customer.id)
    received, _, credit = ledger_holds(customer.id)
    print(f"\n50 tabs: {charges} charge(s), {charged} cents charged; open balance {owed} + allowance {allowance}; "
          f"credit now {credit} cents; answers {sorted(set(answers))}; {seconds:.1f} s")
    assert not [s for s in answers if s >= 500]
    assert charged <= owed + allowance
    assert charged <= owed  # no tab chose to prepay, so none of it may become credit
    assert received - received0 == charged and credit == 0
    refused = [s["make"] for s in tabs if s.get("make") is not None and s["make"].status == 422]
    assert refused and all("you owe" in a.text.lower() for a in refused)


def test_two_pay_requests_4ms_apart_with_two_keys_charge_once(live):
    c, inv = _customer_with(10000, "ninja@example.test")
    card = _saved_card(c.id)
    session = Session(live.url).login("ninja@example.test", PASSWORD)
    started = []
    for _ in range(2):  # two tabs, each at Billing Information with its own key
        page = session.get(f"/invoices/{inv.id}/pay")
        a = session.post("/pay", {"amount": "100.00", "method_type": "card", "key": page.key(),
                                  "invoice_id": str(inv.id), "saved_method": str(card.id)}, page.csrf())
        assert a.status == 303, a.text[:300]
        started.append((a.location, page.csrf()))
    # Make Payment with a saved card is the request that charges: two of them, 4 ms apart.
    answers = _race(2, lambda i: session.post(started[i][0] + "/billing", BILLING, started[i][1]), spacing=0.004)
    charged, charges = _charged(c.id)
    _record_all(session, c.id)
    print(f"\n4 ms apart: {charges} charge(s), {charged} cents, answers {[getattr(a, 'status', a) for a in answers]}")
    assert charges == 1 and charged == 10000
    assert sorted(a.status for a in answers) == [303, 422]
    assert ledger_holds(c.id) == (10000, 10000, 0)


def test_the_prepayment_cap_counts_credit_already_held_over_several_payments(live):
    from billing import paylinks

    customer, overdue = _demo()
    owed = accounts.summary(customer.id).balance_cents  # $179.97
    before = _mark()
    session = Session(live.url).login()

    def pay_total(cents):
        cont, csrf = start(session, cents)
        if cont.status != 303:
            return cont
        make = session.post(cont.location + "/billing", BILLING, csrf)
        pay_in_window(session, make.location)
        return session.get(cont.location)

    first = pay_total(owed + 50000)  # the balance and the whole $500 allowance
    assert first.status == 200 and "Payment was successful" in first.text
    assert "$500.00 of this payment is now account credit" in first.text
    assert accounts.summary(customer.id).credit_cents == 50000
    receipt = Outbox.get((Outbox.kind == "payment_receipt") & (Outbox.to_addr == BILLING["email"])
                         & Outbox.text_body.contains("$679.97"))
    assert "$500.00 of this payment is now credit" in receipt.text_body
    for cents in (50000, 100):
        again = pay_total(cents)
        assert again.status == 422
        assert "already holds $500.00 of credit" in again.text
    assert _charged(customer.id, before) == (owed + 50000, 1)
    # Pay-by-link: two tabs of one invoice's link; the second would all become credit, so it is refused.
    c2, inv2 = _customer_with(4500, "linked@example.test")
    token = paylinks.make(live.app.config["SECRET_KEY"], inv2.id)
    link = Session(live.url)
    tabs = []
    for _ in range(2):
        page = link.get(f"/paylink/{token}")
        a = link.post(f"/paylink/{token}", {"method_type": "card", "key": page.key()}, page.csrf())
        assert a.status == 303, a.text[:300]
        tabs.append((a.location, page.csrf()))
    results = []
    for location, csrf in tabs:
        make = link.post(location, BILLING, csrf)
        results.append(make.status)
        if make.status == 303 and "/sandbox/pay/" in make.location:
            pay_in_window(link, make.location)
            link.get(location)
        else:
            assert "Nothing was charged" in make.text
    assert results == [303, 422]
    assert _charged(c2.id) == (4500, 1)
    assert ledger_holds(customer.id)[2] == 50000 and ledger_holds(c2.id) == (4500, 4500, 0)
    print(f"\ncap: {owed + 50000} cents paid on a {owed} cent balance (credit 50000); $500 and $1 more refused; "
          f"two link tabs: 1 charge")


def test_a_stale_attempt_is_not_charged_and_the_customer_sees_the_new_amount(live):
    customer, overdue = _demo()
    session = Session(live.url).login()
    before = _mark()
    # Tab A stops at Billing Information for the whole balance ($179.97).
    a, csrf = start(session, 17997)
    assert a.status == 303
    # Tab B pays the overdue invoice ($64.99) meanwhile.
    steps = pay_steps(session, overdue.id, 6499)
    session.get(steps[0].location)
    home = session.get("/")
    assert "no longer fits your balance" in home.text and "Pay $114.98 instead" in home.text
    # Back in tab A, Make Payment: nothing is charged, and the page says what changed.
    make = session.post(a.location + "/billing", BILLING, csrf)
    assert make.status == 422
    assert "you owe $114.98 now" in make.text and "Pay $114.98 instead" in make.text
    assert _charged(customer.id, before) == (6499, 1)
    # One click continues with the new amount.
    renew = session.post(a.location + "/renew", {}, csrf)
    assert renew.status == 303 and "/sandbox/pay/" in renew.location
    pay_in_window(session, renew.location)
    _record_all(session, customer.id)
    assert _charged(customer.id, before) == (17997, 2)
    assert accounts.summary(customer.id).balance_cents == 0
    assert ledger_holds(customer.id)[2] == 0


def test_an_expired_window_paid_after_the_balance_was_paid_elsewhere_is_not_charged(live):
    customer, overdue = _demo()
    session = Session(live.url).login()
    before = _mark()
    a, csrf = start(session, 17997)
    window = session.post(a.location + "/billing", BILLING, csrf)
    assert "/sandbox/pay/" in window.location
    old = Payment.get(Payment.ref == a.location.rsplit("/", 1)[1])
    with write_tx():  # the window was left open past its reservation
        Payment.update(updated_at=old.updated_at - payments.RESERVATION_TTL - dt.timedelta(minutes=1)).where(
            Payment.id == old.id).execute()
    cont, csrf2 = start(session, 17997)  # the whole balance, paid in another tab
    make = session.post(cont.location + "/billing", BILLING, csrf2)
    assert pay_in_window(session, make.location).status == 303
    session.get(cont.location)
    late = pay_in_window(session, window.location)
    assert late.status == 303  # back to the portal, which says why
    assert SandboxIntent.get_by_id(old.processor_ref).status == "canceled"
    shown = session.get(a.location)
    assert "was not charged" in shown.text and "you owe $0.00 now" in shown.text
    _record_all(session, customer.id)
    assert _charged(customer.id, before) == (17997, 1)
    ledger_holds(customer.id)


def _held_case(live, change):
    customer, overdue = _demo()
    session = Session(live.url).login()
    cont, csrf = start(session, 6499, overdue.id)
    make = session.post(cont.location + "/billing", BILLING, csrf)
    p = Payment.get(Payment.ref == cont.location.rsplit("/", 1)[1])
    with write_tx():  # the processor's own record of the intent says something else
        SandboxIntent.update(**change).where(SandboxIntent.id == p.processor_ref).execute()
    pay_in_window(session, make.location)
    shown = session.get(cont.location)
    return customer, Payment.get_by_id(p.id), shown


def test_a_processor_report_of_another_amount_is_held_not_allocated(live):
    before = accounts.summary(_demo()[0].id).balance_cents
    customer, p, shown = _held_case(live, {"amount_cents": 6498})
    assert p.status == payments.HELD and p.failure_code == "amount_mismatch"
    assert "We are checking this payment" in shown.text
    assert accounts.summary(customer.id).balance_cents == before  # nothing allocated
    entry = AuditLog.get((AuditLog.action == "payment.held") & (AuditLog.entity_id == p.ref))
    assert json.loads(entry.detail)["reported_amount_cents"] == 6498
    # Held money counts as pending: the same invoice cannot be paid again meanwhile.
    assert accounts.invoice_view(customer.id, p.target_invoice_id).pending_cents == 6499


def test_a_processor_report_in_another_currency_is_held_not_allocated(live):
    before = accounts.summary(_demo()[0].id).balance_cents
    customer, p, shown = _held_case(live, {"currency": "EUR"})
    assert p.status == payments.HELD and "currency EUR" in p.failure_message
    assert accounts.summary(customer.id).balance_cents == before
    staff_view = Payment.select().where(Payment.status == payments.HELD).count()
    assert staff_view == 1


def test_kill_9_between_charge_and_record_leaves_no_way_to_pay_that_invoice_twice(live):
    customer, overdue = _demo()
    card = _saved_card(customer.id)
    with write_tx():  # autopay is on too: it must not charge the invoice either
        AutopayEnrolment.create(customer=customer.id, payment_method=card.id, enabled=True,
                                enrolled_at=dt.datetime(2026, 1, 1))
    session = Session(live.url).login()
    before = _mark()
    cont, make, pay = pay_steps(session, overdue.id, 6499)
    assert pay.status == 303  # the processor charged
    live.kill9()  # before anything recorded the charge
    p = Payment.get(Payment.ref == cont.location.rsplit("/", 1)[1])
    assert p.status == payments.AWAITING_DETAILS and p.charging_at is not None
    assert SandboxIntent.get_by_id(p.processor_ref).status == "succeeded"
    again = Gunicorn(live.database_url)
    try:
        s2 = Session(again.url).login()
        second, _ = start(s2, 6499, overdue.id)
        assert second.status == 422 and "already being paid" in second.text
        run = autopay.run(live.app.extensions["processor"], on=overdue.due_date, echo=lambda *_: None)
        assert run.charged == 0 and run.skip_reasons.get("payment pending") == 1, run.skip_reasons
        assert _charged(customer.id, before) == (6499, 1)
        assert Payment.select().where((Payment.id > before) & (Payment.target_invoice == overdue.id)).count() == 1
        # The customer opens the payment: it is recorded at once, without waiting for cron.
        shown = s2.get(cont.location)
        assert "Payment was successful" in shown.text
        assert Payment.get_by_id(p.id).status == payments.SUCCEEDED
        assert accounts.invoice_view(customer.id, overdue.id).balance_cents == 0
        ledger_holds(customer.id)
    finally:
        again.stop()


def test_cron_reconcile_at_any_time_never_charges_and_cancels_expired_windows(live):
    customer, overdue = _demo()
    session = Session(live.url).login()
    before = _mark()
    a, csrf = start(session, 5000)
    session.post(a.location + "/billing", BILLING, csrf)
    p = Payment.get(Payment.ref == a.location.rsplit("/", 1)[1])
    proc = live.app.extensions["processor"]
    assert payments.reconcile(proc) == []  # too recent: left alone
    later = p.updated_at + payments.RESERVATION_TTL + dt.timedelta(minutes=1)
    report = payments.reconcile(proc, now=later)
    assert report == [(p.ref, payments.AWAITING_DETAILS, payments.CANCELED)]
    assert SandboxIntent.get_by_id(p.processor_ref).status == "canceled"
    assert payments.reconcile(proc, now=later) == []
    assert _charged(customer.id, before) == (0, 0)
    assert Payment.get_by_id(p.id).failure_code == "expired"
