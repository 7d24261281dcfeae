"""Logging in and out: new sessions, no replay after logout, CSRF, no enumeration."""
import re

from tests.factories import PASSWORD


def test_login_with_the_right_password_lands_on_home(portal, customer):
    resp = portal.login(customer.email)
    assert resp.status_code == 302 and resp.location == "/"
    assert customer.name in portal.get("/").get_data(as_text=True)


def test_login_email_is_case_insensitive(portal, customer):
    assert portal.login(customer.email.upper()).status_code == 302


def test_wrong_password_and_unknown_email_get_the_same_answer(portal, customer):
    wrong = portal.login(customer.email, "nope")
    unknown = portal.login("nobody@example.test", "nope")
    assert wrong.status_code == unknown.status_code == 401
    msg = "That email and password do not match an account."
    assert msg in wrong.get_data(as_text=True) and msg in unknown.get_data(as_text=True)


def test_pages_need_a_login(client):
    for url in ("/", "/invoices", "/payments", "/statement"):
        resp = client.get(url)
        assert resp.status_code == 302 and resp.location.startswith("/login")


def test_each_login_gets_a_new_session_cookie(app, customer):
    client = app.test_client()
    client.get("/login")
    before = client.get_cookie("session")
    from tests.factories import Portal

    Portal(client).login(customer.email)
    after = client.get_cookie("session")
    assert before is None or before.value != after.value


def test_a_cookie_saved_before_logout_cannot_be_replayed(app, portal, customer):
    portal.login(customer.email)
    stolen = portal.client.get_cookie("session").value
    assert portal.post("/logout").status_code == 302
    attacker = app.test_client()
    attacker.set_cookie("session", stolen)
    resp = attacker.get("/")
    assert resp.status_code == 302 and resp.location.startswith("/login")


def test_logout_needs_post_with_csrf(portal, customer):
    portal.login(customer.email)
    assert portal.get("/logout").status_code == 405
    assert portal.post("/logout", csrf=False).status_code == 400
    assert portal.get("/").status_code == 200  # still logged in


def test_login_form_is_csrf_protected(portal, customer):
    resp = portal.post("/login", {"email": customer.email, "password": PASSWORD}, csrf=False)
    assert resp.status_code == 400


def test_login_redirects_only_to_local_paths(portal, customer):
    resp = portal.post("/login?next=https://evil.example/", {"email": customer.email, "password": PASSWORD})
    assert resp.location == "/"
    portal.post("/logout")
    resp = portal.post("/login?next=/invoices", {"email": customer.email, "password": PASSWORD})
    assert resp.location == "/invoices"


def test_password_is_stored_as_argon2id(customer):
    from db.models import User

    assert re.match(r"^\$argon2id\$", User.get(User.customer == customer.id).password_hash)
