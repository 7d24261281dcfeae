"""The idle-timeout warning in real Chromium: it appears before the server would sign the customer out, is
announced (an alertdialog) and takes focus; Enter on "Stay signed in" restarts the server's idle clock."""
import time

import pytest

from billing import identity
from db.models import LoginSession

pytestmark = pytest.mark.browser


@pytest.fixture
def short_idle(app, request):
    # A 6-second idle timeout by default: the page warns after ~1.5 s and reloads after ~3 s.
    identity.configure_sessions(getattr(request, "param", 0.1), 12)
    yield
    identity.configure_sessions(30, 12)


# 12 seconds here: the page reloads ~6 s after it loads, which leaves a busy machine time to press Enter first.
@pytest.mark.parametrize("short_idle", [0.2], indirect=True)
def test_the_idle_warning_is_announced_focused_and_stay_signed_in_keeps_the_session(short_idle, open_page, customer):
    view = open_page()
    page = view.login(customer.email)
    warning = page.locator("#session-warning")
    assert warning.is_hidden()
    warning.wait_for(state="visible", timeout=5000)
    assert warning.get_attribute("role") == "alertdialog"
    assert page.evaluate("document.activeElement.textContent") == "Stay signed in"
    before = LoginSession.get().last_seen_at
    time.sleep(0.05)  # so the restarted clock reads later than the one the login wrote
    with page.expect_response("**/stay**") as answer:
        page.keyboard.press("Enter")
    assert answer.value.ok
    warning.wait_for(state="hidden", timeout=5000)
    assert "/login" not in page.url
    assert LoginSession.get().last_seen_at > before
    assert not view.errors, view.errors  # nothing refused by the CSP, no script errors


def test_without_stay_signed_in_the_page_reloads_to_the_login_page(short_idle, open_page, customer):
    view = open_page()
    page = view.login(customer.email)
    page.wait_for_url("**/login**", timeout=15000)
    assert page.locator("#password").is_visible()
