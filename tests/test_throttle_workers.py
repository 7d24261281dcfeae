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
from tests.conftest import TEST_CONFIG, make_customer


def _login(url, email, password):
    """One login from a fresh browser (new connection, new cookies): (status, body)."""
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())
    page = opener.open(url + "/login", timeout=30).read().decode()
    token = html.unescape(re.search(r'name="csrf_token" value="([^"]+)"', page).group(1))
    body = urllib.parse.urlencode({"csrf_token": token, "email": email, "password": password}).encode()

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    opener.add_handler(NoRedirect())
    try:
        with opener.open(urllib.request.Request(url + "/login", data=body), timeout=30) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_two_workers_share_the_throttle(app, database_url, tmp_path):
    victim = make_customer()
    database.close()
    env = {k: str(v) for k, v in TEST_CONFIG.items() if k != "TESTING"}
    env.update(DATABASE_URL=database_url, SANDBOX_WORKER="0", PAYMENT_PROCESSOR="sandbox")
    access = tmp_path / "access.log"
    with gunicorn("app:create_app()", env=env, workers=2, threads=1,
                  extra_args=("--access-logfile", str(access), "--access-logformat", "%(p)s %(m)s %(s)s")) as url:
        started = time.monotonic()
        codes = [_login(url, victim.email, "wrong password")[0] for _ in range(12)]
        elapsed = time.monotonic() - started
    served = [line.split() for line in access.read_text().splitlines() if " POST " in line]
    workers = {pid for pid, _m, _s in served}
    assert len(workers) == 2, f"both workers must have answered logins: {workers}"
    assert codes[:5] == [401] * 5, codes
    # 5 free, then waits of 1, 2, 4 ... seconds: within `elapsed` seconds at most this many more get through.
    allowed = 5 + 1 + int(math.log2(elapsed + 1))
    assert codes.count(401) <= allowed and 429 in codes, (codes, elapsed)
