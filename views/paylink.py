"""Pay-by-link: the emailed invoice's signed link opens a pay page for that one invoice, without logging in.

The page shows only that invoice's number, dates and balance, pays only it,
and uses the same payment state machine (billing.payments) as the portal.
"""
from flask import Blueprint, abort, current_app, redirect, render_template, request, url_for

from billing import accounts, ledger, money, paylinks, payments, settings
from db.models import Isp, Payment
from views import processor

bp = Blueprint("paylink", __name__, url_prefix="/paylink")


def _invoice(token):
    try:
        return paylinks.invoice_for(current_app.config["SECRET_KEY"], token)
    except paylinks.LinkError as e:
        abort(_gone(str(e)))


def _gone(message):
    return current_app.response_class(render_template("paylink/error.html", message=message), 410)


def _view(inv):
    return accounts.invoice_view(inv.customer_id, inv.id)


def _methods():
    return settings.offered_method_types(Isp.current() or Isp(name=""), payments.METHOD_TYPES)


def _due_now(view):
    return max(view.balance_cents - view.pending_cents, 0)


@bp.route("/<token>", methods=["GET", "POST"])
def show(token):
    """The invoice's balance and the payment type; Continue starts a payment of that balance."""
    inv = _invoice(token)
    view = _view(inv)
    methods = _methods()
    errors = {}
    method_type = request.form.get("method_type") or next(iter(methods), "card")
    key = request.form.get("key") or payments.new_idempotency_key()
    if request.method == "POST" and _due_now(view):
        if method_type not in methods:
            errors["method_type"] = "Choose a payment type."
        else:
            try:
                payment = payments.start_payment(
                    inv.customer_id, amount_text=money.cents_to_input(_due_now(view)), method_type=method_type,
                    idempotency_key=key, invoice_id=inv.id, processor_name=processor().name,
                    actor=f"paylink:{inv.id}")
            except payments.FormErrors as e:
                errors = e.errors
            else:
                return redirect(url_for("paylink.payment", token=token, ref=payment.ref), code=303)
    return render_template("paylink/show.html", token=token, view=view, due=_due_now(view), methods=methods,
                           method_type=method_type, key=key, errors=errors,
                           expires=paylinks.expires_at(token)), (422 if errors else 200)


def _own(inv, ref):
    payment = Payment.get_or_none((Payment.ref == ref) & (Payment.customer == inv.customer_id)
                                  & (Payment.target_invoice == inv.id))
    if payment is None:
        abort(404)
    return payment


def _entry_url(token, payment):
    state = payments.open_intent(payment, processor())
    if processor().name != "sandbox":
        return None
    return url_for("sandbox.entry", intent_id=state.id, secret=state.client_secret, mode="page",
                   back=url_for("paylink.payment", token=token, ref=payment.ref))


@bp.route("/<token>/<ref>", methods=["GET", "POST"])
def payment(token, ref):
    """Billing Information, then Make Payment hands over to the processor's page; then the result."""
    inv = _invoice(token)
    p = payments.sync(_own(inv, ref), processor())
    errors, form = {}, request.form
    if request.method == "POST" and p.status in (payments.CREATED, payments.AWAITING_DETAILS):
        try:
            p = payments.confirm_billing(p, form, processor(), actor=f"paylink:{inv.id}")
        except payments.FormErrors as e:
            errors = e.errors
        else:
            if p.status == payments.AWAITING_DETAILS:
                url = _entry_url(token, p)
                if url:
                    return redirect(url, code=303)
            return redirect(url_for("paylink.payment", token=token, ref=p.ref), code=303)
    entry = _entry_url(token, p) if p.status == payments.AWAITING_DETAILS else None
    return render_template("paylink/payment.html", token=token, view=_view(inv), payment=p, errors=errors,
                           form=form if errors else {}, entry_url=entry, labels=payments.LABELS,
                           fields=payments.BILLING_FIELDS, method_label=payments.METHOD_TYPES[p.method_type],
                           status_of=ledger.invoice_status), (422 if errors else 200)
