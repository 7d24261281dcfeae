"""TOTP secrets are sealed at rest (AES-GCM under a key derived from SECRET_KEY): the database never holds
the secret, a wrong key fails cleanly, SECRET_KEY_FALLBACKS rotates, legacy plain secrets are still read and
get sealed, and logging in with a code still works."""
import datetime as dt
import logging

import pyotp
import pytest

from app import create_app
from billing import identity, sealed, twofactor
from db import database, write_tx
from db.models import Isp, TwoFactor, User
from tests.factories import PASSWORD, TEST_CONFIG, Portal, make_customer

T0 = dt.datetime(2026, 12, 1, 12, 0, 10, tzinfo=dt.timezone.utc)


@pytest.fixture
def user(ledger_db):
    yield identity.create_user("ana@example.test", "a long enough password")
    sealed.configure("ledger-test-secret-key")  # as conftest's ledger_db leaves it for the next test


def turned_on(user, when=T0):
    setup = twofactor.begin(user.id)
    assert twofactor.confirm(user.id, pyotp.TOTP(setup.secret).at(when), now=when)
    return setup.secret


def stored(user_id):
    """The row's two secret columns exactly as the database holds them."""
    mark = database.obj.param  # "?" on SQLite, "%s" on PostgreSQL
    return database.execute_sql(f"SELECT secret, sealed_secret FROM two_factor WHERE user_id = {mark}",
                                (user_id,)).fetchone()


def code_after(secret, minutes):
    when = T0 + dt.timedelta(minutes=minutes)
    return pyotp.TOTP(secret).at(when), when


def test_the_database_never_holds_the_secret(user, tmp_path):
    setup = twofactor.begin(user.id)
    plain, box = stored(user.id)
    assert plain == "" and box.startswith("v1:") and setup.secret not in box
    assert twofactor.pending(user.id).secret == setup.secret  # the set-up page still shows it
    twofactor.confirm(user.id, pyotp.TOTP(setup.secret).at(T0), now=T0)
    plain, box = stored(user.id)
    assert plain == "" and setup.secret not in box
    if database.obj.param == "?":  # SQLite: nor anywhere in the database's files
        database.execute_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        raw = b"".join(p.read_bytes() for p in tmp_path.glob("ledger.sqlite3*"))
        assert setup.secret.encode() not in raw
    # The same secret sealed twice differs (a fresh nonce each time).
    assert sealed.seal("p", "x", "c") != sealed.seal("p", "x", "c")


def test_a_wrong_key_fails_cleanly_and_recovery_codes_still_work(user, caplog):
    setup = twofactor.begin(user.id)
    codes = twofactor.confirm(user.id, pyotp.TOTP(setup.secret).at(T0), now=T0)
    sealed.configure("a different secret key")
    code, when = code_after(setup.secret, 5)
    with caplog.at_level(logging.WARNING, logger="billing.twofactor"):
        assert twofactor.verify(user.id, code, now=when) is False  # no exception, no login
    assert "cannot be opened" in caplog.text
    assert twofactor.verify(user.id, codes[0], now=when)  # hashed, so they do not depend on the key
    assert twofactor.reseal_all() == (0, 1)  # left alone, and counted
    with pytest.raises(sealed.SealError):
        sealed.unseal("two_factor.secret", "v1:not-base64!!", "user:1")


def test_a_sealed_value_copied_to_another_login_does_not_open(user):
    secret = turned_on(user)
    other = identity.create_user("bo@example.test", "a long enough password")
    twofactor.begin(other.id)
    with write_tx():
        TwoFactor.update(sealed_secret=stored(user.id)[1]).where(TwoFactor.user == other.id).execute()
    assert twofactor.pending(other.id) is None
    code, when = code_after(secret, 5)
    assert twofactor.verify(user.id, code, now=when)


def test_rotation_opens_with_a_fallback_key_and_reseals_with_the_current_one(user):
    sealed.configure("old key")
    secret = turned_on(user)
    old_box = stored(user.id)[1]
    sealed.configure("new key", ["old key"])
    code, when = code_after(secret, 5)
    assert twofactor.verify(user.id, code, now=when)  # opened with the fallback ...
    assert stored(user.id)[1] != old_box  # ... and sealed again with the new key as it was used
    sealed.configure("new key")  # the fallback can now be retired
    code, when = code_after(secret, 10)
    assert twofactor.verify(user.id, code, now=when)


def test_reseal_all_moves_every_secret_to_the_current_key(user):
    sealed.configure("old key")
    secret = turned_on(user)
    sealed.configure("new key", ["old key"])
    assert twofactor.reseal_all() == (1, 0) and twofactor.reseal_all() == (0, 0)
    sealed.configure("new key")
    code, when = code_after(secret, 5)
    assert twofactor.verify(user.id, code, now=when)


def test_a_legacy_plain_secret_still_works_and_is_sealed_at_its_next_code(user):
    secret = pyotp.random_base32(length=32)
    with write_tx():  # as a row written before migration 0191 is left by it
        TwoFactor.create(user=user.id, secret=secret, enabled_at=T0.replace(tzinfo=None))
    code, when = code_after(secret, 5)
    assert twofactor.verify(user.id, code, now=when)
    plain, box = stored(user.id)
    assert plain == "" and box.startswith("v1:") and secret not in box
    code, when = code_after(secret, 10)
    assert twofactor.verify(user.id, code, now=when)


def test_db_upgrade_seals_legacy_secrets_and_login_with_a_code_still_works(tmp_path):
    url = f"sqlite:///{tmp_path / 'p.sqlite3'}"
    app = create_app({**TEST_CONFIG, "DATABASE_URL": url, "SECRET_KEY": "first key"})
    runner = app.test_cli_runner()
    assert runner.invoke(args=["db-upgrade"]).exit_code == 0
    Isp.create(name="Test ISP", max_prepay_cents=20000)
    customer = make_customer()
    user = User.by_email(customer.email)
    secret = pyotp.random_base32(length=32)
    with write_tx():  # a row as it was before secrets were sealed
        TwoFactor.create(user=user.id, secret=secret, enabled_at=T0.replace(tzinfo=None))
    result = runner.invoke(args=["db-upgrade"])
    assert result.exit_code == 0 and "sealed 1 two-factor secret(s)" in result.output, result.output
    assert secret not in "".join(stored(user.id))

    # The next deploy rotates SECRET_KEY and keeps the old one as a fallback: logins go on working.
    app = create_app({**TEST_CONFIG, "DATABASE_URL": url, "SECRET_KEY": "second key",
                      "SECRET_KEY_FALLBACKS": ["first key"]})
    portal = Portal(app.test_client())
    resp = portal.login(customer.email, PASSWORD)
    assert resp.status_code == 303 and resp.location.endswith("/login/code")
    ok = portal.post("/login/code", {"code": pyotp.TOTP(secret).now()})
    assert ok.status_code == 302 and portal.get("/").status_code == 200
    assert "sealed" in app.test_cli_runner().invoke(args=["reseal-2fa"]).output
    assert twofactor.reseal_all() == (0, 0)  # the code's use re-sealed it with the second key already
    database.close()
    sealed.configure("ledger-test-secret-key")
