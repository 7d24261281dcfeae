"""Documents a customer keeps: receipts (page, SMS text, print, PDF), printable and PDF invoices and statements.

Every route reaches its record through the logged-in customer (another customer's ref or id is a 404),
the same way the pages they are linked from do.
"""
from flask import Blueprint, Response, abort, render_template
from flask_babel import gettext as _
from flask_login import current_user

from billing import accounts, payments, pdf, receipts
from billing.language import Speaker
from views import customer_required, i18n, isp, render, tab_required
from views.invoices import statement_range

bp = Blueprint("documents", __name__)


def _own_payment(ref):
    payment = payments.for_customer(current_user.customer_id, ref)
    if payment is None or payment.status == payments.CREATED:  # a payment never confirmed has no receipt
        abort(404)
    return payment


def _receipt(ref):
    payment = _own_payment(ref)
    return receipts.receipt(payment, payments.applied_to(payment))


@bp.route("/payments/<ref>/receipt")
@customer_required
def receipt(ref):
    """The payment's receipt, with its confirmation code and its one-SMS text."""
    rec = _receipt(ref)
    return render("documents/receipt.html", "documents/_receipt.html", rec=rec,
                  sms=receipts.sms_text(rec, _speaker()),
                  labels=payments.LABELS)


@bp.route("/payments/<ref>/receipt.txt")
@customer_required
def receipt_text(ref):
    """The receipt as plain text short enough for one SMS."""
    text = receipts.sms_text(_receipt(ref), _speaker())
    return text + "\n", 200, {"Content-Type": "text/plain; charset=utf-8"}


@bp.route("/payments/<ref>/receipt/print")
@customer_required
def receipt_print(ref):
    """The receipt alone, laid out for paper."""
    rec = _receipt(ref)
    return render_template("documents/print.html", printing=True, doc="receipt",
                           title=_("Receipt %(code)s", code=rec.code),
                           rec=rec, sms=receipts.sms_text(rec, _speaker()), labels=payments.LABELS)


def _invoice(invoice_id):
    view = accounts.invoice_view(current_user.customer_id, invoice_id)
    if view is None:
        abort(404)
    return dict(view=view, lines=accounts.invoice_lines(invoice_id), applied=accounts.applied_payments(invoice_id),
                customer=current_user.user.customer)


@bp.route("/invoices/<int:invoice_id>/print")
@customer_required
@tab_required("show_invoices")  # a hidden tab's documents are hidden too
def invoice_print(invoice_id):
    """One invoice alone, laid out for paper."""
    ctx = _invoice(invoice_id)
    title = _("Invoice %(number)s", number=ctx["view"].invoice.number)
    return render_template("documents/print.html", printing=True, doc="invoice", title=title, **ctx)


def _speaker():
    """The PDF's language: the page's (the customer's choice, as views/i18n.py picks it)."""
    return Speaker(i18n.language())


def _pdf(data, name):
    """A PDF download; private, like every page of the portal."""
    return Response(data, mimetype="application/pdf",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


@bp.route("/payments/<ref>/receipt.pdf")
@customer_required
def receipt_pdf(ref):
    """The receipt as a PDF."""
    rec = _receipt(ref)
    return _pdf(pdf.receipt_pdf(rec, payments.LABELS[rec.payment.status], _speaker()),
                pdf.filename("receipt", rec.code))


@bp.route("/invoices/<int:invoice_id>.pdf")
@customer_required
@tab_required("show_invoices")  # a hidden tab's documents are hidden too
def invoice_pdf(invoice_id):
    """One invoice as a PDF."""
    ctx = _invoice(invoice_id)
    data = pdf.invoice_pdf(isp(), ctx["customer"], ctx["view"], ctx["lines"], ctx["applied"], _speaker())
    return _pdf(data, pdf.filename("invoice", ctx["view"].invoice.number))


def _statement():
    start, end, errors = statement_range()
    if errors:  # the statement page shows these next to its fields; its links always carry valid dates
        abort(400, " ".join(errors.values()))
    return dict(statement=accounts.statement(current_user.customer_id, start, end),
                customer=current_user.user.customer, start=start.isoformat(), end=end.isoformat())


@bp.route("/statement/print")
@customer_required
@tab_required("show_statement")  # a hidden tab's documents are hidden too
def statement_print():
    """The statement for the chosen dates alone, laid out for paper."""
    ctx = _statement()
    return render_template("documents/print.html", printing=True, doc="statement", title=_("Account statement"),
                           **ctx)


@bp.route("/statement.pdf")
@customer_required
@tab_required("show_statement")  # a hidden tab's documents are hidden too
def statement_pdf():
    """The statement for the chosen dates as a PDF."""
    ctx = _statement()
    return _pdf(pdf.statement_pdf(isp(), ctx["customer"], ctx["statement"], _speaker()),
                pdf.filename("statement", f"{ctx['start']}-to-{ctx['end']}"))
