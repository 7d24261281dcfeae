"""Log in and log out."""
from flask import Blueprint, redirect, render_template, request, session, url_for
from flask_login import current_user, login_required, login_user, logout_user

from billing import identity
from views import PortalUser
from views.edge import local_url

bp = Blueprint("auth", __name__)


def _safe_next(target):
    """Only a page of this portal may be a post-login destination."""
    return local_url(target) or url_for("home.index")


@bp.route("/login", methods=["GET", "POST"])
def login():
    """Show the login form, or log in."""
    if current_user.is_authenticated and request.method == "GET":
        return redirect(url_for("staff.index" if current_user.is_staff else "home.index"))
    error = None
    email = request.form.get("email", "")
    if request.method == "POST":
        user = identity.authenticate(email, request.form.get("password", ""))
        if user is not None:
            session.clear()  # a new session for every login: no fixation
            token = identity.open_session(user)
            login_user(PortalUser(token, user))
            if user.role == "staff" and not request.args.get("next"):
                return redirect(url_for("staff.index"))
            return redirect(_safe_next(request.args.get("next")))
        error = "That email and password do not match an account."
    return render_template("auth/login.html", error=error, email=email), (401 if error else 200)


@bp.route("/logout", methods=["POST"])
@login_required
def logout():
    """End this login everywhere its cookie might be replayed."""
    identity.close_session(current_user.token)
    logout_user()
    session.clear()
    return redirect(url_for("auth.login"))
