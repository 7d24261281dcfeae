"""The customer's Home tab."""
from flask import Blueprint
from flask_login import current_user

from billing import accounts, payments
from views import customer_required, render

bp = Blueprint("home", __name__)


@bp.route("/")
@customer_required
def index():
    """Balance due, next due date, account credit, and any payment in progress."""
    cid = current_user.customer_id
    return render(
        "home/index.html", "home/_home.html",
        summary=accounts.summary(cid), in_flight=payments.resumable(cid),
        customer=current_user.user.customer, labels=payments.LABELS,
    )
