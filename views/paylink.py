"""Pay-by-link: the emailed invoice's signed link opens a pay page for that one invoice, without logging in.

The page shows only that invoice's number, dates and balance, pays only it,
and uses the same payment state machine (billing.payments) as the portal.
Make Payment goes to the processor's window (views/windows.py), in this tab, reached
through the link's token rather than a login, for a payment started through this link only.
"""
from flask import Blueprint, abort, current_app, redirect, render_template, request, url_for
from flask_babel import gettext as _

from billing import accounts, ledger, money, paylinks, payments, settings
from billing.processors import ProcessorError
from db.models import Isp
from views import processor, windows
from views.i18n import say

bp = Blueprint("paylink", __name__, url_prefix="/paylink")


def invoice_or_gone(token):
    """The invoice a pay link is for; 410 with the reason for a link that stopped working."""
    try:
        return paylinks.invoice_for(paylinks.keys(current_app.config), token)
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
    inv = invoice_or_gone(token)
    view = _view(inv)
    methods = _methods()
    errors = {}
    method_type = request.form.get("method_type") or next(iter(methods), "card")
    key = request.form.get("key") or payments.new_idempotency_key()
    due = _due_now(view)
    isp = Isp.current()
    low, high = paylinks.amount_rules(isp, due)
    amount = request.form.get("amount") if low < high else None  # part of the balance, when the ISP allows it
    if request.method == "POST" and due:
        if method_type not in methods:
            errors["method_type"] = _("Choose a payment type.")
        try:
            cents = paylinks.check_amount(isp, due, amount) if amount is not None else due
        except payments.FormErrors as e:
            errors.update(e.errors)
        if not errors:
            try:
                payment = payments.start_payment(
                    inv.customer_id, amount_text=money.cents_to_input(cents), method_type=method_type,
                    idempotency_key=key, invoice_id=inv.id, processor_name=processor().name,
                    actor=paylinks.actor(inv), origin=paylinks.ORIGIN)
            except payments.FormErrors as e:
                errors = e.errors
            else:
                return redirect(url_for("paylink.payment", token=token, ref=payment.ref), code=303)
    return render_template("paylink/show.html", token=token, view=view, due=due, methods=methods,
                           method_type=method_type, key=key, errors=errors, partial=low < high, low=low,
                           amount=amount if amount is not None else money.cents_to_input(due),
                           expires=paylinks.expires_at(paylinks.keys(current_app.config), token)), (422 if errors else 200)


def own_payment(inv, ref):
    """The payment started through this invoice's link; 404 for any other."""
    payment = paylinks.payment_for(inv, ref)
    if payment is None:
        abort(404)
    return payment


def _entry_url(token, payment):
    """Where Make Payment goes: the processor's window for this payment, in this tab, coming back here."""
    state = payments.open_intent(payment, processor())
    back = url_for("paylink.payment", token=token, ref=payment.ref)
    return windows.payment_windows(payment, state, back, paylink_token=token)["page"]


def _synced(payment):
    """The payment refreshed from the processor; our stored state when the processor is unreachable."""
    try:
        return payments.sync(payment, processor())
    except ProcessorError as e:
        current_app.logger.warning("processor unreachable while syncing %s: %s", payment.ref, e)
        return payment


@bp.route("/<token>/<ref>", methods=["GET", "POST"])
def payment(token, ref):
    """Billing Information, then Make Payment hands over to the processor's page; then the result."""
    inv = invoice_or_gone(token)
    p = _synced(own_payment(inv, ref))
    errors, form = {}, request.form
    if request.method == "POST" and p.status in (payments.CREATED, payments.AWAITING_DETAILS):
        try:
            p = payments.confirm_billing(p, form, processor(), actor=paylinks.actor(inv),
                                         billing=paylinks.billing_for(inv.customer, form, processor(), p.method_type))
        except payments.FormErrors as e:
            errors = e.errors
        except payments.NoLongerFits as e:  # nothing reserved or charged; the link's page shows what is due now
            errors = {"form": _("%(message)s Nothing was charged. Go back to the invoice to pay what is due now.",
                                message=say(e.message))}
            p = own_payment(inv, ref)
        except ProcessorError as e:
            current_app.logger.warning("processor unreachable at Make Payment for %s: %s", p.ref, e)
            errors = {"form": _("We could not reach the payment processor just now. Nothing has been charged. "
                                "Please try again in a minute.")}
            p = own_payment(inv, ref)
        else:
            if p.status == payments.AWAITING_DETAILS:
                try:
                    return redirect(_entry_url(token, p), code=303)
                except ProcessorError as e:  # the payment page says so and offers to try again
                    current_app.logger.warning("processor unreachable for %s: %s", p.ref, e)
            return redirect(url_for("paylink.payment", token=token, ref=p.ref), code=303)
    entry = None
    if p.status == payments.AWAITING_DETAILS:
        try:
            entry = _entry_url(token, p)
        except ProcessorError as e:
            current_app.logger.warning("processor unreachable for %s: %s", p.ref, e)
    return _payment_page(token, inv, p, errors, form, entry)


def _payment_page(token, inv, p, errors, form, entry=None, verify=None):
    return render_template("paylink/payment.html", token=token, view=_view(inv), payment=p, errors=errors,
                           verify=verify or {"form": {}, "errors": {}}, test_mode=not processor().live,
                           form=form if errors else {}, entry_url=entry, labels=payments.LABELS,
                           asked=paylinks.asked_fields(processor(), p.method_type), receipt_to=paylinks.masked_email(
                               inv.customer.email), method_label=payments.METHOD_TYPES[p.method_type],
                           status_of=ledger.invoice_status), (422 if errors else 200)


@bp.route("/<token>/<ref>/verify", methods=["POST"])
def verify(token, ref):
    """The deposits typed on the link's payment page: checked to still fit, then verified (the debit starts)."""
    inv = invoice_or_gone(token)
    p = own_payment(inv, ref)
    kwargs, errors = payments.verification_input(p, request.form)
    if not errors and p.status == payments.AWAITING_VERIFICATION:
        try:
            p, errors, _problem = payments.verify_bank(p.id, processor(), actor=paylinks.actor(inv), **kwargs)
        except ProcessorError as e:
            current_app.logger.warning("processor unreachable verifying %s: %s", ref, e)
            errors = {"form": _("We could not reach the payment processor just now. Nothing has been charged. "
                                "Please try again in a minute.")}
    if not errors:
        return redirect(url_for("paylink.payment", token=token, ref=ref), code=303)
    body, _code = _payment_page(token, inv, p, {}, {}, verify={"form": request.form, "errors": errors})
    return body, 422
