"""`remove-demo`: the demo's customers and everything of theirs go, in one transaction; real customers stay."""
from billing import accounts, demo
from db.models import AuditLog, Customer, Invoice, Outbox, Payment, User
from tests.factories import make_customer, make_invoice
from tests.test_pay_flow import GOOD_CARD, make_payment, pay_at_processor


def test_remove_demo_deletes_the_demo_and_nothing_else(app, runner, portal):
    # The order an ISP meets: `make run` loads the demo, then the ISP's own customers are imported beside it.
    assert runner.invoke(args=["demo"]).exit_code == 0
    real = make_customer(name="Real Customer")
    inv = make_invoice(real, cents=4500)
    portal.login(real.email)
    ref, entry = make_payment(portal, "45.00")
    pay_at_processor(portal, entry, GOOD_CARD)
    assert "Payment was successful" in portal.get(f"/payments/{ref}").get_data(as_text=True)
    assert accounts.summary(real.id).balance_cents == 0
    assert demo.logins_present()
    real_payments = [p.ref for p in Payment.select().where(Payment.customer == real.id)]
    assert real_payments and Payment.select().where(Payment.customer != real.id).count() > 0
    real_audit = AuditLog.select().where(AuditLog.entity_id == ref).count()

    result = runner.invoke(args=["remove-demo", "--yes"])
    assert result.exit_code == 0, result.output
    assert "removed:" in result.output and "payment" in result.output
    assert not demo.logins_present()
    assert User.select().where(User.email.in_((demo.DEMO_EMAIL, demo.OTHER_EMAIL))).count() == 0
    assert [c.id for c in Customer.select()] == [real.id]
    assert [p.ref for p in Payment.select()] == real_payments
    assert [i.id for i in Invoice.select()] == [inv.id]
    assert accounts.summary(real.id).balance_cents == 0
    assert AuditLog.select().where(AuditLog.entity_id == ref).count() == real_audit
    assert Outbox.select().where(Outbox.to_addr.in_((demo.DEMO_EMAIL, demo.OTHER_EMAIL))).count() == 0
    # The real customer still logs in; the demo's login does not.
    assert portal.login(demo.DEMO_EMAIL, demo.DEMO_PASSWORD).status_code != 302
    again = runner.invoke(args=["remove-demo", "--yes"])
    assert again.exit_code == 0 and "no demo data" in again.output


def test_remove_demo_also_removes_demo_refunds_and_disputes(app, runner):
    assert runner.invoke(args=["demo"]).exit_code == 0
    paid = list(Payment.select().join(User, on=(User.customer == Payment.customer))
                .where((User.email == demo.DEMO_EMAIL) & (Payment.status == "succeeded")).order_by(Payment.id))
    assert len(paid) >= 2
    assert runner.invoke(args=["refund", paid[0].ref, "1.00"]).exit_code == 0
    disputed = runner.invoke(args=["sandbox-dispute", paid[1].ref])
    assert disputed.exit_code == 0, disputed.output
    result = runner.invoke(args=["remove-demo", "--yes"])
    assert result.exit_code == 0, result.output
    assert not demo.logins_present() and Payment.select().count() == 0


def test_remove_demo_asks_first(app, runner):
    assert runner.invoke(args=["demo"]).exit_code == 0
    refused = runner.invoke(args=["remove-demo"], input="n\n")
    assert refused.exit_code != 0 and demo.logins_present()
