"""The portal's application factory. Wiring only: no business rules live here."""
import os
import pathlib
import secrets

from flask import Flask, request

from billing import identity, sealed
from billing.processors import build_processor
from db import database, is_sqlite, open_database

DEFAULTS = {
    "DATABASE_URL": None,  # default: sqlite:///<instance>/portal.sqlite3
    "PAYMENT_PROCESSOR": "sandbox",
    "SANDBOX_ACH_SETTLE_SECONDS": 30,
    "SANDBOX_WORKER": True,
    "SANDBOX_WEBHOOK_SECRET": None,
    "STRIPE_SECRET_KEY": "",
    "STRIPE_PUBLISHABLE_KEY": "",
    "STRIPE_WEBHOOK_SECRET": "",
    "STRIPE_API_BASE": "",
    "STRIPE_JS_URL": "https://js.stripe.com/v3/",
    "SECRET_KEY": None,
    # Older keys still accepted after a rotation (sessions, remembered devices, pay links): Flask's setting.
    # From the environment: comma-separated. Keep an old key here for as long as its pay links should work.
    "SECRET_KEY_FALLBACKS": [],
    "SESSION_COOKIE_SECURE": False,
    "PASSWORD_HASH_TIME_COST": 0,
    "PASSWORD_HASH_MEMORY_COST": 0,
    "PER_PAGE": 20,
    "DATABASE_POOL": 8,  # PostgreSQL connections kept open per worker process (0: connect per request)
    "SMTP_URL": "console",
    "MAIL_FROM": "billing@localhost",
    "OUTBOX_STALE_MINUTES": 15,  # the staff home warns when a due email has waited this long (send-mail not running)
    "PUBLIC_URL": "http://127.0.0.1:5000",
    "SESSION_IDLE_MINUTES": 30,
    "SESSION_MAX_HOURS": 12,
    "LOGIN_AUDIT_DAYS": 365,  # `purge` drops login audit rows older than this (billing/retention.py)
    # Production serving (`make serve` sets PRODUCTION=true): see docs/deploy.md.
    "PRODUCTION": False,
    "TRUSTED_PROXIES": 0,  # proxies in front whose X-Forwarded-For/-Proto/-Host are believed (0: none)
}
_BOOL = {"1": True, "true": True, "yes": True, "on": True, "0": False, "false": False, "no": False, "off": False}


def _from_env(key, default):
    raw = os.environ.get(key)
    if raw is None:
        return default
    if isinstance(default, bool):
        return _BOOL.get(raw.strip().lower(), default)
    if isinstance(default, list):
        return [part.strip() for part in raw.split(",") if part.strip()]
    if isinstance(default, int):
        return int(raw)
    return raw


def _instance_secret(app, name):
    """A random secret made once and kept in the instance folder."""
    path = pathlib.Path(app.instance_path) / name
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
    return path.read_text().strip()


class ProductionConfigError(RuntimeError):
    """Production serving was asked for with settings that are unsafe; str() says what to change."""


def _production_settings(app, overrides):
    """PUBLIC_URL must be the portal's real address; cookies are secure whenever it is https."""
    public = overrides.get("PUBLIC_URL") or os.environ.get("PUBLIC_URL")
    if not public:
        raise ProductionConfigError("PUBLIC_URL must be set to the portal's address (e.g. https://pay.your-isp.example)"
                                    " for production serving: it is in every emailed link")
    if public.startswith("https://"):
        app.config["SESSION_COOKIE_SECURE"] = True
    elif not public.startswith("http://"):
        raise ProductionConfigError(f"PUBLIC_URL must start with https:// (or http:// behind no TLS), not {public!r}")


def _refuse_demo_data(app):
    from billing import demo

    if demo.logins_present():
        raise ProductionConfigError(
            "the demo ISP's logins (demo@example.com and its neighbour) are in this database, with a password "
            "printed in the README: remove them with `flask --app app remove-demo` before serving for real")


def create_app(config=None):
    """Build the portal: defaults, then environment variables, then ``config`` (tests)."""
    app = Flask(__name__, instance_relative_config=True)
    pathlib.Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    app.config.update(
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        WTF_CSRF_TIME_LIMIT=12 * 3600,
        MAX_CONTENT_LENGTH=1024 * 1024,
        SEND_FILE_MAX_AGE_DEFAULT=3600,
    )
    app.config.update({k: _from_env(k, v) for k, v in DEFAULTS.items()})
    app.config.update(config or {})
    if not app.config["DATABASE_URL"]:
        app.config["DATABASE_URL"] = f"sqlite:///{pathlib.Path(app.instance_path) / 'portal.sqlite3'}"
    if not app.config["SECRET_KEY"]:
        app.config["SECRET_KEY"] = _instance_secret(app, "secret_key")
    if not app.config["SANDBOX_WEBHOOK_SECRET"]:
        app.config["SANDBOX_WEBHOOK_SECRET"] = _instance_secret(app, "sandbox_webhook_secret")
    app.config["SESSION_COOKIE_SECURE"] = bool(app.config["SESSION_COOKIE_SECURE"])

    if app.config["PRODUCTION"]:
        _production_settings(app, config or {})
    if int(app.config["TRUSTED_PROXIES"] or 0) > 0:
        # The customer's own address (ACH mandates, autopay authorizations, audit, throttling) and scheme come
        # from the proxies' headers, trusting exactly this many hops and no more (a client could forge others).
        from werkzeug.middleware.proxy_fix import ProxyFix

        hops = int(app.config["TRUSTED_PROXIES"])
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)

    identity.configure(app.config["PASSWORD_HASH_TIME_COST"], app.config["PASSWORD_HASH_MEMORY_COST"])
    identity.configure_sessions(app.config["SESSION_IDLE_MINUTES"], app.config["SESSION_MAX_HOURS"])
    sealed.configure(app.config["SECRET_KEY"], app.config["SECRET_KEY_FALLBACKS"])
    open_database(app.config["DATABASE_URL"], pool_size=int(app.config["DATABASE_POOL"] or 0))
    if app.config["PRODUCTION"]:
        _refuse_demo_data(app)
    app.extensions["processor"] = build_processor(app.config)

    @app.before_request
    def _connect():
        database.connect(reuse_if_open=True)

    @app.teardown_request
    def _close(exc):
        if database.is_closed():
            return
        if is_sqlite():
            # Keep this thread's SQLite connection for its next request: opening one (pragmas) and the
            # WAL checkpoint when the last one closes cost ~0.6 ms a request (see bench/RESULTS.md).
            if database.connection().in_transaction:
                database.connection().rollback()
            return
        database.close()  # PostgreSQL: back to the pool (DATABASE_POOL), or closed when pooling is off

    from views import assets, csrf, register

    csrf.init_app(app)
    register(app)
    assets.init_app(app)  # hashed static files, inline CSS's CSP hash, compression (runs after _headers)

    @app.after_request
    def _headers(response):
        response.headers.add("Vary", "HX-Request")
        response.headers.setdefault("Content-Security-Policy", app.config["CSP"])
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        if request.is_secure:  # behind TRUSTED_PROXIES this follows X-Forwarded-Proto
            response.headers.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        if request.endpoint != "static":
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    from views.cli import register_cli

    register_cli(app)
    return app
