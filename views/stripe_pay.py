"""Stripe's payment window and webhook.

The window (endpoint ``payments.window``, which the pay flow opens as a pop-up, inline when pop-ups
are blocked, or in the same tab) is the only page that loads Stripe.js. Card and bank details go
from Stripe's own fields straight to Stripe; this server only ever receives Stripe's ids, asks
Stripe for the outcome, and moves the payment through billing.payments. The portal page learns the
result by polling its own server, never from the window.

The window and its calls have two ways in: a logged-in customer's own payment (the routes below), and a
payment started through a pay link (views/paylink.py), which finds the payment through the link's token
and uses the same helpers here with its own URLs.
"""
from flask import Blueprint, abort, current_app, jsonify, redirect, render_template, request, url_for
from flask_login import current_user

from billing import money, payments
from billing.processors import REQUIRES_ACTION, ProcessorError
from views import csrf, customer_required, isp, processor
from views.payments import bp as payments_bp

bp = Blueprint("stripe_pay", __name__)
MODES = ("page", "popup", "inline")


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


def _mandate_text(payment):
    return payments.ACH_MANDATE.format(isp=isp().name, amount=money.format_money(payments.expected_charge_cents(payment),
                                                                                   payment.currency))


def window_page(proc, payment, back, calls):
    """Stripe's card or bank entry for one payment (pop-up, inline or same tab).

    ``back`` is the page that shows the payment's result; ``calls`` holds the URLs the window's script
    posts to (``card``, ``bank``, ``sync``).
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
        # Already paid, processing or finished: never offer to pay again.
        if mode == "page":
            return redirect(back, code=303)
        return render_template("stripe/window.html", payment=payment, finished=True, mode=mode, back=back,
                               proc=proc)
    return render_template(
        "stripe/window.html", payment=payment, finished=False, mode=mode, back=back, proc=proc, state=state,
        calls=calls, mandate=_mandate_text(payment), billing_name=payment.billing_name,
        billing_email=payment.billing_email,
    )


def window(ref):
    """The window for the logged-in customer's own payment."""
    proc = stripe_processor()
    payment = _own(ref)
    calls = {call: url_for(f"stripe_pay.{call}", ref=payment.ref) for call in ("card", "bank", "sync")}
    return window_page(proc, payment, url_for("payments.show", ref=payment.ref), calls)


# The pay flow links to ``payments.window``; the route lives here, with the rest of Stripe's pages.
payments_bp.add_url_rule("/payments/<ref>/window", endpoint="window", view_func=customer_required(window))


def _answer(payment, state, actor):
    """JSON for the window's script: where the payment is now, and what to do next."""
    payment = payments.apply_intent_state(payment.id, state, actor=actor)
    done = payment.status not in (payments.CREATED, payments.AWAITING_DETAILS)
    body = {"status": state.status, "done": done, "payment_status": payment.status,
            "message": "" if done or state.status == REQUIRES_ACTION else (
                state.failure_message or "The payment did not go through. Try another card.")}
    return jsonify(body), 200


def _claimed(proc, payment, actor):
    """Check that the payment still fits, in the transaction that records the charge; JSON when it does not."""
    with payments.charging(payment.processor_ref) as gate:
        pass
    if gate.problem is None:
        return None
    try:
        payment = payments.retire(payment, proc, problem=gate.problem, actor=actor)
    except ProcessorError as e:
        current_app.logger.warning("stripe cancel %s: %s", payment.ref, e)
        return jsonify(status="error", done=False, message=gate.problem.message), 409
    return jsonify(status=payment.status, done=True, payment_status=payment.status,
                   message=gate.problem.message), 200


def _settled(payment):
    """The answer for a payment that no longer waits for details (paid, processing or finished)."""
    if payment.status != payments.AWAITING_DETAILS or not payment.processor_ref:
        return jsonify(status=payment.status, done=True, payment_status=payment.status, message=""), 200
    return None


def pay_card(proc, payment, actor):
    """Pay with the card token Stripe.js made from its own fields (the number never comes here)."""
    settled = _settled(payment)
    if settled:
        return settled
    token = request.form.get("token", "")
    if payment.method_type != "card" or not token.startswith("tok_") or len(token) > 255:
        return jsonify(status="error", done=False, message="Enter your card details again."), 400
    refused = _claimed(proc, payment, actor)
    if refused:
        return refused
    try:
        state = proc.confirm_card_token(payment.processor_ref, token, proc.customer_ref(payment.customer_id))
    except ProcessorError as e:
        current_app.logger.warning("stripe card payment %s: %s", payment.ref, e)
        return jsonify(status="error", done=False, message="We could not reach the card processor. "
                       "Nothing was charged; please try again."), 502
    return _answer(payment, state, actor)


def pay_bank(proc, payment, actor):
    """Pay with the bank account Stripe.js linked, once the customer accepted the mandate."""
    settled = _settled(payment)
    if settled:
        return settled
    if payment.method_type != "ach":
        abort(400)
    if not request.form.get("accepted"):
        return jsonify(status="error", done=False, field="accepted",
                       message="Accept the authorization to pay by bank account."), 422
    refused = _claimed(proc, payment, actor)
    if refused:
        return refused
    mandate = payments.record_mandate(payment, _mandate_text(payment), request.remote_addr,
                                      request.headers.get("User-Agent", ""))
    try:
        state = proc.confirm_bank(payment.processor_ref, ip_address=mandate.ip, user_agent=mandate.user_agent,
                                  accepted_at=mandate.accepted_at)
    except ProcessorError as e:
        current_app.logger.warning("stripe bank payment %s: %s", payment.ref, e)
        return jsonify(status="error", done=False, message="We could not reach the payment processor. "
                       "Nothing was debited; please try again."), 502
    return _answer(payment, state, actor)


def sync_payment(proc, payment, actor):
    """After Stripe.js finished a 3-D Secure challenge: ask Stripe where the payment is now."""
    settled = _settled(payment)
    if settled:
        return settled
    try:
        state = proc.retrieve(payment.processor_ref)
    except ProcessorError as e:
        current_app.logger.warning("stripe sync %s: %s", payment.ref, e)
        return jsonify(status="error", done=False, message="We could not reach the payment service. "
                       "Reload this window in a minute to see where your payment is."), 502
    if state.status == REQUIRES_ACTION:  # the challenge was left unfinished
        return jsonify(status=state.status, done=False, payment_status=payment.status,
                       message="The card issuer's check was not completed. Try again or use another card."), 200
    return _answer(payment, state, actor)


def _customer():
    return f"customer:{current_user.user.id}"


@bp.route("/payments/<ref>/stripe/card", methods=["POST"])
@customer_required
def card(ref):
    """The window's card Pay, for the logged-in customer's own payment."""
    proc = stripe_processor()
    return pay_card(proc, _own(ref), _customer())


@bp.route("/payments/<ref>/stripe/bank", methods=["POST"])
@customer_required
def bank(ref):
    """The window's bank Pay, for the logged-in customer's own payment."""
    proc = stripe_processor()
    return pay_bank(proc, _own(ref), _customer())


@bp.route("/payments/<ref>/stripe/sync", methods=["POST"])
@customer_required
def sync(ref):
    """The window's check after a 3-D Secure challenge, for the logged-in customer's own payment."""
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

