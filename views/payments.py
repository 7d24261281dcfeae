"""The Payments tab and the pay flow: method and amount, billing, payment window, result."""
from flask import Blueprint, abort, current_app, redirect, render_template, request, url_for
from flask_login import current_user

from billing import accounts, autopay, methods, money, payments
from billing.processors import ProcessorError
from db.models import PaymentMethod
from views import customer_required, i18n, page_number, pay_start_url, processor, render, tab_required, wants_fragment, windows

bp = Blueprint("payments", __name__)

FINAL = (payments.SUCCEEDED, payments.FAILED, payments.CANCELED)
PAYMENTS_TAB = "X-Payments-Tab"  # sent by htmx from inside the Payments tab (templates/payments/_index.html)
UNREACHABLE = ("We could not reach the payment processor just now. Nothing has been charged. "
               "Please try again in a minute.")


def _synced(payment, force=True):
    """The payment refreshed from the processor (``force`` False: only when its backoff allows, for polling);
    our stored state when the processor is unreachable."""
    try:
        return payments.sync(payment, processor(), force=force)
    except ProcessorError as e:
        current_app.logger.warning("processor unreachable while syncing %s: %s", payment.ref, e)
        return payment


def _method_ctx(cid, invoice_id=None, form=None, errors=None):
    """What the "Choose your payment method" step needs."""
    form = form or {}
    view = accounts.invoice_view(cid, invoice_id) if invoice_id else None
    amount = form.get("amount")
    if amount is None:
        amount = money.cents_to_input(payments.suggested_amount(cid, invoice_id))
    saved = list(PaymentMethod.active_for(cid))
    offered = payments.offered_types()
    # The customer's default method comes preselected, when the ISP still offers its type.
    default = next((m for m in saved if m.id == methods.default_id(cid) and m.method_type in offered), None)
    return dict(
        invoice=view, errors=errors or {}, amount=amount,
        method_type=form.get("method_type", default.method_type if default else "card"),
        # After a clash (a saved card chosen with ACH, say) nothing stays chosen that cannot pay.
        saved_method="new" if "saved_method" in (errors or {}) else form.get(
            "saved_method", str(default.id) if default else "new"),
        key=form.get("key") or payments.new_idempotency_key(),
        saved=saved, method_types=offered, summary=accounts.summary(cid), default_id=default.id if default else None,
    )


@bp.route("/payments")
@customer_required
@tab_required("show_payments")
def index():
    """Payment history, payments in progress, and paying toward the total balance."""
    cid = current_user.customer_id
    return render(
        "payments/index.html", "payments/_index.html",
        history=payments.history(cid, page_number()), in_flight=payments.resumable(cid), labels=payments.LABELS,
        **_method_ctx(cid),
    )


@bp.route("/invoices/<int:invoice_id>/pay")
@customer_required
def pay_invoice(invoice_id):
    """Pay Now on one invoice: the same method step, prefilled with its balance."""
    cid = current_user.customer_id
    if accounts.invoice_view(cid, invoice_id) is None:
        abort(404)
    return render("payments/method.html", "payments/_pay_now.html", **_method_ctx(cid, invoice_id))


@bp.route("/pay", methods=["POST"])
@customer_required
def start():
    """Continue: record the method and amount, then show Billing Information."""
    cid = current_user.customer_id
    form = request.form
    invoice_id = payments._int_or_none(form.get("invoice_id")) if form.get("invoice_id") else None
    if form.get("invoice_id") and invoice_id is None:
        abort(404)
    try:
        payment = payments.start_payment(
            cid, amount_text=form.get("amount"), method_type=form.get("method_type"),
            idempotency_key=form.get("key"), invoice_id=invoice_id, saved_method_id=form.get("saved_method"),
            processor_name=processor().name, actor=f"customer:{current_user.user.id}",
        )
    except payments.FormErrors as e:
        if invoice_id is not None and accounts.invoice_view(cid, invoice_id) is None:
            abort(404)
        return render("payments/method.html", "payments/_method.html", status=422,
                      **_method_ctx(cid, invoice_id, form, e.errors))
    return _goto(payment)


def _goto(payment):
    """Show the payment's current step: a fragment for htmx, a redirect otherwise."""
    url = url_for("payments.show", ref=payment.ref)
    if not wants_fragment():
        return redirect(url, code=303)
    body, status = _step(payment)
    return body, status, {"HX-Push-Url": url}


def _own(ref):
    payment = payments.for_customer(current_user.customer_id, ref)
    if payment is None:
        abort(404)
    return payment


def _billing_defaults(payment):
    if payment.billing_name:
        return {k: getattr(payment, f"billing_{k}") for k in payments.BILLING_FIELDS}
    c = current_user.user.customer
    return dict(name=c.name, street=c.street, city=c.city, state=c.state, zip=c.zip, email=c.email, phone=c.phone)


def _entry_urls(payment):
    """The processor's entry window for this payment: in this tab, as a pop-up, and inline."""
    state = payments.open_intent(payment, processor())
    return windows.payment_windows(payment, state, url_for("payments.show", ref=payment.ref))


def _step(payment, form=None, errors=None, stale=None):
    """Render whichever step the payment is at, as (html, status)."""
    partial = wants_fragment()
    if payment.status == payments.CREATED or errors:
        stale = stale or payments.staleness(payment)
        ctx = dict(payment=payment, form=form or _billing_defaults(payment), errors=errors or {},
                   method_label=payments.METHOD_TYPES[payment.method_type], stale=stale)
        tpl = "payments/_billing.html" if partial else "payments/billing.html"
        return render_template(tpl, **ctx), 422 if errors else 200
    return _status(payment, partial)


def _status(payment, partial, verify=None):
    entry, unreachable = None, ""
    stale = payments.staleness(payment)
    if payment.status == payments.AWAITING_DETAILS and stale is None:
        try:
            entry = _entry_urls(payment)
        except ProcessorError as e:
            current_app.logger.warning("processor unreachable for %s: %s", payment.ref, e)
            unreachable = UNREACHABLE
    ctx = dict(payment=payment, entry_url=entry, unreachable=unreachable, labels=payments.LABELS,
               applied=payments.applied_to(payment), final=payment.status in FINAL and stale is None,
               stale=stale, credit_cents=payments.credit_from(payment) if payment.status == payments.SUCCEEDED else 0,
               verify=verify or {"form": {}, "errors": {}}, test_mode=not processor().live)
    if partial and request.headers.get(PAYMENTS_TAB) and payment.status not in (payments.CREATED,
                                                                                  payments.AWAITING_DETAILS):
        # On the Payments tab, the history and resumable attempts below this step change with the result:
        # send them in the same response (htmx swaps them out of band), so the page never disagrees.
        ctx.update(history=payments.history(payment.customer_id),
                   in_flight=payments.resumable(payment.customer_id), oob=True)
    tpl = "payments/_status.html" if partial else "payments/status.html"
    return render_template(tpl, **ctx), 200


@bp.route("/payments/<ref>")
@customer_required
def show(ref):
    """Where a payment is now; safe to reload at any point, and after logging in again."""
    body, status = _step(_synced(_own(ref)))
    return body, status


@bp.route("/payments/<ref>/billing", methods=["POST"])
@customer_required
def billing(ref):
    """Make Payment: confirm billing information and hand over to the processor."""
    payment = _own(ref)
    try:
        payment = payments.confirm_billing(payment, request.form, processor(),
                                           actor=f"customer:{current_user.user.id}")
    except payments.FormErrors as e:
        return _step(payment, form=request.form, errors=e.errors)
    except payments.NoLongerFits as e:  # nothing reserved, nothing charged: say what changed
        return _step(payments.for_customer(current_user.customer_id, ref), form=request.form,
                     errors={"form": e.message}, stale=e)
    except ProcessorError as e:
        current_app.logger.warning("processor unreachable at Make Payment for %s: %s", payment.ref, e)
        return _step(payments.for_customer(current_user.customer_id, ref), form=request.form,
                     errors={"form": UNREACHABLE})
    # The save-for-autopay box: keep the acceptance (time, IP, browser, text, version, language) for when it succeeds.
    autopay.accept_at_billing(payment, ip=request.remote_addr or "", user_agent=request.user_agent.string,
                              lang=i18n.language())
    if not wants_fragment() and payment.status == payments.AWAITING_DETAILS:
        # Without JavaScript the processor's page opens in this tab and comes back here.
        return redirect(_entry_urls(payment)["page"], code=303)
    return _goto(payment)


@bp.route("/payments/<ref>/status")
@customer_required
def status(ref):
    """The payment's state from our own record, refreshed from the processor (polled)."""
    payment = _synced(_own(ref), force=False)  # a poll reads our row; the processor only with backoff
    if payment.status == request.args.get("seen"):
        return render_template("payments/_poll.html", payment=payment)
    body, code = _status(payment, partial=True)
    return body, code, {"HX-Retarget": "#pay-step", "HX-Reswap": "outerHTML"}


@bp.route("/payments/<ref>/verify", methods=["POST"])
@customer_required
def verify(ref):
    """The deposits the customer typed: the payment is checked to still fit, then the account verified, which
    starts the debit (billing.payments.verify_bank). One that no longer fits is canceled and says what changed."""
    payment = _own(ref)
    kwargs, errors = payments.verification_input(payment, request.form)
    if not errors and payment.status == payments.AWAITING_VERIFICATION:
        try:
            payment, errors, _problem = payments.verify_bank(payment.id, processor(), actor=f"customer:{current_user.user.id}",
                                                      **kwargs)
        except ProcessorError as e:
            current_app.logger.warning("processor unreachable verifying %s: %s", ref, e)
            errors = {"form": UNREACHABLE}
    if not errors and not wants_fragment():
        return redirect(url_for("payments.show", ref=ref), code=303)
    body, code = _status(payment, wants_fragment(), verify={"form": request.form, "errors": errors})
    return body, 422 if errors else code


@bp.route("/payments/<ref>/cancel", methods=["POST"])
@customer_required
def cancel(ref):
    """Give up a payment that has not been paid: canceled at the processor too, so it cannot be paid later."""
    try:
        payments.retire(_own(ref), processor(), code="canceled_by_customer", actor=f"customer:{current_user.user.id}")
    except ProcessorError as e:
        current_app.logger.warning("processor unreachable canceling %s: %s", ref, e)
        return _step(_own(ref), form=_billing_defaults(_own(ref)), errors={"form": UNREACHABLE})
    return redirect(pay_start_url(), code=303)


@bp.route("/payments/<ref>/renew", methods=["POST"])
@customer_required
def renew(ref):
    """One click on a stale attempt: cancel it and pay what fits now, with the same billing details."""
    old = _own(ref)
    try:
        payment = payments.renew(old, processor(), actor=f"customer:{current_user.user.id}")
    except payments.NoLongerFits as e:  # it changed again meanwhile
        return _step(payments.for_customer(current_user.customer_id, ref), errors={"form": e.message}, stale=e)
    except ProcessorError as e:
        current_app.logger.warning("processor unreachable renewing %s: %s", ref, e)
        return _step(_own(ref), form=_billing_defaults(old), errors={"form": UNREACHABLE})
    if payment is None:
        return redirect(url_for("payments.index"), code=303)
    if not wants_fragment() and payment.status == payments.AWAITING_DETAILS:
        return redirect(_entry_urls(payment)["page"], code=303)
    return _goto(payment)
