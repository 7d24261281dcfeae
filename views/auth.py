"""Log in and log out.

A password that is accepted becomes a session in one place, ``begin_session``: a second factor (issue 16)
slots in between ``identity.password_login`` and it.
"""
from flask import Blueprint, current_app, jsonify, redirect, render_template, request, session, url_for
from flask_login import current_user, login_required, login_user, logout_user
from itsdangerous import BadSignature, URLSafeTimedSerializer

from billing import identity, throttle
from views import PortalUser
from views.edge import local_url

bp = Blueprint("auth", __name__)
KNOWN_DEVICE_COOKIE = "known_device"
KNOWN_DEVICE_DAYS = 180


def _known_devices():
    return URLSafeTimedSerializer([*(current_app.config["SECRET_KEY_FALLBACKS"] or ()), current_app.config["SECRET_KEY"]],
                                  salt="known-device")


def known_device_user():
    """The user id this browser last logged in as (a signed cookie set at login), or None."""
    raw = request.cookies.get(KNOWN_DEVICE_COOKIE)
    if not raw:
        return None
    try:
        return int(_known_devices().loads(raw, max_age=KNOWN_DEVICE_DAYS * 86400))
    except (BadSignature, ValueError, TypeError):
        return None


def landing(user, target):
    """Where a user goes after logging in: ``next`` if it is a page of their side of the portal, else home."""
    target = local_url(target)
    staff_page = bool(target) and target.startswith("/staff/")
    if user.role == "staff":
        return target if staff_page else url_for("staff.index")
    return target if target and not staff_page else url_for("home.index")


def begin_session(user, target=None):
    """The password (and any later factor) was accepted: start the session and send the user on."""
    session.clear()  # a new session for every login: no fixation
    token = identity.open_session(user, ip=request.remote_addr or "", user_agent=request.user_agent.string)
    login_user(PortalUser(token, user))
    response = redirect(landing(user, target))
    response.set_cookie(KNOWN_DEVICE_COOKIE, _known_devices().dumps(user.id), max_age=KNOWN_DEVICE_DAYS * 86400,
                        httponly=True, samesite="Lax", secure=current_app.config["SESSION_COOKIE_SECURE"])
    return response


@bp.route("/login", methods=["GET", "POST"])
def login():
    """Show the login form, or log in."""
    if current_user.is_authenticated and request.method == "GET":
        return redirect(url_for("staff.index" if current_user.is_staff else "home.index"))
    error, status, headers = None, 200, {}
    email = request.form.get("email", "")
    if request.method == "POST":
        try:
            user = identity.password_login(email, request.form.get("password", ""), ip=request.remote_addr or "",
                                           user_agent=request.user_agent.string,
                                           known_device_user=known_device_user())
        except throttle.Throttled as e:
            error, status, headers = e.message(), 429, {"Retry-After": str(e.seconds)}
        else:
            if user is not None:
                from views import twofactor

                if twofactor.wants_code(user):  # the password alone opens no session: the code step first
                    return twofactor.ask_for_code(user, request.args.get("next"))
                return begin_session(user, request.args.get("next"))
            error, status = "That email and password do not match an account.", 401
    return render_template("auth/login.html", error=error, email=email), status, headers


@bp.route("/session/stay", methods=["POST"])
@login_required
def stay():
    """"Stay signed in": restart the idle timeout (JSON for the page's script, a redirect without it)."""
    seconds = identity.stay_signed_in(current_user.token)
    if request.accept_mimetypes.best == "application/json":
        return jsonify(seconds=identity.warning_seconds() if seconds else 0)
    return redirect(url_for("staff.index" if current_user.is_staff else "home.index"), code=303)


@bp.app_template_global()
def session_warning_seconds():
    """What the session-timeout warning counts down from on this page."""
    return int(identity.warning_seconds() * 10) / 10


@bp.route("/logout", methods=["POST"])
@login_required
def logout():
    """End this login everywhere its cookie might be replayed."""
    identity.close_session(current_user.token)
    logout_user()
    session.clear()
    return redirect(url_for("auth.login"))
