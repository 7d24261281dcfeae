"""Login sessions end on the server: after the idle timeout, after the absolute lifetime, and their
last-seen time is written at most once a minute (no write on every request)."""
import datetime as dt

from billing import identity
from db import write_tx
from db.models import LoginSession, utcnow


def _age(created=None, seen=None):
    with write_tx():
        q = {}
        if created is not None:
            q["created_at"] = utcnow() - created
        if seen is not None:
            q["last_seen_at"] = utcnow() - seen
        LoginSession.update(**q).execute()


def test_a_session_idle_longer_than_the_timeout_is_logged_out(logged_in):
    assert logged_in.get("/").status_code == 200
    _age(seen=dt.timedelta(minutes=31))
    resp = logged_in.get("/")
    assert resp.status_code == 302 and resp.headers["Location"].startswith("/login")


def test_a_session_two_years_old_no_longer_logs_in_even_if_used_just_now(logged_in):
    _age(created=dt.timedelta(days=730), seen=dt.timedelta(seconds=5))
    assert logged_in.get("/").status_code == 302


def test_a_session_used_within_the_idle_timeout_stays(logged_in):
    _age(seen=dt.timedelta(minutes=29))
    assert logged_in.get("/").status_code == 200
    seen = LoginSession.get().last_seen_at
    assert utcnow() - seen < dt.timedelta(seconds=30)  # touched, so the idle clock restarts


def test_last_seen_is_written_at_most_once_a_minute(logged_in):
    _age(seen=dt.timedelta(seconds=20))
    before = LoginSession.get().last_seen_at
    logged_in.get("/")
    assert LoginSession.get().last_seen_at == before


def test_ending_the_other_sessions_keeps_this_one(app, customer):
    user = customer.users.get()
    mine, other = identity.open_session(user), identity.open_session(user)
    assert identity.end_other_sessions(user.id, keep_token=mine) == 1
    assert identity.session_user(mine) is not None and identity.session_user(other) is None


def test_session_expires_counts_down_from_the_idle_timeout(app, customer):
    token = identity.open_session(customer.users.get())
    assert 29 * 60 < identity.session_expires(token) <= 30 * 60


def test_changing_the_password_asks_the_current_one_and_ends_the_other_sessions(app, logged_in, customer):
    from tests.factories import PASSWORD, Portal

    elsewhere = Portal(app.test_client())
    assert elsewhere.login(customer.email).status_code == 302
    wrong = logged_in.post("/profile/password", {"current": "nope", "password": "a fresh long passphrase",
                                                 "confirm": "a fresh long passphrase"})
    assert wrong.status_code == 422 and "not your current password" in wrong.get_data(as_text=True)
    common = logged_in.post("/profile/password", {"current": PASSWORD, "password": "password12",
                                                  "confirm": "password12"})
    assert common.status_code == 422 and "too common" in common.get_data(as_text=True)
    ok = logged_in.post("/profile/password", {"current": PASSWORD, "password": "a fresh long passphrase",
                                              "confirm": "a fresh long passphrase"})
    assert ok.status_code == 200 and "was changed" in ok.get_data(as_text=True)
    assert logged_in.get("/").status_code == 200  # this session stays
    assert elsewhere.get("/").status_code == 302  # the other one ended
    assert Portal(app.test_client()).login(customer.email, "a fresh long passphrase").status_code == 302
