"""Stripe's payment window and webhook.

The window (endpoint ``payments.window``, which the pay flow opens as a pop-up, or in this tab: when
JavaScript is off, when pop-ups are blocked, and on a pay link) is the only page that loads Stripe.js. It
mounts Stripe's Payment Element (card or us_bank_account only: no wallets, no Link) in its own top-level
document, never in an iframe of ours. The details go from Stripe's fields straight to Stripe, which
returns a ConfirmationToken; the window posts that id here and *this server* confirms the PaymentIntent
(billing.payments.confirm_with_details), so the portal's checks run when money moves. When the bank
wants its check, the window runs ``stripe.handleNextAction`` at once and then asks here again. The
portal page learns the result by polling its own server, never from the window.

The window and its calls have two ways in: a logged-in customer's own payment (the routes below), and a
payment started through a pay link (views/paylink.py), which finds the payment through the link's token
and uses the same helpers here with its own URLs.
"""
import re

from flask import Blueprint, abort, current_app, jsonify, redirect, render_template, request, url_for
from flask_login import current_user

from billing import payments
from billing.processors import AUTHENTICATE, REQUIRES_ACTION, VERIFY_MICRODEPOSITS, ProcessorError
from views import csrf, customer_required, isp, processor
from views.payments import bp as payments_bp

bp = Blueprint("stripe_pay", __name__)
MODES = ("page", "popup", "inline")
CALLS = ("confirm", "saved", "sync")
METHOD_TYPES = {"card": "card", "ach": "us_bank_account"}  # Stripe's names for our payment types
TOKEN = re.compile(r"ctoken_[A-Za-z0-9_]{1,250}")  # a ConfirmationToken id, from stripe.createConfirmationToken


def stripe_processor():
    """The Stripe processor; 404 when the portal runs another one."""
    proc = processor()
    if proc.name != "stripe":
        abort(404)
    return proc


def _own(ref):
    payment = payments.for_customer(current_user.customer_id, ref)
    if payment is None:
        abort(404)
    return payment


def _mode():
    mode = request.values.get("mode")
    return mode if mode in MODES else "page"


def billing_details(payment_or_customer, prefix="billing_"):
    """Stripe's ``billing_details`` from our Billing Information step (the Payment Element asks for none)."""
    get = (lambda k: getattr(payment_or_customer, f"{prefix}{k}", "") or "")
    return {"name": get("name"), "email": get("email"), "phone": get("phone"),
            "address": {"line1": get("street"), "line2": "", "city": get("city"), "state": get("state"),
                        "postal_code": get("zip"), "country": "US"}}


def window_page(proc, payment, back, calls, billing=None):
    """Stripe's Payment Element for one payment (pop-up, or this tab: directly, or when pop-ups are blocked).

    ``back`` is the page that shows the payment's result; ``calls`` holds the URLs the window's script
    posts to (``confirm``: the details token; ``saved``: pay with the saved method; ``sync``: after the
    bank's check). ``billing`` is what the Element need not ask again (default: the whole Billing
    Information step); a pay link passes only what its payer typed, never the account's file.
    """
    mode = _mode()
    try:
        if payment.status == payments.AWAITING_DETAILS:
            payment = payments.sync(payment, proc)
        state = payments.open_intent(payment, proc) if payment.status == payments.AWAITING_DETAILS else None
    except ProcessorError as e:
        current_app.logger.warning("stripe window %s: %s", payment.ref, e)
        return render_template("error.html", code=503, message="We could not reach the payment service. "
                               "Nothing was charged. Please try again in a minute."), 503
    if payment.status != payments.AWAITING_DETAILS:
        # Already paid, processing, waiting for verification or finished: never offer to pay again.
        if mode == "page":
            return redirect(back, code=303)
        return render_template("stripe/window.html", payment=payment, finished=True, mode=mode, back=back,
                               proc=proc)
    saved = payment.payment_method if payment.payment_method_id else None
    return render_template(
        "stripe/window.html", payment=payment, finished=False, mode=mode, back=back, proc=proc, state=state,
        calls=calls, saved=saved, mandate=payments.mandate_text(payment, isp().name),
        element={"mode": "payment", "amount": payments.expected_charge_cents(payment), "currency": payment.currency.lower(),
                 "paymentMethodTypes": [METHOD_TYPES[payment.method_type]],
                 "setupFutureUsage": "off_session" if payments.may_save(payment) else None},
        billing=billing_details(payment) if billing is None else billing,
        next_action=state.next_action if state.status == REQUIRES_ACTION else "",
    )


def window(ref):
    """The window for the logged-in customer's own payment."""
    proc = stripe_processor()
    payment = _own(ref)
    calls = {call: url_for(f"stripe_pay.{call}", ref=payment.ref) for call in CALLS}
    return window_page(proc, payment, url_for("payments.show", ref=payment.ref), calls)


# The pay flow links to ``payments.window``; the route lives here, with the rest of Stripe's pages.
payments_bp.add_url_rule("/payments/<ref>/window", endpoint="window", view_func=customer_required(window))


def _answer(payment, state):
    """JSON for the window's script: where the payment is now, and what to do next."""
    done = payment.status not in (payments.CREATED, payments.AWAITING_DETAILS)
    action = state.next_action if state is not None and state.status == REQUIRES_ACTION and not done else ""
    message = payment.failure_message if payment.status == payments.CANCELED else ""  # e.g. it no longer fits
    if not done and not action:
        message = (state.failure_message if state is not None else "") or \
            "The payment did not go through. Check the details or use another card."
    verify_url = state.verify_url if state is not None and state.next_action == VERIFY_MICRODEPOSITS else ""
    return jsonify(status=state.status if state is not None else payment.status, done=done,
                   payment_status=payment.status, next_action=action, verify_url=verify_url, message=message), 200


def _unreached(payment, e, what="charged"):
    current_app.logger.warning("stripe call for %s: %s", payment.ref, e)
    return jsonify(status="error", done=False, message="We could not reach the payment service. "
                   f"Nothing was {what}; please try again."), 502


def pay_with_details(proc, payment, actor):
    """Pay with the ConfirmationToken the Payment Element made (the details never come here); the server
    confirms, after the portal's own checks, and Stripe.js runs the bank's check if one is asked for."""
    token = request.form.get("confirmation_token", "")
    if not TOKEN.fullmatch(token):
        return jsonify(status="error", done=False, message="Enter your payment details again."), 400
    mandate = None
    if payment.status == payments.AWAITING_DETAILS and payment.method_type == "ach":
        if not request.form.get("accepted"):
            return jsonify(status="error", done=False, field="accepted",
                           message="Accept the authorization to pay by bank account."), 422
        mandate = payments.record_mandate(payment, payments.mandate_text(payment, isp().name),
                                          request.remote_addr, request.headers.get("User-Agent", ""))
    try:
        payment, state = payments.confirm_with_details(payment, proc, token, mandate=mandate, actor=actor)
    except ProcessorError as e:
        return _unreached(payment, e, "debited" if payment.method_type == "ach" else "charged")
    return _answer(payment, state)


def pay_with_saved(proc, payment, actor):
    """Pay with the payment's saved method, on-session: nothing typed again (e.g. autopay asked for the
    customer because the bank wants its check)."""
    if payment.payment_method_id is None:
        return jsonify(status="error", done=False, message="Enter your payment details."), 400
    try:
        payment, state = payments.confirm_saved(payment, proc, actor=actor)
    except ProcessorError as e:
        return _unreached(payment, e)
    return _answer(payment, state)


def sync_payment(proc, payment, actor):
    """After Stripe.js ran the bank's check: ask Stripe (never the browser) where the payment is now."""
    if payment.status != payments.AWAITING_DETAILS or not payment.processor_ref:
        return _answer(payment, None)
    try:
        state = proc.retrieve(payment.processor_ref)
    except ProcessorError as e:
        current_app.logger.warning("stripe sync %s: %s", payment.ref, e)
        return jsonify(status="error", done=False, message="We could not reach the payment service. "
                       "Reload this window in a minute to see where your payment is."), 502
    payment = payments.apply_intent_state(payment.id, state, actor=actor)
    if state.status == REQUIRES_ACTION and state.next_action == AUTHENTICATE:  # the check was left unfinished
        return jsonify(status=state.status, done=False, payment_status=payment.status, next_action="",
                       message="The card issuer's check was not completed. Try again or use another card."), 200
    return _answer(payment, state)


def _customer():
    return f"customer:{current_user.user.id}"


@bp.route("/payments/<ref>/stripe/confirm", methods=["POST"])
@customer_required
def confirm(ref):
    """The window's Pay with details from the Payment Element, for the logged-in customer's own payment."""
    proc = stripe_processor()
    return pay_with_details(proc, _own(ref), _customer())


@bp.route("/payments/<ref>/stripe/saved", methods=["POST"])
@customer_required
def saved(ref):
    """The window's Pay with the saved method, for the logged-in customer's own payment."""
    proc = stripe_processor()
    return pay_with_saved(proc, _own(ref), _customer())


@bp.route("/payments/<ref>/stripe/sync", methods=["POST"])
@customer_required
def sync(ref):
    """The window's check after the bank's check, for the logged-in customer's own payment."""
    proc = stripe_processor()
    return sync_payment(proc, _own(ref), _customer())


@bp.route("/webhooks/stripe", methods=["POST"])
@csrf.exempt
def webhook():
    """Stripe's events: signature checked on the raw body, object re-read from Stripe, applied once."""
    proc = stripe_processor()
    from billing.processors.stripe import HANDLED_EVENTS, SIGNATURE_HEADER

    try:
        event = proc.parse_event(request.get_data(), request.headers.get(SIGNATURE_HEADER))
    except ValueError as e:
        current_app.logger.warning("stripe webhook rejected: %s", e)
        return jsonify(error="invalid signature or body"), 400
    if event["type"] not in HANDLED_EVENTS:
        return jsonify(received=True, handled=False), 200
    try:
        update = proc.read_event(event)
    except ProcessorError as e:  # Stripe retries the event later; nothing was recorded
        current_app.logger.warning("stripe webhook %s: could not re-read the object: %s", event["id"], e)
        return jsonify(error="could not re-read the object"), 503
    fresh = payments.handle_remote_event(proc, event["id"], event["type"], update)
    return jsonify(received=True, handled=True, duplicate=not fresh), 200

