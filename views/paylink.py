"""Pay-by-link: the emailed invoice's signed link opens a pay page for that one invoice, without logging in.

The page shows only that invoice's number, dates and balance, pays only it,
and uses the same payment state machine (billing.payments) as the portal.
With the sandbox, Make Payment goes to the sandbox's page; with Stripe, to Stripe's
payment window (views/stripe_pay.py), reached here through the link's token rather
than a login, for a payment started through this link only.
"""
from flask import Blueprint, abort, current_app, jsonify, redirect, render_template, request, url_for

from billing import accounts, ledger, money, paylinks, payments, settings
from billing.processors import ProcessorError
from db.models import Isp
from views import processor, stripe_pay

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
    due = _due_now(view)
    isp = Isp.current()
    low, high = paylinks.amount_rules(isp, due)
    amount = request.form.get("amount") if low < high else None  # part of the balance, when the ISP allows it
    if request.method == "POST" and due:
        if method_type not in methods:
            errors["method_type"] = "Choose a payment type."
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
                           expires=paylinks.expires_at(token)), (422 if errors else 200)


def _own(inv, ref):
    payment = paylinks.payment_for(inv, ref)
    if payment is None:
        abort(404)
    return payment


def _entry_url(token, payment):
    """Where Make Payment goes: the processor's page for this payment, in this tab, coming back here."""
    if processor().name == "stripe":  # the window opens the intent itself
        return url_for("paylink.stripe_window", token=token, ref=payment.ref, mode="page")
    if processor().name != "sandbox":
        return None
    state = payments.open_intent(payment, processor())
    return url_for("sandbox.entry", intent_id=state.id, secret=state.client_secret, mode="page",
                   back=url_for("paylink.payment", token=token, ref=payment.ref))


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
    inv = _invoice(token)
    p = _synced(_own(inv, ref))
    errors, form = {}, request.form
    if request.method == "POST" and p.status in (payments.CREATED, payments.AWAITING_DETAILS):
        try:
            p = payments.confirm_billing(p, form, processor(), actor=paylinks.actor(inv),
                                         billing=paylinks.billing_for(inv.customer, form, p.processor, p.method_type))
        except payments.FormErrors as e:
            errors = e.errors
        except payments.NoLongerFits as e:  # nothing reserved or charged; the link's page shows what is due now
            errors = {"form": f"{e.message} Nothing was charged. Go back to the invoice to pay what is due now."}
            p = _own(inv, ref)
        except ProcessorError as e:
            current_app.logger.warning("processor unreachable at Make Payment for %s: %s", p.ref, e)
            errors = {"form": "We could not reach the payment processor just now. Nothing has been charged. "
                              "Please try again in a minute."}
            p = _own(inv, ref)
        else:
            if p.status == payments.AWAITING_DETAILS:
                url = _entry_url(token, p)
                if url:
                    return redirect(url, code=303)
            return redirect(url_for("paylink.payment", token=token, ref=p.ref), code=303)
    entry = _entry_url(token, p) if p.status == payments.AWAITING_DETAILS else None
    return render_template("paylink/payment.html", token=token, view=_view(inv), payment=p, errors=errors,
                           form=form if errors else {}, entry_url=entry, labels=payments.LABELS,
                           asked=paylinks.asked_fields(p.processor, p.method_type), receipt_to=paylinks.masked_email(
                               inv.customer.email), method_label=payments.METHOD_TYPES[p.method_type],
                           status_of=ledger.invoice_status), (422 if errors else 200)


# --- Stripe's payment window and its calls, for a payment started through this link. ---------------


def _stripe_payment(token, ref):
    """Stripe and the payment started through this link (404, or 410 for a link that stopped working)."""
    proc = stripe_pay.stripe_processor()
    return proc, _own(_invoice(token), ref)


def _calls(token, ref):
    # No "saved": a pay link never uses (or keeps) a saved method.
    return {call: url_for(f"paylink.stripe_{call}", token=token, ref=ref) for call in ("confirm", "sync")}


@bp.route("/<token>/<ref>/window")
def stripe_window(token, ref):
    """Stripe's card or bank entry for this link's payment; the result shows on the link's payment page."""
    proc, p = _stripe_payment(token, ref)
    # Only what the payer typed on the link's page (name and email for a bank debit) goes into the window; the
    # rest of the billing record comes from the customer's file and never reaches a page the link opens.
    # Stripe's Element asks for whatever else it needs (a card's ZIP, say).
    typed = {"name": p.billing_name, "email": p.billing_email} if p.method_type == "ach" else {}
    return stripe_pay.window_page(proc, p, url_for("paylink.payment", token=token, ref=p.ref), _calls(token, ref),
                                  billing=typed)


def _call(token, ref):
    """For the window's JSON calls: a link that stopped working answers JSON the window can show."""
    proc = stripe_pay.stripe_processor()
    try:
        inv = paylinks.invoice_for(current_app.config["SECRET_KEY"], token)
    except paylinks.LinkError as e:
        answer = jsonify(status="error", done=False, message=str(e))
        answer.status_code = 410
        abort(answer)
    return proc, _own(inv, ref), paylinks.actor(inv)


@bp.route("/<token>/<ref>/stripe/confirm", methods=["POST"])
def stripe_confirm(token, ref):
    """The window's Pay: the Payment Element's ConfirmationToken in, this server confirms with Stripe."""
    return stripe_pay.pay_with_details(*_call(token, ref))


@bp.route("/<token>/<ref>/stripe/sync", methods=["POST"])
def stripe_sync(token, ref):
    """After the bank's check in the window: ask Stripe where the payment is now."""
    return stripe_pay.sync_payment(*_call(token, ref))
