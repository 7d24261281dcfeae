"""Public account pages: accept an invite, self sign-up, password reset; the ISP's logo and accent colour."""
import base64
import hashlib

from flask import Blueprint, Response, abort, current_app, g, render_template, request, url_for
from flask_babel import gettext as _
from markupsafe import Markup

from billing import invites, settings, throttle
from views import isp

bp = Blueprint("account", __name__)



def _sent(hours):
    """The answer to a sign-up or reset request, the same whether or not the details matched."""
    return _("If the details match our records, we have sent an email to that address. Follow the link in it "
             "within %(hours)s. Nothing arrived? Check your spam folder, or call us.", hours=hours)


def _link(endpoint):
    base = current_app.config["PUBLIC_URL"].rstrip("/")
    return lambda token: base + url_for(endpoint, token=token)


def _log_in(user):
    """A new password was just set through an emailed link: log in, but through the second factor if it is on.

    The link proves only that its reader has the mailbox; a second factor exists to make that not enough.
    """
    from views import twofactor
    from views.auth import begin_session

    if twofactor.wants_code(user):
        return twofactor.ask_for_code(user, None)
    response = begin_session(user)
    response.status_code = 303
    return response


def _mail_throttled(purpose, account=None):
    """A Throttled when this address (or account) asked for too many emails lately, else None (and counted)."""
    keys = [(throttle.address_key(purpose, request.remote_addr), throttle.MAIL)]
    if account:
        keys.append((throttle.account_key(purpose, account), throttle.ACCOUNT))
    try:
        throttle.attempt(keys)
    except throttle.Throttled as e:
        return e
    return None


def _set_password(token, kinds, template_title):
    try:
        row = invites.find(token, kinds)
    except invites.TokenError as e:
        return render_template("account/link_error.html", message=str(e)), 410
    if request.method == "GET":
        return render_template("account/set_password.html", title=template_title, email=row.email, errors={})
    try:
        user = invites.accept(token, request.form.get("password"), request.form.get("confirm"))
    except invites.PasswordError as e:
        return render_template("account/set_password.html", title=template_title, email=row.email,
                               errors=e.errors), 422
    except invites.TokenError as e:
        return render_template("account/link_error.html", message=str(e)), 410
    return _log_in(user)


@bp.route("/invite/<token>", methods=["GET", "POST"])
def accept(token):
    """Follow an invite or sign-up link: set a password and log in."""
    return _set_password(token, (invites.INVITE, invites.SIGNUP), _("Set your password"))


@bp.route("/reset/<token>", methods=["GET", "POST"])
def reset_password(token):
    """Follow a password-reset link: choose a new password and log in."""
    return _set_password(token, (invites.RESET,), _("Choose a new password"))


@bp.route("/signup", methods=["GET", "POST"])
def signup():
    """Self sign-up: account number, ZIP on file and email; the answer never says whether they matched."""
    form = request.form if request.method == "POST" else {}
    errors = {}
    if request.method == "POST":
        if not (form.get("account_number") or "").strip():
            errors["account_number"] = _("Enter the account number from your bill.")
        if not (form.get("zip") or "").strip():
            errors["zip"] = _("Enter the ZIP code of your service address.")
        email = (form.get("email") or "").strip()
        if "@" not in email or "." not in email.split("@")[-1] or len(email) > 254:
            errors["email"] = _("Enter your email address, like name@example.com.")
        waiting = None if errors else _mail_throttled("signup", form.get("account_number"))
        if waiting:
            return render_template("account/signup.html", form=form, errors={"email": waiting.message()}), 429, {
                "Retry-After": str(waiting.seconds)}
        if not errors:
            invites.request_signup(form.get("account_number"), form.get("zip"), email, _link("account.accept"))
            return render_template("account/sent.html", title=_("Check your email"), message=_sent(_("2 days")))
    return render_template("account/signup.html", form=form, errors=errors), (422 if errors else 200)


@bp.route("/reset", methods=["GET", "POST"])
def forgot():
    """Ask for a password-reset email; the answer never says whether the email has a login."""
    form = request.form if request.method == "POST" else {}
    errors = {}
    if request.method == "POST":
        email = (form.get("email") or "").strip()
        if "@" not in email or len(email) > 254:
            errors["email"] = _("Enter your email address, like name@example.com.")
        elif waiting := _mail_throttled("reset"):
            return render_template("account/forgot.html", form=form, errors={"email": waiting.message()}), 429, {
                "Retry-After": str(waiting.seconds)}
        else:
            invites.request_reset(email, _link("account.reset_password"))
            return render_template("account/sent.html", title=_("Check your email"), message=_sent(_("2 hours")))
    return render_template("account/forgot.html", form=form, errors=errors), (422 if errors else 200)


YEAR = 365 * 24 * 3600


def _logo_digest():
    if "logo_digest" not in g:
        g.logo_digest = settings.logo_digest(isp()) if isp().id else ""
    return g.logo_digest


@bp.app_template_global()
def logo_url():
    """The logo's content-hashed URL (cached for a year), or '' when there is none."""
    digest = _logo_digest()
    return url_for("account.logo", digest=digest) if digest else ""


@bp.app_template_global()
def accent_style():
    """The ISP's accent colour as an inline <style>, allowed by its hash (added to the CSP below)."""
    css = settings.accent_css(isp().accent_color)
    return Markup(f"<style>{css}</style>") if css else ""


@bp.after_app_request
def _allow_accent_style(response):
    # Runs after the app's own header hook has set the CSP (after-request hooks run in reverse order).
    csp = response.headers.get("Content-Security-Policy", "")
    css = settings.accent_css(isp().accent_color) if response.mimetype == "text/html" and csp else ""
    if css:
        digest = base64.b64encode(hashlib.sha256(css.encode()).digest()).decode()
        response.headers["Content-Security-Policy"] = csp.replace("style-src ", f"style-src 'sha256-{digest}' ", 1)
    return response


@bp.route("/logo/<digest>")
def logo(digest):
    """The ISP's logo, as uploaded and checked on the Settings page, under a name that changes with it."""
    found = settings.logo(isp()) if isp().id else None
    if found is None or digest != _logo_digest():
        abort(404)
    data, mime = found
    return Response(data, mimetype=mime, headers={"Cache-Control": f"public, max-age={YEAR}, immutable",
                                                  "Content-Security-Policy": "default-src 'none'"})
