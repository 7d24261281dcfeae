"""Two-factor login: the code step after the password, and turning it on or off from the profile.

After a right password, a login with two-factor on is not a session yet: the user id waits in the signed
session cookie for at most ``PENDING_SECONDS`` while the code is asked for, and only a right code (or an
unused recovery code) opens the session (``views.auth.begin_session``).
"""
import time

from flask import Blueprint, abort, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required

from billing import identity, throttle, twofactor
from db.models import User
from views import isp

bp = Blueprint("twofactor", __name__)
PENDING_KEY = "2fa_pending"
PENDING_SECONDS = 300


@bp.app_template_global()
def two_factor_on(user_id):
    """True when this login uses a second factor (for the profile page)."""
    return twofactor.enabled(user_id)


def wants_code(user):
    """True when this login must pass a second factor before it becomes a session."""
    return twofactor.enabled(user.id)


def staff_must_enrol(user):
    """True for a staff login without a second factor while the ISP requires one for staff."""
    return user.role == "staff" and bool(isp().require_staff_2fa) and not twofactor.enabled(user.id)


def ask_for_code(user, target):
    """Park the password-checked login and send the browser to the code step."""
    session.clear()
    session[PENDING_KEY] = {"uid": user.id, "at": int(time.time()), "next": target or ""}
    return redirect(url_for("twofactor.code"), code=303)


def _pending_user():
    pending = session.get(PENDING_KEY)
    if not pending or int(time.time()) - int(pending.get("at", 0)) > PENDING_SECONDS:
        session.pop(PENDING_KEY, None)
        return None, None
    user = User.get_or_none(User.id == pending["uid"])
    if user is None or getattr(user, "disabled_at", None) is not None:
        return None, None
    return user, pending.get("next") or None


@bp.route("/login/code", methods=["GET", "POST"])
def code():
    """The second step of a login: the 6-digit code from the app, or a recovery code."""
    from views.auth import begin_session, known_device_user

    user, target = _pending_user()
    if user is None:
        return redirect(url_for("auth.login"), code=303)
    error, status, headers = None, 200, {}
    if request.method == "POST":
        try:
            ok = twofactor.verify(user.id, request.form.get("code", ""), ip=request.remote_addr or "",
                                  known_device_user=known_device_user())
        except twofactor.Throttled as e:
            error, status, headers = e.message(), 429, {"Retry-After": str(e.seconds)}
        else:
            if ok:
                return begin_session(user, target)
            error, status = _("That code is not right, or it was already used. Enter the newest code."), 401
    return render_template("auth/code.html", error=error), status, headers


# --- On the profile: turning it on and off. ---------------------------------------------------------------


@bp.route("/profile/two-factor")
@login_required
def manage():
    """Two-factor login: on or off, and the steps to turn it on."""
    uid = current_user.user.id
    return render_template("profile/two_factor.html", on=twofactor.enabled(uid), setup=twofactor.pending(uid),
                           left=twofactor.recovery_left(uid), errors={}, codes=None)


@bp.route("/profile/two-factor/start", methods=["POST"])
@login_required
def start():
    """A fresh secret and its QR code, to scan with an authenticator app."""
    uid = current_user.user.id
    if twofactor.enabled(uid):
        return redirect(url_for("twofactor.manage"), code=303)
    twofactor.begin(uid)
    return redirect(url_for("twofactor.manage"), code=303)


@bp.route("/profile/two-factor/confirm", methods=["POST"])
@login_required
def confirm():
    """The first code from the app turns it on; the recovery codes are shown this once."""
    uid = current_user.user.id
    setup = twofactor.pending(uid)
    if setup is None:
        return redirect(url_for("twofactor.manage"), code=303)
    from views.auth import known_device_user

    try:
        codes = twofactor.confirm(uid, request.form.get("code", ""), ip=request.remote_addr or "",
                                  known_device_user=known_device_user())
    except twofactor.Throttled as e:
        codes, error = None, e.message()
    else:
        error = _("That code is not right. Enter the 6-digit code your app shows now.")
    if not codes:
        return render_template("profile/two_factor.html", on=False, setup=setup, left=0, codes=None,
                               errors={"code": error}), 422
    return render_template("profile/two_factor.html", on=True, setup=None, left=len(codes), codes=codes, errors={})


@bp.route("/profile/two-factor/recovery", methods=["POST"])
@login_required
def recovery():
    """New recovery codes (after the password again); the old ones stop working."""
    user = current_user.user
    if not twofactor.enabled(user.id):
        abort(404)
    problem = _password_problem(user)
    if problem:
        return _password_error(on=True, message=problem)
    codes = twofactor.regenerate_recovery_codes(user.id)
    return render_template("profile/two_factor.html", on=True, setup=None, left=len(codes), codes=codes, errors={})


@bp.route("/profile/two-factor/disable", methods=["POST"])
@login_required
def disable():
    """Turn it off (after the password again); not allowed for staff while the ISP requires it."""
    user = current_user.user
    if not twofactor.enabled(user.id):
        return redirect(url_for("twofactor.manage"), code=303)
    if user.role == "staff" and isp().require_staff_2fa:
        return render_template("profile/two_factor.html", on=True, setup=None, left=twofactor.recovery_left(user.id),
                               codes=None, errors={"password": _("Your ISP requires a second factor for staff.")}), 422
    problem = _password_problem(user)
    if problem:
        return _password_error(on=True, message=problem)
    twofactor.disable(user.id, actor=f"{user.role}:{user.id}")
    return redirect(url_for("twofactor.manage"), code=303)


def _password_problem(user):
    """None when the password typed again is the user's, else what to say (throttled like a login)."""
    try:
        ok = identity.check_password(user, request.form.get("password", ""), ip=request.remote_addr or "")
    except throttle.Throttled as e:
        return e.message()
    return None if ok else _("That is not your password.")


def _password_error(on, message):
    uid = current_user.user.id
    return render_template("profile/two_factor.html", on=on, setup=None, left=twofactor.recovery_left(uid),
                           codes=None, errors={"password": message}), 422
