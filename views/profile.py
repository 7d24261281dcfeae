"""The signed-in person's own page: their recent logins and a new password (issue 16 adds a second factor)."""
from flask import Blueprint, render_template, request
from flask_login import current_user, login_required

from billing import identity, invites, throttle

bp = Blueprint("profile", __name__)


def _page(status=200, errors=None, notice=""):
    return render_template("profile/index.html", logins=identity.recent_logins(current_user.user.id),
                           user=current_user.user, errors=errors or {}, notice=notice), status


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
    return _page(notice="Your password was changed. Every other place you were logged in has been logged out.")
