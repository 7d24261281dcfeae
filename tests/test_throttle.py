"""Throttling of password guesses and of the emailing public forms: growing delays shared through the
database, never a lockout of the account's owner on their usual browser. (Across two gunicorn workers:
tests/test_throttle_workers.py.)"""
import datetime as dt

import pytest

from billing import throttle
from db.models import AuditLog, Throttle, utcnow
from tests.factories import PASSWORD, Portal, make_customer

WRONG = "not the password"


def test_delays_grow_from_one_second_and_are_capped():
    p = throttle.Policy(free=5, max_delay=300)
    assert [throttle.delay(p, n) for n in range(1, 16)] == [0, 0, 0, 0, 0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 300]


def test_an_attacker_gets_at_most_25_guesses_an_hour_at_one_account(ledger_db):
    key = [(throttle.account_key("login", "victim@example.test"), throttle.ACCOUNT)]
    start = now = utcnow()
    guesses = 0
    while now < start + dt.timedelta(hours=1):
        try:
            throttle.attempt(key, now=now)
            guesses += 1
            now += dt.timedelta(milliseconds=10)  # as fast as the network allows
        except throttle.Throttled as e:
            now += dt.timedelta(seconds=e.seconds)
    assert guesses == throttle.guesses_per_hour(throttle.ACCOUNT) == 25


def test_a_throttled_attempt_counts_nothing_more(ledger_db):
    key = throttle.account_key("login", "x@example.test")
    now = utcnow()
    for _ in range(6):
        throttle.attempt([(key, throttle.ACCOUNT)], now=now)
    with pytest.raises(throttle.Throttled) as e:
        throttle.attempt([(key, throttle.ACCOUNT)], now=now)
    assert e.value.seconds == 2 and Throttle.get(Throttle.key == key).failures == 6


def _fresh_browser(app):
    return Portal(app.test_client())


def test_wrong_passwords_are_delayed_and_the_right_one_waits_too_from_the_attackers_browser(app):
    victim = make_customer()
    attacker = _fresh_browser(app)
    codes = [attacker.login(victim.email, WRONG).status_code for _ in range(8)]
    assert codes[:5] == [401] * 5 and 429 in codes[5:]
    resp = attacker.login(victim.email)
    assert resp.status_code == 429 and int(resp.headers["Retry-After"]) >= 1
    assert "Too many attempts" in resp.get_data(as_text=True)


def test_the_owner_logs_in_from_their_usual_browser_during_an_attack(app):
    victim = make_customer()
    usual = _fresh_browser(app)
    assert usual.login(victim.email).status_code == 302  # sets the signed known-device cookie
    usual.post("/logout", {})
    attacker = _fresh_browser(app)
    for _ in range(10):
        attacker.login(victim.email, WRONG)
    assert attacker.login(victim.email).status_code == 429
    assert usual.login(victim.email).status_code == 302  # not locked out by the attack
    other = make_customer()
    assert usual.login(other.email, WRONG).status_code in (401, 429)  # the cookie exempts only its account


def test_a_forged_known_device_cookie_exempts_nothing(app):
    victim = make_customer()
    attacker = _fresh_browser(app)
    attacker.client.set_cookie("known_device", f"{victim.id}.forged.signature")
    for _ in range(8):
        attacker.login(victim.email, WRONG)
    assert attacker.login(victim.email).status_code == 429


def test_one_address_guessing_many_accounts_is_delayed(app):
    attacker = _fresh_browser(app)
    codes = [attacker.login(f"nobody{n}@example.test", WRONG).status_code for n in range(24)]
    assert codes[:20] == [401] * 20 and 429 in codes[20:]


def test_failed_and_successful_logins_are_audited_with_address_and_shown_on_the_profile(app):
    victim = make_customer()
    browser = _fresh_browser(app)
    browser.login(victim.email, WRONG)
    browser.login(victim.email)
    rows = list(AuditLog.select().where(AuditLog.entity_id == str(victim.users.get().id))
                .where(AuditLog.action.startswith("login.")).order_by(AuditLog.id))
    assert [r.action for r in rows] == ["login.failed", "login.succeeded"]
    assert all('"ip": "127.0.0.1"' in r.detail for r in rows) and all(r.at for r in rows)
    page = browser.get("/profile").get_data(as_text=True)
    assert "Wrong password" in page and "Logged in" in page and "127.0.0.1" in page


def test_the_password_asked_before_removing_a_method_is_throttled(app, logged_in, customer):
    from db.models import PaymentMethod

    m = PaymentMethod.create(customer=customer.id, processor="sandbox", processor_ref="pm_sbx_t", method_type="card",
                             brand="Visa", last4="4242", exp_month=12, exp_year=2034)
    texts = [logged_in.post(f"/methods/{m.id}/remove", {"password": WRONG}).get_data(as_text=True)
             for _ in range(7)]
    assert "Too many attempts" in texts[-1]
    resp = logged_in.post(f"/methods/{m.id}/remove", {"password": PASSWORD})
    assert "Too many attempts" in resp.get_data(as_text=True)
    assert PaymentMethod.get_by_id(m.id).removed_at is None


@pytest.mark.parametrize("url,data", [("/reset", {"email": "someone@example.test"}),
                                      ("/signup", {"account_number": "A-1", "zip": "78701",
                                                   "email": "someone@example.test"})])
def test_the_emailing_public_forms_are_throttled_per_address(app, url, data):
    browser = _fresh_browser(app)
    codes = [browser.post(url, data).status_code for _ in range(8)]
    assert codes[:5] == [200] * 5 and codes[-1] == 429


def test_a_success_clears_the_accounts_count(app):
    victim = make_customer()
    browser = _fresh_browser(app)
    for _ in range(4):
        browser.login(victim.email, WRONG)
    assert browser.login(victim.email).status_code == 302
    assert not Throttle.select().where(Throttle.key == throttle.account_key("login", victim.email)).exists()


def test_the_usual_browser_is_counted_on_its_own_so_holding_it_is_no_licence_to_guess(app):
    victim = make_customer()
    usual = _fresh_browser(app)
    assert usual.login(victim.email).status_code == 302  # the known-device cookie
    usual.post("/logout", {})
    codes = [usual.login(victim.email, WRONG).status_code for _ in range(throttle.DEVICE.free + 2)]
    assert codes[:-1] == [401] * (throttle.DEVICE.free + 1) and codes[-1] == 429
    assert throttle.guesses_per_hour(throttle.DEVICE) < 100
    # The device's count is its own: another browser is still judged by the account's key alone.
    elsewhere = _fresh_browser(app)
    assert elsewhere.login(victim.email).status_code == 302
