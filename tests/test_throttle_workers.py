"""Throttling holds across two gunicorn workers: the counters are in the database, so an attacker whose
requests land on different workers is delayed as soon as one in one process would be."""
import html
import math
import re
import time
import urllib.error
import urllib.parse
import urllib.request

from bench.server import gunicorn
from db import database
from tests.factories import TEST_CONFIG, make_customer


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def _post(opener, url, fields):
    """POST a form with the CSRF token of the login page, following no redirect: (status, body)."""
    page = opener.open(url.rsplit("/login", 1)[0] + "/login", timeout=30).read().decode()
    token = html.unescape(re.search(r'name="csrf_token" value="([^"]+)"', page).group(1))
    body = urllib.parse.urlencode({"csrf_token": token, **fields}).encode()
    try:
        with opener.open(urllib.request.Request(url, data=body), timeout=30) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def browser():
    """A fresh browser: its own cookies, and redirects are answers (not followed)."""
    return urllib.request.build_opener(urllib.request.HTTPCookieProcessor(), _NoRedirect())


def _login(url, email, password, opener=None):
    """One login, from a fresh browser (new connection, new cookies) unless ``opener``: (status, body)."""
    opener = opener or browser()
    return _post(opener, url + "/login", {"email": email, "password": password})


def test_two_workers_share_the_throttle(app, database_url, tmp_path):
    victim = make_customer()
    database.close()
    env = {k: str(v) for k, v in TEST_CONFIG.items() if k != "TESTING"}
    env.update(DATABASE_URL=database_url, SANDBOX_WORKER="0", PAYMENT_PROCESSOR="sandbox")
    # Two servers (one worker process each) on one database, the logins alternating between them: which
    # worker of one server accepts a connection is the kernel's choice (on a busy machine one took them all).
    with gunicorn("app:create_app()", env=env, workers=1, threads=1) as one, \
            gunicorn("app:create_app()", env=env, workers=1, threads=1) as two:
        started = time.monotonic()
        codes = [_login((one, two)[n % 2], victim.email, "wrong password")[0] for n in range(12)]
        elapsed = time.monotonic() - started
    assert codes[:5] == [401] * 5, codes
    # 5 free, then waits of 1, 2, 4 ... seconds: within `elapsed` seconds at most this many more get through.
    allowed = 5 + 1 + int(math.log2(elapsed + 1))
    assert codes.count(401) <= allowed and 429 in codes, (codes, elapsed)


def test_two_workers_share_the_two_factor_code_throttle(app, database_url, tmp_path):
    """Wrong second-factor codes from one pending login, answered by two workers, are delayed as one."""
    import datetime as dt

    import pyotp

    from billing import twofactor
    from db.models import User
    from tests.factories import PASSWORD

    victim = make_customer()
    setup = twofactor.begin(User.by_email(victim.email).id)
    before = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=60)
    assert twofactor.confirm(User.by_email(victim.email).id, pyotp.TOTP(setup.secret).at(before), now=before)
    database.close()
    env = {k: str(v) for k, v in TEST_CONFIG.items() if k != "TESTING"}
    env.update(DATABASE_URL=database_url, SANDBOX_WORKER="0", PAYMENT_PROCESSOR="sandbox")
    # Two servers (one worker process each) on one database, the codes alternating between them: which
    # worker of one server accepts a connection is the kernel's choice, so this is how "two processes" is sure.
    with gunicorn("app:create_app()", env=env, workers=1, threads=1) as one, \
            gunicorn("app:create_app()", env=env, workers=1, threads=1) as two:
        opener = browser()
        status, _ = _login(one, victim.email, PASSWORD, opener=opener)
        assert status == 303
        started = time.monotonic()
        codes = [_post(opener, (one, two)[n % 2] + "/login/code", {"code": "000000"})[0] for n in range(12)]
        elapsed = time.monotonic() - started
    assert codes[:6] == [401] * 6, codes
    allowed = 5 + 1 + int(math.log2(elapsed + 1))
    assert codes.count(401) <= allowed and 429 in codes, (codes, elapsed)
