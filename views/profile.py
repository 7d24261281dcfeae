"""The signed-in person's own page: their recent logins (and, later, their password, email and second factor)."""
from flask import Blueprint, render_template
from flask_login import current_user, login_required

from billing import identity

bp = Blueprint("profile", __name__)


@bp.route("/profile")
@login_required
def index():
    """Recent successful and failed logins to this account, with address and browser."""
    return render_template("profile/index.html", logins=identity.recent_logins(current_user.user.id),
                           user=current_user.user)
