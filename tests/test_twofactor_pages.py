"""Two-factor login through HTTP: the code step, the profile page, and staff required to use it."""
import datetime as dt

import pyotp

from billing import twofactor
from db import write_tx
from db.models import Isp, User
from tests.factories import PASSWORD, Portal, make_customer
from tests.staff_support import STAFF_EMAIL, STAFF_PASSWORD, make_staff


def _turn_on(user_id):
    setup = twofactor.begin(user_id)
    now = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=60)  # an older step: today's code is free
    return setup.secret, twofactor.confirm(user_id, pyotp.TOTP(setup.secret).at(now), now=now)


def test_with_two_factor_on_the_password_alone_opens_no_session(app, client):
    customer = make_customer()
    user = User.by_email(customer.email)
    secret, codes = _turn_on(user.id)
    portal = Portal(client)
    resp = portal.login(customer.email, PASSWORD)
    assert resp.status_code == 303 and resp.location.endswith("/login/code")
    assert portal.get("/").status_code == 302  # not logged in yet
    bad = portal.post("/login/code", {"code": "000000"})
    assert bad.status_code == 401 and 'id="code-error"' in bad.get_data(as_text=True)
    ok = portal.post("/login/code", {"code": pyotp.TOTP(secret).now()})
    assert ok.status_code == 302 and portal.get("/").status_code == 200


def test_the_code_step_without_a_password_first_goes_back_to_login(client):
    resp = client.get("/login/code")
    assert resp.status_code == 303 and resp.location.endswith("/login")


def test_profile_page_sets_it_up_with_an_inline_svg_and_no_external_image(app, logged_in, customer):
    page = logged_in.get("/profile/two-factor").get_data(as_text=True)
    assert "Set up two-factor login" in page
    logged_in.post("/profile/two-factor/start")
    page = logged_in.get("/profile/two-factor").get_data(as_text=True)
    figure = page.split('<figure class="qr" id="twofactor-qr">')[1].split("</figure>")[0]
    assert figure.startswith("<svg") and "<path" in figure and "src=" not in figure and "href" not in figure
    secret = page.split('id="twofactor-secret" class="code">')[1].split("<")[0]
    wrong = logged_in.post("/profile/two-factor/confirm", {"code": "123456"})
    assert wrong.status_code == 422 and 'id="code-error"' in wrong.get_data(as_text=True)
    done = logged_in.post("/profile/two-factor/confirm", {"code": pyotp.TOTP(secret).now()}).get_data(as_text=True)
    assert done.count("<li>") >= 10 and "shown only this once" in done
    assert twofactor.enabled(User.by_email(customer.email).id)
    assert "Save them now" not in logged_in.get("/profile/two-factor").get_data(as_text=True)  # shown once


def test_the_isp_can_require_it_for_staff(app):
    make_staff()
    with write_tx():
        Isp.update(require_staff_2fa=True).execute()
    staff = Portal(app.test_client())
    staff.login(STAFF_EMAIL, STAFF_PASSWORD)
    resp = staff.get("/staff/")
    assert resp.status_code == 303 and resp.location.endswith("/profile/two-factor")
    user = User.by_email(STAFF_EMAIL)
    _turn_on(user.id)
    assert staff.get("/staff/").status_code == 200
    off = staff.post("/profile/two-factor/disable", {"password": STAFF_PASSWORD})
    assert off.status_code == 422 and twofactor.enabled(user.id)


def test_a_password_reset_link_still_asks_for_the_second_factor(app, client):
    import re

    from billing import invites

    customer = make_customer()
    user = User.by_email(customer.email)
    secret, _ = _turn_on(user.id)
    token = invites.request_reset(customer.email, lambda t: f"http://portal.test/reset/{t}")
    portal = Portal(client)
    page = portal.get(f"/reset/{token}").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    new = "a brand new passphrase 2026"
    resp = portal.post(f"/reset/{token}", {"csrf_token": csrf, "password": new, "confirm": new}, csrf=False)
    assert resp.status_code == 303 and resp.location.endswith("/login/code"), resp.get_data(as_text=True)[:500]
    assert portal.get("/").status_code == 302  # the emailed link alone opened no session
    ok = portal.post("/login/code", {"code": pyotp.TOTP(secret).now()})
    assert ok.status_code == 302 and portal.get("/").status_code == 200


def test_wrong_codes_at_the_code_step_are_delayed_like_passwords_and_answer_429_with_retry_after(app):
    customer = make_customer()
    secret, _ = _turn_on(User.by_email(customer.email).id)
    attacker = Portal(app.test_client())
    assert attacker.login(customer.email, PASSWORD).location.endswith("/login/code")  # the password is known
    codes = [attacker.post("/login/code", {"code": "000000"}).status_code for _ in range(8)]
    assert codes[:6] == [401] * 6 and 429 in codes[6:], codes
    resp = attacker.post("/login/code", {"code": pyotp.TOTP(secret).now()})  # even the right code waits
    assert resp.status_code == 429 and int(resp.headers["Retry-After"]) >= 1
    assert "Too many attempts" in resp.get_data(as_text=True) and attacker.get("/").status_code == 302


def test_the_owners_usual_browser_passes_the_code_step_during_an_attack(app):
    customer = make_customer()
    secret, recovery = _turn_on(User.by_email(customer.email).id)
    usual = Portal(app.test_client())
    usual.login(customer.email, PASSWORD)
    assert usual.post("/login/code", {"code": recovery[0]}).status_code == 302  # sets the known-device cookie
    usual.post("/logout", {})
    attacker = Portal(app.test_client())
    attacker.login(customer.email, PASSWORD)
    for _ in range(10):
        attacker.post("/login/code", {"code": "000000"})
    assert attacker.post("/login/code", {"code": "000000"}).status_code == 429
    usual.login(customer.email, PASSWORD)
    assert usual.post("/login/code", {"code": pyotp.TOTP(secret).now()}).status_code == 302
    assert usual.get("/").status_code == 200
