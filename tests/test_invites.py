"""Invites, self sign-up and password reset: single-use, expiring, hashed, and no enumeration."""
import datetime as dt
import re
import statistics
import time

import pytest

from db.models import Throttle

from billing import identity, invites
from db.models import AccountToken, AuditLog, Customer, LoginSession, Outbox, User, utcnow
from db import write_tx
from tests.factories import PASSWORD, make_customer
from tests.staff_support import last_link, staff  # noqa: F401

NEW_PASSWORD = "a brand new password"


def new_customer(**fields):
    """A customer with no login yet."""
    defaults = dict(account_number="70001", name="Dana Field", email="dana@example.test", zip="78620")
    defaults.update(fields)
    with write_tx():
        return Customer.create(**defaults)


def link(token):
    return f"http://portal.test/invite/{token}"


def test_invite_token_is_stored_hashed_and_works_once(ledger_db):
    c = new_customer()
    token = invites.invite(c.id, link, actor="staff:1")
    row = AccountToken.get(AccountToken.customer == c.id)
    assert token not in row.token_hash and len(row.token_hash) == 64
    mail = Outbox.get(Outbox.kind == "invite")
    assert mail.to_addr == "dana@example.test" and link(token) in mail.text_body
    user = invites.accept(token, NEW_PASSWORD, NEW_PASSWORD)
    assert user.customer_id == c.id and user.email == "dana@example.test"
    assert identity.authenticate("dana@example.test", NEW_PASSWORD).id == user.id
    with pytest.raises(invites.TokenError, match="already been used"):
        invites.accept(token, "another password 1", "another password 1")
    with pytest.raises(ValueError, match="already has a login"):
        invites.invite(c.id, link)


def test_invite_expires(ledger_db):
    c = new_customer()
    token = invites.invite(c.id, link)
    later = utcnow() + invites.LIFETIME[invites.INVITE] + dt.timedelta(seconds=1)
    with pytest.raises(invites.TokenError, match="expired"):
        invites.accept(token, NEW_PASSWORD, NEW_PASSWORD, now=later)
    assert User.select().count() == 0


def test_password_rules_and_unknown_tokens(ledger_db):
    c = new_customer()
    token = invites.invite(c.id, link)
    with pytest.raises(invites.PasswordError) as e:
        invites.accept(token, "short", "short")
    assert "password" in e.value.errors
    with pytest.raises(invites.PasswordError) as e:
        invites.accept(token, NEW_PASSWORD, NEW_PASSWORD + "x")
    assert "confirm" in e.value.errors
    with pytest.raises(invites.TokenError, match="not valid"):
        invites.accept("nonsense", NEW_PASSWORD, NEW_PASSWORD)
    assert AccountToken.get(AccountToken.customer == c.id).used_at is None


def test_invite_all_invites_only_customers_not_yet_invited(ledger_db):
    a = new_customer(account_number="1", email="a@example.test")
    new_customer(account_number="2", email="")                     # no email: cannot be invited
    make_customer(account_number="3")                                 # already has a login
    invites.invite(a.id, link)
    b = new_customer(account_number="4", email="b@example.test")
    assert invites.invite_all(link) == 1
    assert [r.customer_id for r in AccountToken.select().order_by(AccountToken.id)] == [a.id, b.id]
    assert invites.invite_all(link) == 0
    mail = Outbox.select().where(Outbox.to_addr == "b@example.test").get()
    assert mail.kind == "invite" and mail.sent_at is None and "<p>" in mail.html_body
    token = mail.text_body.split("/invite/")[1].split()[0]
    assert invites.accept(token, NEW_PASSWORD, NEW_PASSWORD).customer_id == b.id


def test_invite_text_comes_from_the_settings(ledger_db):
    from db.models import Isp
    Isp.update(invite_subject="Welcome to {isp}", invite_text="Hi {name}, account {account_number}.").execute()
    c = new_customer()
    token = invites.invite(c.id, link)
    mail = Outbox.get(Outbox.kind == "invite")
    assert mail.subject == "Welcome to Test ISP"
    assert mail.text_body.startswith("Hi Dana Field, account 70001.") and link(token) in mail.text_body


def test_signup_needs_account_number_and_zip_and_sends_a_verification_email(ledger_db):
    c = new_customer()
    assert invites.request_signup("70001", "99999", "dana@example.test", link) is None
    assert invites.request_signup("nope", "78620", "dana@example.test", link) is None
    token = invites.request_signup("70001", "78620", "Dana.Personal@example.test", link)
    assert token
    mail = Outbox.get(Outbox.kind == "signup")
    assert mail.to_addr == "dana.personal@example.test" and link(token) in mail.text_body
    user = invites.accept(token, NEW_PASSWORD, NEW_PASSWORD)
    assert user.customer_id == c.id and user.email == "dana.personal@example.test"
    assert invites.request_signup("70001", "78620", "someone@example.test", link) is None  # already has a login


def test_reset_changes_the_password_once_and_ends_every_session(ledger_db):
    c = make_customer(email="erin@example.test")
    user = User.by_email("erin@example.test")
    identity.open_session(user)
    assert invites.request_reset("nobody@example.test", link) is None
    token = invites.request_reset("ERIN@example.test", link)
    assert Outbox.get(Outbox.kind == "reset").to_addr == "erin@example.test"
    assert invites.accept(token, NEW_PASSWORD, NEW_PASSWORD).customer_id == c.id
    assert identity.authenticate("erin@example.test", PASSWORD) is None
    assert identity.authenticate("erin@example.test", NEW_PASSWORD) is not None
    assert LoginSession.select().where(LoginSession.user == user.id).count() == 0
    with pytest.raises(invites.TokenError):
        invites.accept(token, "yet another password", "yet another password")
    later = utcnow() + invites.LIFETIME[invites.RESET] + dt.timedelta(seconds=1)
    token2 = invites.request_reset("erin@example.test", link)
    with pytest.raises(invites.TokenError, match="expired"):
        invites.accept(token2, "yet another password", "yet another password", now=later)


# --- Through HTTP: same answer either way, and similar timing. -----------------


_CSRF = re.compile(r'"(?:X-CSRFToken": ")?[A-Za-z0-9._-]{40,}"')  # the signed CSRF token changes every second


def _timed_post(portal, url, data, n=9):
    times, bodies = [], set()
    for _ in range(n):
        Throttle.delete().execute()  # the same address asks 18 times: timing, not throttling, is tested here
        t = time.perf_counter()
        resp = portal.post(url, dict(data))
        times.append(time.perf_counter() - t)
        bodies.add((resp.status_code, _CSRF.sub("", resp.get_data(as_text=True))))
    return statistics.median(times), bodies


def _assert_similar(a, b):
    # Both paths do one write transaction; allow generous noise but catch an order-of-magnitude gap.
    assert max(a, b) < 3 * min(a, b) + 0.02, (a, b)


def test_reset_page_answers_the_same_for_known_and_unknown_emails(app, portal):
    make_customer(email="known@example.test")
    known_t, known = _timed_post(portal, "/reset", {"email": "known@example.test"})
    unknown_t, unknown = _timed_post(portal, "/reset", {"email": "unknown@example.test"})
    assert len(known) == 1 and known == unknown
    _assert_similar(known_t, unknown_t)
    assert Outbox.select().where(Outbox.kind == "reset").count() == invites.HOURLY_EMAILS  # then throttled
    assert AuditLog.select().where(AuditLog.action == "reset.requested").count() == 18


def test_signup_page_answers_the_same_whether_or_not_the_account_matches(app, portal):
    new_customer()
    ok_t, ok = _timed_post(portal, "/signup", {"account_number": "70001", "zip": "78620",
                                               "email": "dana@example.test"}, n=1)
    bad_t, bad = _timed_post(portal, "/signup", {"account_number": "70001", "zip": "11111",
                                                 "email": "dana@example.test"}, n=1)
    none_t, none = _timed_post(portal, "/signup", {"account_number": "00000", "zip": "78620",
                                                   "email": "x@example.test"}, n=1)
    assert ok == bad == none
    assert Outbox.select().where(Outbox.kind == "signup").count() == 1
    missing = portal.post("/signup", {"account_number": "", "zip": "", "email": "no"})
    assert missing.status_code == 422
    page = missing.get_data(as_text=True)
    for field in ("account_number", "zip", "email"):
        assert f'id="{field}-error"' in page


def test_signup_timing_is_similar_for_matching_and_unknown_accounts(app, portal):
    for n in range(9):
        new_customer(account_number=f"8{n}", email=f"t{n}@example.test")
    times_ok, times_bad = [], []
    for n in range(9):
        t = time.perf_counter()
        portal.post("/signup", {"account_number": f"8{n}", "zip": "78620", "email": f"s{n}@example.test"})
        times_ok.append(time.perf_counter() - t)
        t = time.perf_counter()
        portal.post("/signup", {"account_number": f"9{n}", "zip": "78620", "email": f"u{n}@example.test"})
        times_bad.append(time.perf_counter() - t)
    _assert_similar(statistics.median(times_ok), statistics.median(times_bad))


def test_staff_invite_then_customer_sets_password_and_is_logged_in(app, staff, client):
    c = new_customer()
    resp = staff.post(f"/staff/customers/{c.id}/invite", {})
    assert resp.status_code == 303
    assert "Invite queued for dana@example.test" in staff.get(resp.headers["Location"]).get_data(as_text=True)
    path = last_link("invite")
    staff.post("/logout", {})
    page = client.get(path)
    assert page.status_code == 200 and "dana@example.test" in page.get_data(as_text=True)
    bad = staff.post(path, {"password": "short", "confirm": "short"})
    assert bad.status_code == 422 and 'id="password-error"' in bad.get_data(as_text=True)
    done = staff.post(path, {"password": NEW_PASSWORD, "confirm": NEW_PASSWORD})
    assert done.status_code == 303 and done.headers["Location"].endswith("/")
    assert client.get("/").status_code == 200
    again = client.get(path)
    assert again.status_code == 410 and "already been used" in again.get_data(as_text=True)



def test_reset_link_over_http_sets_a_new_password_and_logs_in(app, portal):
    make_customer(email="fran@example.test")
    portal.post("/reset", {"email": "fran@example.test"})
    path = last_link("reset")
    assert path.startswith("/reset/")
    done = portal.post(path, {"password": NEW_PASSWORD, "confirm": NEW_PASSWORD})
    assert done.status_code == 303
    assert portal.get("/").status_code == 200
    assert portal.get(path).status_code == 410
    assert portal.get("/invite/" + path.rsplit("/", 1)[1]).status_code == 410  # a reset link is not an invite


def test_staff_customer_page_lists_invites(app, staff):
    c = new_customer()
    staff.post(f"/staff/customers/{c.id}/invite", {})
    page = staff.get(f"/staff/customers/{c.id}").get_data(as_text=True)
    assert "invite" in page and "dana@example.test" in page
    resp = staff.post("/staff/invites", {})
    assert resp.status_code == 303


def test_login_page_links_to_reset_and_sign_up(app, client):
    page = client.get("/login").get_data(as_text=True)
    assert 'href="/reset"' in page and 'href="/signup"' in page


def test_reset_and_signup_emails_are_throttled_per_account(ledger_db):
    c = new_customer()
    sent = [invites.request_signup("70001", "78620", f"d{n}@example.test", link) for n in range(5)]
    assert sum(1 for t in sent if t) == invites.HOURLY_EMAILS
    make_customer(email="gail@example.test")
    sent = [invites.request_reset("gail@example.test", link) for _ in range(5)]
    assert sum(1 for t in sent if t) == invites.HOURLY_EMAILS
    assert c


def test_staff_invites_to_one_customer_are_capped_an_hour(ledger_db):
    c = new_customer()
    for _ in range(invites.HOURLY_EMAILS):
        invites.invite(c.id, link, actor="staff:1")
    with pytest.raises(ValueError, match="invites in the last hour"):
        invites.invite(c.id, link, actor="staff:1")
    assert Outbox.select().where(Outbox.kind == "invite").count() == invites.HOURLY_EMAILS
    # An hour later another may go.
    with write_tx():
        AccountToken.update(created_at=utcnow() - dt.timedelta(hours=1, seconds=1)).execute()
    invites.invite(c.id, link, actor="staff:1")
