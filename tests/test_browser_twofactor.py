"""Real Chromium: turning two-factor login on from the profile, then logging in with a TOTP code and with a
recovery code (codes computed with pyotp from the secret the page shows, as an authenticator app would)."""
import time

import pyotp
import pytest

from tests.factories import PASSWORD, make_customer

pytestmark = pytest.mark.browser
expect = pytest.importorskip("playwright.sync_api").expect


def fresh_code(secret):
    """The current code, after waiting out a step boundary closer than 3 s (the server checks it a moment later)."""
    if 30 - time.time() % 30 < 3:
        time.sleep(3)
    return pyotp.TOTP(secret).now()


def next_step_code(secret):
    """A code of a later step than the last one used (a used step cannot be replayed): wait for the next step."""
    time.sleep(30 - time.time() % 30 + 0.5)
    return pyotp.TOTP(secret).now()


def log_in_password(tab, email):
    page = tab.page
    page.goto(tab.base_url + "/login")
    page.fill("#email", email)
    page.fill("#password", PASSWORD)
    page.click("button.primary")
    return page


def test_customer_turns_on_totp_then_logs_in_with_a_code_and_with_a_recovery_code(open_page, app):
    customer = make_customer()
    tab = open_page(java_script_enabled=False)
    page = tab.login(customer.email)
    page.get_by_role("link", name="Profile").click()
    page.locator("#profile-two-factor").get_by_role("link", name="Two-factor login").click()
    page.get_by_role("button", name="Set up two-factor login").click()
    expect(page.locator("#twofactor-qr svg")).to_be_visible()
    secret = page.locator("#twofactor-secret").inner_text().strip()
    page.get_by_label("Code from the app").fill(fresh_code(secret))
    page.get_by_role("button", name="Turn on").click()
    expect(page.locator("#twofactor-on")).to_have_text("Two-factor login is on.")
    codes = page.locator("#recovery-codes li").all_inner_texts()
    assert len(codes) == 10
    page.get_by_role("button", name="Log out").click()

    page = log_in_password(tab, customer.email)
    expect(page).to_have_url(tab.base_url + "/login/code")
    page.goto(tab.base_url + "/")  # the password alone opens no session
    expect(page).to_have_url(tab.base_url + "/login?next=%2F")
    page = log_in_password(tab, customer.email)
    page.get_by_label("Code").fill("000000")
    page.get_by_role("button", name="Continue").click()
    expect(page.locator("#code-error")).to_contain_text("not right")
    page.get_by_label("Code").fill(next_step_code(secret))
    page.get_by_role("button", name="Continue").click()
    expect(page).to_have_url(tab.base_url + "/")
    page.get_by_role("button", name="Log out").click()

    page = log_in_password(tab, customer.email)
    page.get_by_label("Code").fill(codes[0])
    page.get_by_role("button", name="Continue").click()
    expect(page).to_have_url(tab.base_url + "/")
    page.get_by_role("button", name="Log out").click()

    page = log_in_password(tab, customer.email)  # the same recovery code again: refused
    page.get_by_label("Code").fill(codes[0])
    page.get_by_role("button", name="Continue").click()
    expect(page.locator("#code-error")).to_be_visible()
    expect(page).to_have_url(tab.base_url + "/login/code")
    # The two wrong codes answer 401, as a wrong password does; Chromium logs those, and nothing else.
    assert [e for e in tab.errors if "401 (UNAUTHORIZED)" not in e] == [] and len(tab.errors) == 2
