"""The Invoices tab, the invoice/statement view, and the account statement."""
import datetime as dt

from flask import Blueprint, abort, current_app, request
from flask_login import current_user

from billing import accounts, bounds
from views import customer_required, page_number, render, tab_required

bp = Blueprint("invoices", __name__)


@bp.route("/invoices")
@customer_required
@tab_required("show_invoices")
def index():
    """Every invoice, newest first, a page at a time."""
    cid = current_user.customer_id
    return render("invoices/index.html", "invoices/_list.html",
                  views=accounts.invoice_page(cid, page_number(), current_app.config["PER_PAGE"]))


@bp.route("/invoices/<int:invoice_id>")
@customer_required
@tab_required("show_invoices")
def detail(invoice_id):
    """One invoice: lines, payments applied, balance. Printable."""
    view = accounts.invoice_view(current_user.customer_id, invoice_id)
    if view is None:
        abort(404)
    return render(
        "invoices/detail.html", "invoices/_detail.html",
        view=view, lines=accounts.invoice_lines(invoice_id), applied=accounts.applied_payments(invoice_id),
        customer=current_user.user.customer,
    )


def _date_arg(name, default):
    raw = request.args.get(name, "")
    if not raw:
        return default, None
    try:
        return bounds.parse_date(raw), None
    except bounds.BoundsError as e:
        return default, str(e)


def statement_range():
    """(start, end, errors) of the statement's dates from the query string; errors by field."""
    today = accounts.today()
    start, start_err = _date_arg("start", today.replace(day=1) - dt.timedelta(days=180))
    end, end_err = _date_arg("end", today)
    errors = {k: v for k, v in (("start", start_err), ("end", end_err)) if v}
    if not errors and start > end:
        errors["end"] = "The end date must be on or after the start date."
    if not errors and (end - start).days > 3660:
        errors["end"] = "Choose a range of at most ten years."
    return start, end, errors


@bp.route("/statement")
@customer_required
@tab_required("show_statement")
def statement():
    """Account activity over a date range with a running balance."""
    start, end, errors = statement_range()
    unreadable = {name for name in ("start", "end") if _date_arg(name, None)[1]}
    stmt = None if errors else accounts.statement(current_user.customer_id, start, end)
    return render(
        "invoices/statement.html", "invoices/_statement.html", status=422 if errors else 200,
        # A date input holds only a valid date: an unreadable one is not echoed back (its error says why).
        statement=stmt, errors=errors, start="" if "start" in unreadable else start.isoformat(),
        end="" if "end" in unreadable else end.isoformat(), customer=current_user.user.customer,
    )
