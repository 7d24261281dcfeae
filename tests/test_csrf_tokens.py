"""The CSRF token a page carries: signed once and reused by the session's pages for a minute, and still
checked and expired exactly as Flask-WTF's own."""
import re
import time

import pytest

from views import CSRF_REUSE_SECONDS

_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture
def clock(monkeypatch):
    """time.time() that the test moves forward by hand (itsdangerous stamps tokens with it)."""
    now = [time.time()]
    monkeypatch.setattr(time, "time", lambda: now[0])
    return now


def _token(portal, url="/"):
    return _TOKEN.search(portal.get(url).get_data(as_text=True)).group(1)


def test_pages_within_a_minute_carry_the_same_token_and_it_posts(logged_in, clock):
    first = _token(logged_in)
    clock[0] += 30  # a fresh signature would carry a new timestamp
    assert _token(logged_in, "/invoices") == first
    resp = logged_in.post("/language", {"lang": "es", "next": "/", "csrf_token": first}, csrf=False)
    assert resp.status_code == 303


def test_after_the_reuse_window_a_page_gets_a_newly_signed_token(logged_in, clock):
    first = _token(logged_in)
    clock[0] += CSRF_REUSE_SECONDS + 1
    second = _token(logged_in)
    assert second != first
    for token in (first, second):  # both still valid: the first is a minute old of its 12 hours
        resp = logged_in.post("/language", {"lang": "en", "next": "/", "csrf_token": token}, csrf=False)
        assert resp.status_code == 303


def test_a_reused_token_still_expires_after_the_time_limit(app, logged_in, clock):
    first = _token(logged_in)
    clock[0] += app.config["WTF_CSRF_TIME_LIMIT"] + 1
    resp = logged_in.post("/language", {"lang": "es", "next": "/", "csrf_token": first}, csrf=False)
    assert resp.status_code == 400
    assert _token(logged_in) != first  # and the page now carries a fresh one


def test_another_session_never_gets_this_sessions_token(app, logged_in, clock):
    from tests.factories import Portal

    mine = _token(logged_in)
    other = Portal(app.test_client())
    theirs = _TOKEN.search(other.get("/login").get_data(as_text=True)).group(1)
    assert theirs != mine
    resp = other.post("/language", {"lang": "es", "next": "/", "csrf_token": mine}, csrf=False)
    assert resp.status_code == 400


def test_the_session_cookie_is_not_signed_again_when_nothing_in_it_changed(app, logged_in):
    logged_in.get("/")  # the first page after logging in adds the new session's CSRF secret
    assert "Set-Cookie" not in logged_in.get("/").headers
    assert "Set-Cookie" not in logged_in.get("/invoices", htmx=True).headers
    visitor = app.test_client()
    assert "session=" in visitor.get("/login").headers.get("Set-Cookie", "")  # a first visit gets its CSRF secret
    assert "Set-Cookie" not in visitor.get("/login").headers  # a returning visitor's cookie is left as it is


def test_a_logged_in_session_cookie_used_from_another_browser_is_still_logged_out(app, logged_in):
    assert logged_in.get("/").status_code == 200
    stolen = logged_in.client.get_cookie("session").value
    thief = app.test_client()
    thief.set_cookie("session", stolen)
    resp = thief.get("/", headers={"User-Agent": "another-browser"})
    assert resp.status_code == 302 and resp.headers["Location"].startswith("/login")
    assert logged_in.get("/").status_code == 200  # the owner's browser is still logged in
