"""A customer on the staff pages: details edited, everything on one page, and the portal login disabled."""
from db.models import AuditLog, Customer, LoginSession, User
from tests.factories import PASSWORD, Portal, make_customer, make_invoice
from tests.staff_support import clerk  # noqa: F401

GOOD = {"name": "Ana Reyes-Ortiz", "email": "Ana.New@Example.test", "phone": "512-555-0199", "street": "14 Ranch Rd",
        "city": "Dripping Springs", "state": "tx", "zip": "78620"}


def test_a_clerk_edits_a_customers_details_and_the_change_is_audited(app, clerk):
    c = make_customer(name="Ana Reyes")
    form = clerk.get(f"/staff/customers/{c.id}/edit").get_data(as_text=True)
    assert 'value="Ana Reyes"' in form
    resp = clerk.post(f"/staff/customers/{c.id}/edit", GOOD)
    assert resp.status_code == 303
    c2 = Customer.get_by_id(c.id)
    assert (c2.name, c2.email, c2.state, c2.account_number) == ("Ana Reyes-Ortiz", "ana.new@example.test", "TX",
                                                                 c.account_number)
    assert "Details saved." in clerk.get(resp.headers["Location"]).get_data(as_text=True)
    entry = AuditLog.get(AuditLog.action == "customer.updated")
    assert entry.entity_id == str(c.id) and '"old_name": "Ana Reyes"' in entry.detail
    assert clerk.post(f"/staff/customers/{c.id}/edit", GOOD).status_code == 303
    assert AuditLog.select().where(AuditLog.action == "customer.updated").count() == 1  # nothing changed


def test_bad_details_are_shown_by_field_and_nothing_is_saved(app, clerk):
    c = make_customer(name="Kept Name")
    resp = clerk.post(f"/staff/customers/{c.id}/edit", {**GOOD, "name": "", "email": "nope", "zip": "7862",
                                                        "city": "x" * 300, "street": "two\nlines"})
    assert resp.status_code == 422
    page = resp.get_data(as_text=True)
    for field in ("name", "email", "zip", "city", "street"):
        assert f'id="{field}-error"' in page, field
    assert Customer.get_by_id(c.id).name == "Kept Name"


def test_the_customer_page_shows_login_methods_autopay_and_emails(app, clerk):
    c = make_customer(email="shown@example.test")
    make_invoice(c, cents=1000, number="SHOWN-1")
    me = Portal(app.test_client())
    me.login("shown@example.test", PASSWORD)
    clerk.post(f"/staff/customers/{c.id}/invite", {})  # has a login already: refused, nothing queued
    from billing import mail

    mail.enqueue("shown@example.test", "Payment received", "Thanks", kind="payment_receipt")
    page = clerk.get(f"/staff/customers/{c.id}").get_data(as_text=True)
    assert "shown@example.test: active, 1 open session(s)" in page
    assert "Recent logins:" in page
    assert "No saved methods." in page and "Autopay: off." in page
    emails = page.split('id="emails"')[1].split("</table>")[0]
    assert "Payment received" in emails and "queued" in emails


def test_disabling_a_portal_login_logs_the_customer_out_and_keeps_them_out(app, clerk):
    c = make_customer(email="out@example.test")
    me = Portal(app.test_client())
    assert me.login("out@example.test", PASSWORD).status_code == 302
    assert me.get("/").status_code == 200
    assert clerk.post(f"/staff/customers/{c.id}/login/disable", {}).status_code == 303
    user = User.get(User.customer == c.id)
    assert user.disabled_at is not None and LoginSession.select().where(LoginSession.user == user.id).count() == 0
    gone = me.get("/")
    assert gone.status_code == 302 and "/login" in gone.headers["Location"]
    assert me.login("out@example.test", PASSWORD).status_code == 401
    assert "disabled" in clerk.get(f"/staff/customers/{c.id}").get_data(as_text=True)
    assert AuditLog.select().where(AuditLog.action == "user.disabled").count() == 1
    assert clerk.post(f"/staff/customers/{c.id}/login/enable", {}).status_code == 303
    assert me.login("out@example.test", PASSWORD).status_code == 302


def test_a_customer_without_a_login_has_nothing_to_disable(app, clerk):
    from db import write_tx

    with write_tx():
        c = Customer.create(account_number="NOLOGIN-1", name="No Login")
    assert clerk.post(f"/staff/customers/{c.id}/login/disable", {}).status_code == 404
    assert "No portal login yet." in clerk.get(f"/staff/customers/{c.id}").get_data(as_text=True)


def test_pressing_invite_again_and_again_is_refused_next_to_the_button_after_three(app, clerk):
    from billing import invites
    from db import write_tx
    from db.models import Outbox

    with write_tx():
        c = Customer.create(account_number="INV-CAP", name="Ivy Cap", email="ivy@example.test", zip="78701")
    for _ in range(invites.HOURLY_EMAILS):
        assert clerk.post(f"/staff/customers/{c.id}/invite", {}).status_code == 303
    resp = clerk.post(f"/staff/customers/{c.id}/invite", {})
    assert resp.status_code == 422 and "invites in the last hour" in resp.get_data(as_text=True)
    assert Outbox.select().where(Outbox.kind == "invite").count() == invites.HOURLY_EMAILS
