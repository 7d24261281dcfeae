"""Stripe's pages: its payment window, its setup window, and the calls their script makes.

This blueprint is registered only while Stripe is the configured processor (views/windows.py describes
what a processor's pages module provides). The window (endpoint ``stripe_pay.window``, which the pay
flow opens as a pop-up, inline when pop-ups are blocked, or in the same tab) is the only page that
loads Stripe.js. Card and bank details go
from Stripe's own fields straight to Stripe; this server only ever receives Stripe's ids, asks
Stripe for the outcome, and moves the payment through billing.payments. A card is a PaymentMethod
made by Stripe's Card Element (card only: no wallets, no Link; the billing details are the ones the
customer gave in our Billing Information step); *this server* confirms the intent with it, saving the
card only when the customer ticked the box and never through a pay link, and when the bank asks for its
check (3-D Secure) the window runs it at once. The portal page learns the result by polling its own
server, never from the window.

The window and its calls have two ways in: a logged-in customer's own payment, and a payment started
through a pay link, found through the link's token (the /paylink/<token>/<ref>/... routes below).
"""
import re
from urllib.parse import urlsplit

from flask import Blueprint, abort, current_app, jsonify, redirect, render_template, request, url_for
from flask_login import current_user

from billing import accounts, legal, methods, paylinks, payments
from billing.processors import (REQUIRES_ACTION, REQUIRES_PAYMENT_METHOD, REQUIRES_VERIFICATION, WINDOW_MODES,
                               ProcessorError)
from db import write_tx
from db.models import utcnow
from views import customer_required, i18n, isp, paylink, processor

bp = Blueprint("stripe_pay", __name__)
MODES = WINDOW_MODES
# The inline fallback (pop-ups blocked) mounts the window's form in the portal page itself, never in a frame of
# ours: the window answers mode=inline with its form alone (templates/stripe/_window.html, _setup.html).
INLINE_IN_PAGE = True
PAYMENT_METHOD = re.compile(r"pm_[A-Za-z0-9_]{1,250}")  # a PaymentMethod id, from stripe.createPaymentMethod


def stripe_processor():
    """The Stripe processor (this blueprint exists only while it is the configured one)."""
    return processor()


def csp_sources(config):
    """Stripe.js and what it talks to, for script-src, frame-src, connect-src and form-action."""
    parts = urlsplit(config["STRIPE_JS_URL"])
    sources = f"{parts.scheme}://{parts.netloc}"
    if config.get("STRIPE_API_BASE"):
        api = urlsplit(config["STRIPE_API_BASE"])
        sources += f" {api.scheme}://{api.netloc}"
    else:
        # Stripe's published list: its API, 3-D Secure pages, and Stripe.js's own sub-domains.
        sources += " https://api.stripe.com https://hooks.stripe.com https://*.js.stripe.com"
    return sources


def init_app(app):
    """Stripe's pages add no commands of their own (reconcile and refund work for every processor)."""


def payment_window_url(payment, state, *, mode, back, paylink_token=None):
    """The portal's own window that loads Stripe.js for this payment (it opens the intent itself)."""
    if paylink_token:
        return url_for("stripe_pay.paylink_window", token=paylink_token, ref=payment.ref, mode=mode)
    return url_for("stripe_pay.window", ref=payment.ref, mode=mode)


def setup_window_url(setup, state, *, mode, back):
    """The portal's own window that saves a card or bank account with Stripe.js."""
    return url_for("stripe_pay.setup_window", ref=setup.ref, mode=mode)


def _own(ref):
    payment = payments.for_customer(current_user.customer_id, ref)
    if payment is None:
        abort(404)
    return payment


def _mode():
    mode = request.values.get("mode")
    return mode if mode in MODES else "page"


def _mandate(payment):
    """The one-time ACH mandate for this payment (its fee included), in the page's language."""
    return legal.ach_once(i18n.language(), isp=isp().name, amount_cents=payments.expected_charge_cents(payment),
                          currency=payment.currency)


def _details(name, email, phone="", street="", city="", state="", zip_code=""):
    """Stripe's ``billing_details``, empty values left out (Stripe refuses empty strings)."""
    address = {k: v for k, v in (("line1", street), ("city", city), ("state", state), ("postal_code", zip_code))
               if v}
    details = {"name": name, "email": email, "phone": phone,
               "address": dict(address, country="US") if address else None}
    return {k: v for k, v in details.items() if v}


def _template(name, mode):
    """The window's whole page, or (inline, mounted in the portal page) its form alone."""
    return f"stripe/_{name}.html" if mode == "inline" else f"stripe/{name}.html"


def billing_details(payment):
    """Stripe's ``billing_details`` from the payment's Billing Information step, so the Card Element asks for
    none of it.

    A pay link's payment passes only what the person paying typed (name, email): the address on file is the
    account's, not necessarily the card's, so the Card Element asks for the card's postal code itself.
    """
    if payment.origin == payments.PAYLINK:
        return _details(payment.billing_name, payment.billing_email)
    return _details(payment.billing_name, payment.billing_email, payment.billing_phone, payment.billing_street,
                    payment.billing_city, payment.billing_state, payment.billing_zip)


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
        return render_template(_template("window", mode), payment=payment, finished=True, mode=mode, back=back,
                               proc=proc)
    return render_template(
        _template("window", mode), payment=payment, finished=False, mode=mode, back=back, proc=proc, state=state,
        calls=calls, mandate=_mandate(payment), billing_name=payment.billing_name,
        billing_email=payment.billing_email, billing=billing_details(payment),
        # A saved card whose bank asked for its check at the billing step (or autopay's charge): run it at once.
        next_action=state is not None and state.status == REQUIRES_ACTION,
        # A saved card to pay with again, on-session (an autopay charge the bank wanted confirmed): one button.
        saved=payment.payment_method if (
            "saved" in calls and payment.method_type == "card" and payment.payment_method_id
            and state is not None and state.status == REQUIRES_PAYMENT_METHOD) else None,
    )


@bp.route("/payments/<ref>/window")
@customer_required
def window(ref):
    """The window for the logged-in customer's own payment."""
    proc = stripe_processor()
    payment = _own(ref)
    calls = {call: url_for(f"stripe_pay.{call}", ref=payment.ref) for call in ("card", "bank", "sync", "saved")}
    return window_page(proc, payment, url_for("payments.show", ref=payment.ref), calls)


def _answer(payment, state, actor):
    """JSON for the window's script: where the payment is now, and what to do next."""
    payment = payments.apply_intent_state(payment.id, state, actor=actor, processor=stripe_processor())
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
    """Pay with the PaymentMethod Stripe.js made from its own fields (the number never comes here).

    The server confirms, after the charge-time check; whether the card is saved is the server's rule too
    (billing.payments.may_save: the customer's box, never a pay link), not the browser's.
    """
    settled = _settled(payment)
    if settled:
        return settled
    method = request.form.get("payment_method", "")
    if payment.method_type != "card" or not PAYMENT_METHOD.fullmatch(method):
        return jsonify(status="error", done=False, message="Enter your card details again."), 400
    refused = _claimed(proc, payment, actor)
    if refused:
        return refused
    try:
        state = proc.confirm_card(payment.processor_ref, method, save=payments.may_save(payment))
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
    mandate = payments.record_mandate(payment, _mandate(payment), request.remote_addr,
                                      request.headers.get("User-Agent", ""))
    try:
        state = proc.confirm_bank(payment.processor_ref, ip_address=mandate.ip, user_agent=mandate.user_agent,
                                  accepted_at=mandate.accepted_at)
    except ProcessorError as e:
        current_app.logger.warning("stripe bank payment %s: %s", payment.ref, e)
        return jsonify(status="error", done=False, message="We could not reach the payment processor. "
                       "Nothing was debited; please try again."), 502
    return _answer(payment, state, actor)


def pay_saved(proc, payment, actor):
    """Pay with the payment's own saved card, the customer present: Stripe's recovery when the bank wanted the
    customer for an autopay charge (authentication_required), or for a saved card at the billing step.

    The server confirms the same PaymentIntent on-session with the saved PaymentMethod (``use_stripe_sdk``),
    after the charge-time check; the bank's check then runs in the window (handleNextAction). No card is typed.
    """
    settled = _settled(payment)
    if settled:
        return settled
    if payment.method_type != "card" or payment.payment_method_id is None:
        return jsonify(status="error", done=False, message="Enter your card details again."), 400
    refused = _claimed(proc, payment, actor)
    if refused:
        return refused
    try:
        state = proc.charge_saved_method(payment.processor_ref, payment.payment_method.processor_ref)
    except ProcessorError as e:
        current_app.logger.warning("stripe saved card %s: %s", payment.ref, e)
        return jsonify(status="error", done=False, message="We could not reach the card processor. "
                       "Nothing was charged; please try again."), 502
    return _answer(payment, state, actor)


def sync_payment(proc, payment, actor):
    """After Stripe.js finished a 3-D Secure challenge: ask Stripe where the payment is now."""
    settled = _settled(payment)
    if settled:
        return settled
    try:
        state = proc.retrieve_payment_intent(payment.processor_ref)
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


@bp.route("/payments/<ref>/stripe/saved", methods=["POST"])
@customer_required
def saved(ref):
    """The window's Pay with the payment's saved card, for the logged-in customer's own payment."""
    proc = stripe_processor()
    return pay_saved(proc, _own(ref), _customer())


@bp.route("/payments/<ref>/stripe/sync", methods=["POST"])
@customer_required
def sync(ref):
    """The window's check after a 3-D Secure challenge, for the logged-in customer's own payment."""
    proc = stripe_processor()
    return sync_payment(proc, _own(ref), _customer())


# --- Stripe's setup window: Stripe.js's own fields save the card; the portal asks Stripe for the outcome. ---

def _stripe_setup(ref):
    setup = methods.setup_for(current_user.customer_id, ref)
    if setup is None:
        abort(404)
    return stripe_processor(), setup


@bp.route("/methods/setup/<ref>/window")
@customer_required
def setup_window(ref):
    """Save a card (or bank account) with Stripe.js: a pop-up, inline when pop-ups are blocked, or this tab."""
    proc, setup = _stripe_setup(ref)
    mode = request.args.get("mode")
    mode = mode if mode in MODES else "page"
    back = url_for("methods.setup_show", ref=setup.ref)
    try:
        setup = methods.sync_setup(setup, proc, actor=_customer())
        state = proc.retrieve_setup_intent(setup.processor_ref) if setup.status == methods.SETUP_OPEN else None
    except ProcessorError as e:
        current_app.logger.warning("stripe setup window %s: %s", setup.ref, e)
        return render_template("error.html", code=503, message="We could not reach the payment service. "
                               "Nothing was saved. Please try again in a minute."), 503
    finished = setup.status != methods.SETUP_OPEN
    c = setup.customer
    if finished and mode == "page":
        return redirect(back, code=303)
    return render_template(_template("setup", mode), setup=setup, finished=finished, mode=mode, back=back, proc=proc,
                           state=state, mandate=legal.ach_saved(i18n.language(), isp=isp().name),
                           billing_name=c.name, billing_email=c.email or "",
                           billing=_details(c.name, c.email, c.phone, c.street, c.city, c.state, c.zip))


def _setup_answer(setup, state=None):
    """JSON for the setup window's script: saved yet, or a message and another try."""
    done = setup.status == methods.SETUP_SAVED
    message = ""
    if not done:
        message = (state.failure_message if state is not None and state.failure_message else
                   "The details were not saved yet. Check them and try again.")
        if state is not None and state.status == REQUIRES_VERIFICATION and setup.method_type == "ach":
            message = ("Stripe will email you how to verify this bank account with two small deposits. "
                       "It is saved here once it is verified; you can close this window.")
    return jsonify(done=done, status=setup.status, message=message), 200


@bp.route("/methods/setup/<ref>/stripe/sync", methods=["POST"])
@customer_required
def setup_sync(ref):
    """Stripe.js says it finished: ask Stripe (never the browser) whether the method is saved."""
    proc, setup = _stripe_setup(ref)
    try:
        setup = methods.sync_setup(setup, proc, actor=_customer())
        state = proc.retrieve_setup_intent(setup.processor_ref) if setup.status == methods.SETUP_OPEN else None
    except ProcessorError as e:
        current_app.logger.warning("stripe setup sync %s: %s", setup.ref, e)
        return jsonify(done=False, status="error", message="We could not reach the payment service. "
                       "Reload this window in a minute to see whether the details were saved."), 502
    return _setup_answer(setup, state)


@bp.route("/methods/setup/<ref>/stripe/bank", methods=["POST"])
@customer_required
def setup_bank(ref):
    """Save the bank account Stripe.js linked, once the customer accepted the debit authorization.

    Written for real Stripe (a us_bank_account SetupIntent confirmed with mandate data); localstripe has
    no ACH, so this path is not tested against it.
    """
    proc, setup = _stripe_setup(ref)
    if setup.method_type != "ach":
        abort(400)
    if setup.status != methods.SETUP_OPEN:
        return _setup_answer(setup)
    if not request.form.get("accepted"):
        return jsonify(done=False, status="error", field="accepted",
                       message="Accept the authorization to save this bank account."), 422
    ip, agent = request.remote_addr or "", request.headers.get("User-Agent", "")
    accepted_at, mandate = utcnow(), legal.ach_saved(i18n.language(), isp=isp().name)
    with write_tx():  # the acceptance (text, version, language, time, IP address, browser) is kept in the audit trail
        accounts.audit(_customer(), "method.mandate_accepted", "method_setup", setup.ref, ip=ip,
                       user_agent=agent[:512], text=mandate.text, text_version=mandate.version,
                       language=mandate.language, accepted_at=accepted_at)
    try:
        state = proc.confirm_setup_bank(setup.processor_ref, ip_address=ip, user_agent=agent, accepted_at=accepted_at)
        setup = methods.sync_setup(setup, proc, actor=_customer())
    except ProcessorError as e:
        current_app.logger.warning("stripe bank setup %s: %s", setup.ref, e)
        return jsonify(done=False, status="error", message="We could not reach the payment processor. "
                       "Nothing was saved; please try again."), 502
    return _setup_answer(setup, state)


# --- Stripe's payment window and its calls, for a payment started through this link. ---------------


def _stripe_payment(token, ref):
    """Stripe and the payment started through this link (404, or 410 for a link that stopped working)."""
    proc = stripe_processor()
    return proc, paylink.own_payment(paylink.invoice_or_gone(token), ref)


def _calls(token, ref):
    return {call: url_for(f"stripe_pay.paylink_{call}", token=token, ref=ref) for call in ("card", "bank", "sync")}


@bp.route("/paylink/<token>/<ref>/window")
def paylink_window(token, ref):
    """Stripe's card or bank entry for this link's payment; the result shows on the link's payment page."""
    proc, p = _stripe_payment(token, ref)
    return window_page(proc, p, url_for("paylink.payment", token=token, ref=p.ref), _calls(token, ref))


def _call(token, ref):
    """For the window's JSON calls: a link that stopped working answers JSON the window can show."""
    proc = stripe_processor()
    try:
        inv = paylinks.invoice_for(paylinks.keys(current_app.config), token)
    except paylinks.LinkError as e:
        answer = jsonify(status="error", done=False, message=str(e))
        answer.status_code = 410
        abort(answer)
    return proc, paylink.own_payment(inv, ref), paylinks.actor(inv)


@bp.route("/paylink/<token>/<ref>/stripe/card", methods=["POST"])
def paylink_card(token, ref):
    """The window's card Pay (Stripe's PaymentMethod id in, never attached to the account; Stripe asked for the
    outcome)."""
    return pay_card(*_call(token, ref))


@bp.route("/paylink/<token>/<ref>/stripe/bank", methods=["POST"])
def paylink_bank(token, ref):
    """The window's bank Pay, once the mandate was accepted in the window."""
    return pay_bank(*_call(token, ref))


@bp.route("/paylink/<token>/<ref>/stripe/sync", methods=["POST"])
def paylink_sync(token, ref):
    """After a 3-D Secure challenge in the window: ask Stripe where the payment is now."""
    return sync_payment(*_call(token, ref))
