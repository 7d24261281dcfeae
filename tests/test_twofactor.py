"""Two-factor login rules without Flask: set-up, codes computed with pyotp, replay, throttling, recovery codes."""
import datetime as dt

import pyotp
import pytest

from billing import identity, throttle, twofactor
from db.models import RecoveryCode, Throttle, TwoFactor

T0 = dt.datetime(2026, 12, 1, 12, 0, 10, tzinfo=dt.timezone.utc)


@pytest.fixture
def user(ledger_db):
    return identity.create_user("ana@example.test", "a long enough password")


def code_at(secret, when):
    return pyotp.TOTP(secret).at(when)


def turned_on(user, when=T0):
    setup = twofactor.begin(user.id)
    codes = twofactor.confirm(user.id, code_at(setup.secret, when), now=when)
    assert codes
    return setup.secret, codes


def test_set_up_shows_an_svg_qr_code_of_the_otpauth_uri_and_is_off_until_confirmed(user):
    setup = twofactor.begin(user.id)
    assert setup.uri.startswith("otpauth://totp/") and f"secret={setup.secret}" in setup.uri
    assert "issuer=Test%20ISP" in setup.uri
    assert setup.svg.lstrip().startswith("<svg") and "<path" in setup.svg and len(setup.svg) < 8_000
    assert pyotp.parse_uri(setup.uri).secret == setup.secret
    assert not twofactor.enabled(user.id)
    assert twofactor.confirm(user.id, "000000", now=T0) is None
    assert not twofactor.enabled(user.id)


def test_confirming_with_the_apps_code_turns_it_on_and_gives_ten_recovery_codes_stored_hashed(user):
    secret, codes = turned_on(user)
    assert twofactor.enabled(user.id) and len(codes) == 10 and len(set(codes)) == 10
    stored = [r.code_hash for r in RecoveryCode.select().where(RecoveryCode.user == user.id)]
    assert len(stored) == 10 and not set(stored) & {c.replace("-", "") for c in codes}
    assert all(len(h) == 64 for h in stored)


def test_a_code_works_once_within_its_window_and_the_next_step_works(user):
    secret, _ = turned_on(user)
    later = T0 + dt.timedelta(seconds=60)
    code = code_at(secret, later)
    assert twofactor.verify(user.id, code, now=later)
    assert not twofactor.verify(user.id, code, now=later + dt.timedelta(seconds=5)), "replayed in its window"
    assert not twofactor.verify(user.id, code_at(secret, later - dt.timedelta(seconds=30)),
                                now=later + dt.timedelta(seconds=6)), \
        "an older step is refused once a later one was used"
    nxt = later + dt.timedelta(seconds=30)
    assert twofactor.verify(user.id, code_at(secret, nxt), now=nxt)


def test_one_step_of_clock_drift_is_accepted_and_two_are_not(user):
    secret, _ = turned_on(user)
    now = T0 + dt.timedelta(minutes=5)
    assert twofactor.verify(user.id, code_at(secret, now + dt.timedelta(seconds=30)), now=now)
    now2 = now + dt.timedelta(minutes=5)
    assert not twofactor.verify(user.id, code_at(secret, now2 - dt.timedelta(seconds=90)), now=now2)


def test_wrong_codes_get_the_passwords_growing_delays_and_a_wait_holds_even_for_the_right_code(user):
    secret, _ = turned_on(user)
    now = T0 + dt.timedelta(minutes=1)
    for _ in range(twofactor.CODE.free):
        assert not twofactor.verify(user.id, "123456", now=now, ip="203.0.113.9")
    assert not twofactor.verify(user.id, "123456", now=now, ip="203.0.113.9")  # the 6th: now waits 1 s
    with pytest.raises(twofactor.Throttled) as waited:
        twofactor.verify(user.id, code_at(secret, now), now=now, ip="203.0.113.9")
    assert waited.value.seconds == 2 and "Too many attempts" in waited.value.message()
    now += dt.timedelta(seconds=1)
    assert not twofactor.verify(user.id, "654321", now=now, ip="203.0.113.9")  # 7th: the wait doubles
    with pytest.raises(twofactor.Throttled):
        twofactor.verify(user.id, code_at(secret, now), now=now + dt.timedelta(seconds=1), ip="203.0.113.9")
    later = now + dt.timedelta(seconds=2)  # a wait, not a lockout: the right code works once it is over
    assert twofactor.verify(user.id, code_at(secret, later), now=later, ip="203.0.113.9")
    assert not Throttle.select().where(Throttle.key == throttle.account_key("totp", user.id)).exists(), \
        "a right code clears the login's count"


def test_the_code_delays_are_capped_at_fifteen_minutes_and_allow_few_guesses_an_hour():
    assert [throttle.delay(twofactor.CODE, n) for n in (5, 6, 7, 14, 15, 40)] == [0, 1, 2, 256, 512, 900]
    assert throttle.guesses_per_hour(twofactor.CODE) == 18  # then 4 an hour while the attack goes on


def test_the_owners_known_device_is_not_slowed_by_an_attack_on_the_code(user):
    secret, _ = turned_on(user)
    now = T0 + dt.timedelta(minutes=1)
    for _ in range(12):
        try:
            twofactor.verify(user.id, "000000", now=now, ip="198.51.100.7")
        except twofactor.Throttled:
            pass
    with pytest.raises(twofactor.Throttled):
        twofactor.verify(user.id, code_at(secret, now), now=now, ip="198.51.100.7")
    other = identity.create_user("bo@example.test", "a long enough password")
    with pytest.raises(twofactor.Throttled):  # a known device exempts its own login only
        twofactor.verify(user.id, code_at(secret, now), now=now, ip="203.0.113.9", known_device_user=other.id)
    assert twofactor.verify(user.id, code_at(secret, now), now=now, ip="203.0.113.9", known_device_user=user.id)


def test_one_address_trying_codes_for_many_logins_is_delayed(user):
    now = T0 + dt.timedelta(minutes=1)
    logins = [identity.create_user(f"u{n}@example.test", "a long enough password") for n in range(8)]
    for login in logins:
        turned_on(login)
    results = []
    for n in range(throttle.ADDRESS.free + 3):
        try:
            results.append(twofactor.verify(logins[n % 8].id, "000000", now=now, ip="198.51.100.7"))
        except twofactor.Throttled:
            results.append("wait")
    assert results[:throttle.ADDRESS.free + 1] == [False] * (throttle.ADDRESS.free + 1) and "wait" in results


def test_a_replayed_code_is_refused_and_counted_as_a_wrong_one(user):
    secret, _ = turned_on(user)
    now = T0 + dt.timedelta(minutes=2)
    code = code_at(secret, now)
    assert twofactor.verify(user.id, code, now=now)
    assert not twofactor.verify(user.id, code, now=now + dt.timedelta(seconds=3))
    row = Throttle.get(Throttle.key == throttle.account_key("totp", user.id))
    assert row.failures == 1


def test_a_recovery_code_works_once(user):
    _, codes = turned_on(user)
    now = T0 + dt.timedelta(minutes=1)
    assert twofactor.verify(user.id, codes[3].lower(), now=now)
    assert not twofactor.verify(user.id, codes[3], now=now)
    assert twofactor.recovery_left(user.id) == 9


def test_new_recovery_codes_replace_the_old_ones(user):
    _, old = turned_on(user)
    new = twofactor.regenerate_recovery_codes(user.id)
    now = T0 + dt.timedelta(minutes=1)
    assert not twofactor.verify(user.id, old[0], now=now)
    assert twofactor.verify(user.id, new[0], now=now)


def test_turning_it_off_forgets_the_secret_and_the_codes(user):
    turned_on(user)
    twofactor.disable(user.id, actor="test")
    assert not twofactor.enabled(user.id)
    assert not TwoFactor.select().exists() and not RecoveryCode.select().exists()
