"""Production serving: `make serve` needs PUBLIC_URL, never serves demo data, trusts only the proxies it is told
to, and writes an access log without the secrets some URLs carry."""
import os
import pathlib
import socket
import subprocess
import time
import urllib.request

import pytest
from flask import request

from app import ProductionConfigError, create_app
from billing import demo
from db import database, migrate
from db.models import Isp
from tests.factories import TEST_CONFIG
from views.access_log import redact

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _app(tmp_path, **config):
    app = create_app({**TEST_CONFIG, "DATABASE_URL": f"sqlite:///{tmp_path / 'prod.sqlite3'}", **config})
    migrate.upgrade()
    return app


def test_production_needs_public_url_and_makes_cookies_secure_on_https(tmp_path, monkeypatch):
    monkeypatch.delenv("PUBLIC_URL", raising=False)
    with pytest.raises(ProductionConfigError, match="PUBLIC_URL must be set"):
        _app(tmp_path, PRODUCTION=True)
    with pytest.raises(ProductionConfigError, match="must start with https://"):
        _app(tmp_path, PRODUCTION=True, PUBLIC_URL="pay.example")
    app = _app(tmp_path, PRODUCTION=True, PUBLIC_URL="https://pay.isp.example")
    assert app.config["SESSION_COOKIE_SECURE"] is True
    database.close()


def test_production_refuses_to_start_while_demo_logins_exist(tmp_path):
    app = _app(tmp_path)
    demo.load(app.extensions["processor"])
    database.close()
    with pytest.raises(ProductionConfigError, match="remove-demo"):
        _app(tmp_path, PRODUCTION=True, PUBLIC_URL="https://pay.isp.example")
    database.close()


def _ip_app(tmp_path, proxies):
    app = _app(tmp_path, TRUSTED_PROXIES=proxies)
    Isp.create(name="Proxy ISP")

    @app.route("/_test/where")
    def where():
        return f"{request.remote_addr} {request.scheme}"

    return app.test_client()


def test_the_customers_address_comes_from_trusted_proxies_only(tmp_path):
    direct = _ip_app(tmp_path, 0)
    forged = {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"}
    assert direct.get("/_test/where", headers=forged).get_data(as_text=True) == "127.0.0.1 http"
    database.close()
    (tmp_path / "one").mkdir()
    one = _ip_app(tmp_path / "one", 1)
    assert one.get("/_test/where", headers=forged).get_data(as_text=True) == "203.0.113.9 https"
    # A client's own X-Forwarded-For entry is not believed: only the last hop, which nginx wrote, is.
    chain = {"X-Forwarded-For": "198.51.100.1, 203.0.113.9"}
    assert one.get("/_test/where", headers=chain).get_data(as_text=True).split()[0] == "203.0.113.9"
    database.close()


def test_access_log_paths_drop_secrets():
    assert redact("/reset/9f8e7d6c5b4a?next=/x") == "/reset/…"
    assert redact("/invite/abc123") == "/invite/…"
    assert redact("/paylink/eyJ.tok.en/PAY-ABC/window") == "/paylink/…/PAY-ABC/window"
    assert redact("/sandbox/pay/pi_sbx_1?secret=s3cr3t&mode=popup") == "/sandbox/pay/pi_sbx_1"
    assert redact("/invoices") == "/invoices"


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _make_serve(tmp_path, **env):
    port = _free_port()
    run_env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'prod.sqlite3'}", "BIND": f"127.0.0.1:{port}",
               "WORKERS": "1", "SECRET_KEY": "serve-test", "SANDBOX_WEBHOOK_SECRET": "w", "SANDBOX_WORKER": "false",
               **env}
    run_env.pop("MAKEFLAGS", None)
    proc = subprocess.Popen(["make", "-s", "serve"], cwd=ROOT, env=run_env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    return proc, f"http://127.0.0.1:{port}"


def _stop(proc):
    import signal

    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    out, _ = proc.communicate(timeout=30)
    return out


def test_make_serve_serves_with_a_log_without_secrets(tmp_path):
    proc, url = _make_serve(tmp_path, PUBLIC_URL="https://pay.isp.example")
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(url + "/healthz", timeout=2).read()
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, _stop(proc)
                time.sleep(0.3)
        for path in ("/reset/TOPSECRETTOKEN123?next=/x", "/paylink/PAYLINKSECRET456", "/login?email=a@b.example"):
            try:
                urllib.request.urlopen(url + path, timeout=5).read()
            except OSError:
                pass  # 404s and redirects are fine: the log line is what is checked
        time.sleep(0.5)
    finally:
        log = _stop(proc)
    assert '"GET /reset/… HTTP/1.1"' in log, log
    assert "TOPSECRETTOKEN123" not in log and "PAYLINKSECRET456" not in log and "a@b.example" not in log


def test_make_serve_refuses_without_public_url_or_with_demo_data(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PUBLIC_URL"}
    out = subprocess.run(["make", "-s", "serve"], cwd=ROOT, env={**env, "MAKEFLAGS": ""}, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode != 0 and "set PUBLIC_URL" in out.stdout + out.stderr
    app = _app(tmp_path)
    demo.load(app.extensions["processor"])
    database.close()
    proc, _ = _make_serve(tmp_path, PUBLIC_URL="https://pay.isp.example")
    out = proc.communicate(timeout=120)[0]
    assert proc.returncode != 0 and "remove-demo" in out, out
