"""Staff logins managed by an owner: add, list, change role, disable (which logs out at once), enable."""
import pytest

from billing import identity
from billing import staff as staff_rules
from db.models import AuditLog, LoginSession, User
from tests.factories import Portal
from tests.staff_support import CLERK_EMAIL, STAFF_EMAIL, STAFF_PASSWORD, log_in_staff, make_staff, staff  # noqa: F401

NEW = {"name": "Rosa Counter", "email": "Rosa@ISP.example.test", "role": "clerk",
       "password": "a long clerk password", "confirm": "a long clerk password"}


def test_an_owner_adds_a_clerk_who_can_log_in_with_the_clerk_role(app, staff):
    resp = staff.post("/staff/staff", NEW)
    assert resp.status_code == 303
    page = staff.get(resp.headers["Location"]).get_data(as_text=True)
    assert "Staff login created for rosa@isp.example.test" in page
    row = page.split('id="staff-list"')[1].split("</table>")[0]
    assert "Rosa Counter" in row and "Clerk" in row
    user = identity.authenticate("rosa@isp.example.test", NEW["password"])
    assert (user.role, user.staff_role, user.name) == ("staff", "clerk", "Rosa Counter")
    entry = AuditLog.get(AuditLog.action == "user.created", AuditLog.entity_id == str(user.id))
    assert entry.actor.startswith("staff:") and '"staff_role": "clerk"' in entry.detail
    assert "password" not in entry.detail


def test_a_double_submitted_add_makes_one_login(app, staff):
    assert staff.post("/staff/staff", NEW).status_code == 303
    again = staff.post("/staff/staff", NEW)
    assert again.status_code == 422 and "already has a login" in again.get_data(as_text=True)
    assert User.select().where(User.email == "rosa@isp.example.test").count() == 1


def test_bad_staff_fields_are_shown_by_field_and_nothing_is_written(app, staff):
    before = User.select().count()
    resp = staff.post("/staff/staff", {"name": "", "email": "nope", "role": "admin", "password": "short",
                                       "confirm": "short"})
    assert resp.status_code == 422
    page = resp.get_data(as_text=True)
    for field in ("name", "email", "role", "password"):
        assert f'id="{field}-error"' in page, field
    mismatch = staff.post("/staff/staff", {**NEW, "confirm": "another long password"})
    assert 'id="confirm-error"' in mismatch.get_data(as_text=True)
    assert User.select().count() == before


def test_disabling_a_clerk_ends_their_open_session_and_their_login(app, staff):
    clerk_user = make_staff(CLERK_EMAIL, staff_role="clerk", name="Cary Clerk")
    other = Portal(app.test_client())
    log_in_staff(other, CLERK_EMAIL)
    assert other.get("/staff/customers").status_code == 200
    assert staff.post(f"/staff/staff/{clerk_user.id}/disable", {}).status_code == 303
    assert LoginSession.select().where(LoginSession.user == clerk_user.id).count() == 0
    gone = other.get("/staff/customers")
    assert gone.status_code == 302 and "/login" in gone.headers["Location"]
    refused = other.login(CLERK_EMAIL, STAFF_PASSWORD)
    assert refused.status_code == 401
    assert "Disabled" in staff.get("/staff/staff").get_data(as_text=True)
    assert AuditLog.select().where(AuditLog.action == "user.disabled").count() == 1
    assert staff.post(f"/staff/staff/{clerk_user.id}/enable", {}).status_code == 303
    assert other.login(CLERK_EMAIL, STAFF_PASSWORD).status_code == 302


def test_an_owner_cannot_disable_or_demote_themselves_or_the_last_owner(app, staff):
    me = User.by_email(STAFF_EMAIL)
    resp = staff.post(f"/staff/staff/{me.id}/disable", {})
    assert resp.status_code == 422 and "your own login" in resp.get_data(as_text=True)
    assert staff.post(f"/staff/staff/{me.id}/role", {"role": "clerk"}).status_code == 422
    assert User.get_by_id(me.id).disabled_at is None and User.get_by_id(me.id).staff_role == "owner"
    second = make_staff("second@isp.example.test", name="Second Owner")
    assert staff.post(f"/staff/staff/{second.id}/role", {"role": "clerk"}).status_code == 303
    with pytest.raises(ValueError, match="last owner"):
        staff_rules.set_disabled(me.id, True, "test", by_user_id=second.id)
    with pytest.raises(ValueError, match="last owner"):
        staff_rules.set_role(me.id, "clerk", "test", by_user_id=second.id)
    assert User.get_by_id(me.id).disabled_at is None


def test_making_a_clerk_an_owner_takes_effect_at_once(app, staff):
    clerk_user = make_staff(CLERK_EMAIL, staff_role="clerk", name="Cary Clerk")
    other = Portal(app.test_client())
    log_in_staff(other, CLERK_EMAIL)
    assert other.get("/staff/settings").status_code == 403
    assert staff.post(f"/staff/staff/{clerk_user.id}/role", {"role": "owner"}).status_code == 303
    log_in_staff(other, CLERK_EMAIL)  # a role change logs the login out; it logs in again
    assert other.get("/staff/settings").status_code == 200


def test_customers_cannot_be_managed_as_staff_logins(app, staff):
    from tests.factories import make_customer

    c = make_customer()
    user = User.get(User.customer == c.id)
    assert staff.post(f"/staff/staff/{user.id}/disable", {}).status_code == 404
    assert User.get_by_id(user.id).disabled_at is None


def test_two_owners_demoting_and_disabling_each_other_at_once_leave_an_owner(app, monkeypatch):
    """Each change waits, after its write and before its commit, for the other to get as far: without a lock
    both would pass the "another owner is left" check and commit, and no owner would be left."""
    import threading

    from billing import accounts
    from db import database

    ann = make_staff("ann@isp.example.test", name="Ann Owner")
    bob = make_staff("bob@isp.example.test", name="Bob Owner")
    both_written = threading.Barrier(2)
    real_audit = accounts.audit

    def audit_then_wait(actor, action, *args, **kwargs):
        real_audit(actor, action, *args, **kwargs)
        if action in ("staff.role_changed", "user.disabled"):
            try:
                both_written.wait(timeout=3)  # with the lock the other change is still waiting: go on alone
            except threading.BrokenBarrierError:
                pass

    monkeypatch.setattr(accounts, "audit", audit_then_wait)
    outcomes = {}

    def run(name, change):
        try:
            change()
            outcomes[name] = "done"
        except ValueError as e:
            outcomes[name] = str(e)
        finally:
            database.close()

    threads = [
        threading.Thread(target=run, args=("ann demotes bob", lambda: staff_rules.set_role(
            bob.id, "clerk", f"staff:{ann.id}", by_user_id=ann.id))),
        threading.Thread(target=run, args=("bob disables ann", lambda: staff_rules.set_disabled(
            ann.id, True, f"staff:{bob.id}", by_user_id=bob.id))),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    monkeypatch.undo()
    assert len(outcomes) == 2, outcomes
    assert list(outcomes.values()).count("done") == 1, outcomes  # the other was refused
    owners = User.select().where((User.role == "staff") & (User.staff_role == "owner") & User.disabled_at.is_null())
    assert owners.count() == 1, outcomes
