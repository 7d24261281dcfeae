"""The signed-in person's own page: recent logins, a new password, a new email address, a second factor."""
from flask import Blueprint, current_app, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required

from billing import email_change, identity, invites, throttle

bp = Blueprint("profile", __name__)


def _page(status=200, errors=None, notice="", form=None):
    user = current_user.user
    return render_template("profile/index.html", logins=identity.recent_logins(user.id), user=user,
                           errors=errors or {}, notice=notice, form=form or {},
                           pending_email=email_change.pending(user.id)), status


def _confirm_link(token):
    return current_app.config["PUBLIC_URL"].rstrip("/") + url_for("profile.confirm_email", token=token)


@bp.route("/profile")
@login_required
def index():
    """Recent successful and failed logins to this account, with address and browser."""
    return _page()


@bp.route("/profile/password", methods=["POST"])
@login_required
def change_password():
    """Change the password (the current one is asked first); every other session of this login ends."""
    f = request.form
    try:
        invites.change_password(current_user.user, f.get("current"), f.get("password"), f.get("confirm"),
                                keep_token=current_user.token, ip=request.remote_addr or "")
    except invites.PasswordError as e:
        return _page(422, e.errors)
    except throttle.Throttled as e:
        return _page(429, {"current": e.message()})
    return _page(notice=_("Your password was changed. Every other place you were logged in has been logged out."))


@bp.route("/profile/email", methods=["POST"])
@login_required
def change_email():
    """Ask for a new email address: the password first, then a link to the new address switches it."""
    f = request.form
    try:
        email_change.request_change(current_user.user, f.get("email_password"), f.get("email"), _confirm_link,
                                    ip=request.remote_addr or "")
    except invites.PasswordError as e:
        return _page(422, {("email_password" if k == "password" else k): v for k, v in e.errors.items()},
                     form={"email": (f.get("email") or "")[:254]})
    except throttle.Throttled as e:
        return _page(429, {"email_password": e.message()}, form={"email": (f.get("email") or "")[:254]})
    return _page(notice=_("We sent a link to your new address. Your email changes when you follow it; "
                          "until then, keep logging in with the current one."))


@bp.route("/email-change/<token>", methods=["GET", "POST"])
def confirm_email(token):
    """The link sent to the new address: a button to confirm (a mail scanner's GET changes nothing)."""
    try:
        row = email_change.find_link(token)
        if request.method == "POST":
            user = email_change.confirm_change(token, ip=request.remote_addr or "")
            return render_template("profile/email_changed.html", email=user.email)
    except invites.TokenError as e:
        return render_template("account/link_error.html", message=str(e)), 410
    return render_template("profile/confirm_email.html", email=row.email)
