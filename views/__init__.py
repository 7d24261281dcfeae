"""HTTP layer: blueprints, login wiring, and the full-page-or-fragment helper."""
import datetime as dt
import functools
import time

from babel import dates as babel_dates
from flask import abort, current_app, g, render_template, request, session
from flask_login import LoginManager, current_user
from flask_wtf.csrf import CSRFProtect, generate_csrf

from billing import accounts, fees, identity, money, receipts
from db.models import Isp

csrf = CSRFProtect()


class _LoginManager(LoginManager):
    """Flask-Login, with its "strong" session protection skipped for a session that holds no login.

    Flask-Login checks any non-empty session against the browser's identifier. An anonymous visitor's session
    holds only its CSRF secret and never gets an identifier, so the check failed on every request: it marked
    the session (``_remember = "clear"``), which re-signed and re-sent the session cookie and a remember-cookie
    deletion on every page. With no logged-in user and no remember cookie there is nothing for it to protect;
    a session with a user, or any request with a remember cookie, is checked as before.
    """

    def _session_protection_failed(self):
        remember = current_app.config.get("REMEMBER_COOKIE_NAME", "remember_token")
        if "_user_id" not in session and remember not in request.cookies:
            return False
        return super()._session_protection_failed()


login_manager = _LoginManager()
login_manager.login_view = "auth.login"
login_manager.login_message = None
login_manager.session_protection = "strong"


class PortalUser:
    """What Flask-Login holds: the login-session token and the User behind it."""

    is_authenticated = True
    is_active = True
    is_anonymous = False

    def __init__(self, token, user):
        self.token = token
        self.user = user

    def get_id(self):
        return self.token

    @property
    def customer_id(self):
        return self.user.customer_id

    @property
    def is_staff(self):
        return self.user.role == "staff"

    @property
    def staff_role(self):
        """'owner' or 'clerk' for staff; '' for customers."""
        return self.user.staff_role if self.is_staff else ""

    def can(self, needed):
        """True when this staff login may use routes that need the ``needed`` role."""
        from billing import staff

        return self.is_staff and staff.can(self.user.staff_role, needed)


# A signed CSRF token is reused for this long by later pages of the same session (see csrf_token).
CSRF_REUSE_SECONDS = 60
_CSRF_SIGNED_MAX = 10_000
_csrf_signed = {}  # {(signing key, session's raw CSRF secret): (signed token, time.time() it was signed)}


def csrf_token():
    """This session's signed CSRF token for a form or htmx's header; what Flask-WTF's ``csrf_token()`` gives.

    Flask-WTF signs a new token on every request (~45 µs) and reads its settings again on every call (~10 µs;
    a page asks 3–4 times). A token this process signed for the same session secret in the last
    CSRF_REUSE_SECONDS is reused instead: it is checked exactly as a fresh one (same secret, same signature)
    and still expires WTF_CSRF_TIME_LIMIT after it was signed, so at most that many seconds sooner. A new
    session secret (a new login, or a visitor without one) gets a token signed for it.
    """
    field = current_app.config.get("WTF_CSRF_FIELD_NAME", "csrf_token")
    token = g.get(field)  # where Flask-WTF keeps this request's token too
    if token is not None:
        return token
    key = current_app.config.get("WTF_CSRF_SECRET_KEY") or current_app.secret_key
    raw = session.get(field)
    now = time.time()
    hit = _csrf_signed.get((key, raw)) if raw else None
    if hit is not None and 0 <= now - hit[1] < CSRF_REUSE_SECONDS:
        setattr(g, field, hit[0])
        return hit[0]
    token = generate_csrf()
    if len(_csrf_signed) >= _CSRF_SIGNED_MAX:
        _csrf_signed.clear()
    _csrf_signed[(key, session[field])] = (token, int(now))  # signed at int(now) or just after: never younger
    return token


@login_manager.user_loader
def _load(token):
    user = identity.session_user(token)
    return PortalUser(token, user) if user else None


@functools.lru_cache(maxsize=4096)
def _medium_date(day, locale):
    # Babel finds and parses the locale's date pattern on every call (~40 µs); the answer depends on nothing else.
    return babel_dates.format_date(day, "medium", locale=locale)


def page_number():
    """The page asked for in the query string (?page=), bounded: 1 when missing or not a number."""
    from billing import bounds

    return bounds.parse_page(request.args.get("page"))


def wants_fragment():
    """True for an htmx request that should get only the changed part of the page."""
    return request.headers.get("HX-Request") == "true" and not request.headers.get("HX-History-Restore-Request")


def render(page_template, partial_template, status=200, **ctx):
    """The same URL serves a full page, or just its partial to htmx (Vary: HX-Request)."""
    return render_template(partial_template if wants_fragment() else page_template, **ctx), status


def customer_required(view):
    """Only a logged-in customer may see this; staff and anonymous users are sent to log in."""

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        if not current_user.is_authenticated:
            return login_manager.unauthorized()
        if current_user.customer_id is None:
            abort(403)
        return view(*args, **kwargs)

    return wrapper


def tab_required(flag):
    """A page of a tab the ISP hid in Settings (``show_statement``, …) answers 404, not only its link."""

    def decorate(view):
        @functools.wraps(view)
        def wrapper(*args, **kwargs):
            if not getattr(isp(), flag):
                abort(404)
            return view(*args, **kwargs)

        return wrapper

    return decorate


def pay_start_url():
    """Where a customer starts a new payment: the Payments tab, or Invoices when the ISP hides Payments."""
    from flask import url_for

    return url_for("payments.index" if isp().show_payments else "invoices.index")


def processor():
    """The configured payment processor."""
    return current_app.extensions["processor"]


def isp():
    """The ISP row, once per request."""
    if "isp" not in g:
        g.isp = Isp.current() or Isp(name="Customer Portal")
    return g.isp


def _csp(window_sources):
    """The Content-Security-Policy, with the origins the processor's window loads from."""
    extra = f" {window_sources}" if window_sources else ""
    return (
        "default-src 'self'; "
        f"script-src 'self'{extra}; style-src 'self'; img-src 'self' data:; "
        f"frame-src 'self'{extra}; connect-src 'self'{extra}; form-action 'self'{extra}; "
        "frame-ancestors 'self'; base-uri 'none'; object-src 'none'"
    )


def register(app):
    """Attach blueprints (the processor's own among them), login, template helpers and error pages to the app."""
    from views import auth, edge, home, invoices, payments, webhooks, windows

    edge.init_app(app)  # first: it bounds <int:...> in every route added after it

    pages = windows.init_app(app)  # the configured processor's pages, commands and worker
    app.config.setdefault("CSP", _csp(pages.csp_sources(app.config)))

    @app.before_request
    def _audit_origin():
        # remote_addr is the client's own address once TRUSTED_PROXIES (ProxyFix) has been applied.
        g.audit_origin = accounts.set_audit_origin(request.remote_addr)

    @app.teardown_request
    def _audit_origin_done(_exc=None):
        token = g.pop("audit_origin", None)
        if token is not None:
            try:
                accounts.reset_audit_origin(token)
            except ValueError:  # torn down in another context than it was set in: nothing left to undo
                pass
    login_manager.init_app(app)
    app.jinja_env.globals["csrf_token"] = csrf_token  # in place of Flask-WTF's, for macros
    app.context_processor(lambda: {"csrf_token": csrf_token})  # and for pages: after Flask-WTF's, so it wins
    for module in (auth, home, invoices, payments, webhooks):
        app.register_blueprint(module.bp)
    from views import methods  # saved payment methods and autopay

    app.register_blueprint(methods.bp)
    from views import account, api, paylink, profile, staff  # the ISP side: staff pages, API, invites, pay-by-link

    for module in (account, api, paylink, profile, staff):
        app.register_blueprint(module.bp)
    from views import documents  # receipts, printable and PDF invoices, statements and receipts

    app.register_blueprint(documents.bp)
    from views import i18n  # English and Spanish (Flask-Babel)

    i18n.init_app(app)
    from views import twofactor  # the code step of a login, and turning two-factor login on and off

    app.register_blueprint(twofactor.bp)

    @app.template_filter("confirmation")
    def _confirmation(code):
        return receipts.format_code(code)

    @app.template_filter("charged")
    def _charged(payment):
        """What the processor charges for a payment: its amount plus any convenience fee."""
        from billing import payments

        return payments.expected_charge_cents(payment)

    @app.template_global()
    def fee_rules():
        """{method_type: FeeRule} of the ISP's convenience fees now; empty when the ISP charges none."""
        if "fee_rules" not in g:
            g.fee_rules = fees.rules(isp(), ("card", "ach"))
        return g.fee_rules

    @app.template_global()
    def fee_label(method_type):
        return i18n.say(fees.LABELS.get(method_type, "Fee"))

    @app.template_filter("money")
    def _money(cents, currency=None):
        return money.format_money(cents or 0, currency or (isp().currency if isp() else "USD"), locale=i18n.locale())

    @app.template_filter("date")
    def _date(value):
        """A date as the customer's locale writes it (Babel's medium form: "Mar 5, 2026", "5 mar 2026")."""
        if value is None:
            return ""
        if isinstance(value, dt.datetime):
            return f"{_medium_date(value.date(), i18n.locale())} {value:%H:%M} UTC"
        return _medium_date(value, i18n.locale())

    @app.context_processor
    def _globals():
        return {"isp": isp(), "pay_start_url": pay_start_url}

