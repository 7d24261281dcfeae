"""Demo data: the ISP "Demo Wireless", two customers, and invoices in every state.

Payments in the demo go through the real payment flow and the sandbox
processor, so the demo's ledger obeys the same rules as real money.
"""
import datetime as dt

from billing import accounts, identity, payments
from db import write_tx
from db.models import Allocation, CreditEntry, Customer, Isp, Payment, User

DEMO_EMAIL = "demo@example.com"
DEMO_PASSWORD = "demo-portal-2026"
OTHER_EMAIL = "neighbor@example.com"
PLAN = ("Fixed wireless 50/10 Mbps", 1, 5999)
ROUTER = ("Router rental", 1, 500)


def _month_start(day, back):
    year, month = day.year, day.month - back
    while month < 1:
        month += 12
        year -= 1
    return dt.date(year, month, 1)


def _pay(customer_id, invoice_id, cents, processor, on):
    """Pay through the real flow with the sandbox's good test card, dated ``on`` (in its billing month)."""
    payment = payments.start_payment(
        customer_id, amount_text=f"{cents // 100}.{cents % 100:02d}", method_type="card",
        idempotency_key=payments.new_idempotency_key(), invoice_id=invoice_id, processor_name=processor.name,
        actor="demo",
    )
    c = Customer.get_by_id(customer_id)
    payment = payments.confirm_billing(payment, {
        "name": c.name, "street": c.street, "city": c.city, "state": c.state, "zip": c.zip,
        "email": c.email, "phone": c.phone,
    }, processor, actor="demo")
    state, errors = processor.confirm_card(payment.processor_ref, "4242 4242 4242 4242", "12 / 30", "123", c.zip)
    assert not errors, errors
    payment = payments.apply_intent_state(payment.id, state, actor="demo")
    # A demo is loaded today, but its payments belong to the months they paid: date them there, so the
    # history and the statement read like an account with a past (real payments keep their real times).
    when = dt.datetime.combine(on, dt.time(15, 30))
    with write_tx():
        Payment.update(created_at=when, updated_at=when, settled_at=when).where(Payment.id == payment.id).execute()
        Allocation.update(created_at=when).where(Allocation.payment == payment.id).execute()
        CreditEntry.update(created_at=when).where(CreditEntry.payment == payment.id).execute()
    return Payment.get_by_id(payment.id)


DEMO_ACCOUNTS = ("100-2001", "100-2002")


class RealCustomers(Exception):
    """The database holds customers that are not the demo's: demo logins with a published password must never
    be added beside them."""

    def __init__(self, count):
        super().__init__(f"this database holds {count} real customer(s); the demo is not loaded into it")
        self.count = count


def real_customer_count():
    """Customers other than the demo's two (by their account numbers)."""
    return Customer.select().where(Customer.account_number.not_in(DEMO_ACCOUNTS)).count()


def load(processor, today=None):
    """Create the demo ISP, customers and invoices once; return False if they already exist.

    Raises RealCustomers, writing nothing, when the database holds any customer of the ISP's own: the demo's
    logins have a password printed in the README, and its payments would show in the ISP's lists and exports.
    """
    today = today or accounts.today()
    with write_tx():  # all or nothing, and the check is in the same transaction as the load
        if User.by_email(DEMO_EMAIL) is not None:
            return False
        real = real_customer_count()
        if real:
            raise RealCustomers(real)
        _load(processor, today)
    return True


def _load(processor, today):
    with write_tx():
        if Isp.current() is None:
            Isp.create(name="Demo Wireless", support_phone="(555) 010-2026", support_email="help@example.com",
                       help_url="https://example.com/help", chat_url="https://example.com/chat",
                       max_prepay_cents=50000)
        demo = Customer.create(account_number="100-2001", name="Dana Demo", email=DEMO_EMAIL,
                               phone="512-555-0100", street="12 Ridge Road", city="Austin", state="TX", zip="78701")
        other = Customer.create(account_number="100-2002", name="Nico Neighbor", email=OTHER_EMAIL,
                                phone="512-555-0101", street="14 Ridge Road", city="Austin", state="TX", zip="78701")
    identity.create_user(DEMO_EMAIL, DEMO_PASSWORD, customer_id=demo.id)
    identity.create_user(OTHER_EMAIL, DEMO_PASSWORD, customer_id=other.id)

    def invoice(customer, number, months_back, due, lines):
        start = _month_start(today, months_back)
        end = _month_start(start + dt.timedelta(days=32), 0) - dt.timedelta(days=1)
        return accounts.add_invoice(customer.id, number, start, due, lines, period=(start, end), actor="demo")

    paid = invoice(demo, "INV-1001", 3, today - dt.timedelta(days=70), [PLAN, ROUTER])
    invoice(demo, "INV-1002", 2, today - dt.timedelta(days=40), [PLAN, ROUTER])  # overdue
    partial = invoice(demo, "INV-1003", 1, today + dt.timedelta(days=5), [PLAN, ROUTER, ("Static IP", 1, 1000)])
    invoice(demo, "INV-1004", 0, today + dt.timedelta(days=35), [PLAN, ROUTER])  # due next month
    _pay(demo.id, paid.id, paid.total_cents, processor, on=paid.due_date - dt.timedelta(days=3))
    _pay(demo.id, partial.id, 2500, processor, on=min(partial.issue_date + dt.timedelta(days=8), today))

    theirs = invoice(other, "INV-2001", 1, today - dt.timedelta(days=10), [("Fixed wireless 25/5 Mbps", 1, 4499)])
    _pay(other.id, theirs.id, theirs.total_cents + 1000, processor,  # $10.00 over: account credit
         on=theirs.due_date - dt.timedelta(days=2))



def logins_present():
    """True while any login of the demo ISP exists (production serving refuses to start then)."""
    from db import database
    from db.models import User

    with database.connection_context():
        if not database.table_exists(User._meta.table_name):  # a database not yet built has no demo either
            return False
        return User.select().where(User.email.in_((DEMO_EMAIL, OTHER_EMAIL))).exists()


def remove():
    """Delete the demo's customers and everything of theirs, in one transaction; a dict of what went, by table.

    Their logins and sessions, invoices, payments and every ledger row, saved methods, autopay, the sandbox's
    intents and methods behind their payments, the emails queued to them, and the audit rows about them. Other
    customers' rows are never touched: no ledger row links two customers. The ISP's own settings
    stay: staff rename the ISP on the Settings page.
    """
    from db.models import AuditLog, Outbox, Payment, PaymentMethod, SandboxIntent, SandboxMethod

    from db import database

    tables = [m for m in database.get_tables()]
    before = {t: _count(t) for t in tables}
    removed = {}
    with write_tx():
        users = list(User.select().where(User.email.in_((DEMO_EMAIL, OTHER_EMAIL))))
        ids = {u.customer_id for u in users if u.customer_id}
        customers = list(Customer.select().where(Customer.id.in_(list(ids)))) if ids else []
        if not users and not customers:
            return removed
        payments_q = Payment.select().where(Payment.customer.in_(list(ids))) if ids else []
        refs = [p.ref for p in payments_q]
        intents = [p.processor_ref for p in payments_q if p.processor_ref]
        tokens = [m.processor_ref for m in PaymentMethod.select().where(PaymentMethod.customer.in_(list(ids)))] \
            if ids else []
        emails = [c.email for c in customers if c.email] + [u.email for u in users]
        actors = [f"customer:{u.id}" for u in users]
        # Rows that name the demo by value, not by a foreign key.
        for model, cond in (
            (AuditLog, ((AuditLog.entity == "payment") & AuditLog.entity_id.in_(refs or [""]))
             | ((AuditLog.entity == "customer") & AuditLog.entity_id.in_([str(i) for i in ids] or [""]))
             | AuditLog.actor.in_(actors or [""])),
            (Outbox, Outbox.to_addr.in_(emails or [""])),
        ):
            model.delete().where(cond).execute()
        # The sandbox's own rows behind the demo's payments, with what points at them (refunds, disputes).
        for model, keys in ((SandboxIntent, intents), (SandboxMethod, tokens)):
            for row in model.select().where(model.id.in_(keys or [""])):
                row.delete_instance(recursive=True)
        # A reversing ledger row points at the row it reverses (allocation.reverses): delete newest first, so
        # no row is deleted while another still points at it.
        from db.models import Allocation

        demo_payments = Payment.select(Payment.id).where(Payment.customer.in_(list(ids) or [0]))
        for row in Allocation.select(Allocation.id).where(Allocation.payment.in_(demo_payments)).order_by(
                Allocation.id.desc()):
            Allocation.delete().where(Allocation.id == row.id).execute()
        for customer in customers:
            # peewee follows every foreign key that points at the customer (invoices, payments, ledger rows,
            # methods, autopay, logins and their sessions) and deletes dependents before what they depend on.
            customer.delete_instance(recursive=True)
        for user in users:  # a demo login without a customer row (already half removed by hand)
            if User.get_or_none(User.id == user.id) is not None:
                user.delete_instance(recursive=True)
        removed = {t: before[t] - _count(t) for t in tables if before[t] > _count(t)}
        accounts.audit("staff:cli", "demo.removed", "isp", "demo", removed=removed)
    return removed


def _count(table):
    from db import database

    return database.execute_sql(f'SELECT COUNT(*) FROM "{table}"').fetchone()[0]


def sandbox_processor(config):
    """The built-in sandbox, which pays the demo's history whatever processor the portal uses."""
    from billing.processors import build_processor

    return build_processor({**config, "PAYMENT_PROCESSOR": "sandbox"})
