"""The Payment methods tab: saved methods, adding one through the processor, default, removal, autopay."""
import re

from flask import Blueprint, abort, current_app, jsonify, redirect, render_template, request, url_for
from flask_login import current_user

from billing import accounts, autopay, methods, notices
from billing.payments import FormErrors
from billing.processors import ProcessorError
from db.models import utcnow
from views import customer_required, isp, processor, render, wants_fragment

bp = Blueprint("methods", __name__)


@bp.record_once
def _configure(state):
    notices.configure(state.app.config.get("PUBLIC_URL"))


@bp.app_context_processor
def _autopay_helpers():
    """Lazy helpers for the layout's banner, the Home page and the billing step (computed only when used)."""

    def banner():
        if not (current_user.is_authenticated and current_user.customer_id):
            return []
        return autopay.alerts(current_user.customer_id)

    def home():
        return autopay.status(current_user.customer_id)

    return {"autopay_alerts": banner, "autopay_home": home, "autopay_terms": autopay.authorization_text}


def _actor():
    return f"customer:{current_user.user.id}"


def _ctx(message="", errors=None, form=None):
    cid = current_user.customer_id
    pol = autopay.policy()
    return dict(views=methods.saved(cid, notice_days=pol.expiry_notice_days), ap=autopay.status(cid),
                terms=autopay.authorization_text(pol), message=message, errors=errors or {}, form=form or {},
                method_types=methods.METHOD_TYPES)


def _page(message="", errors=None, status=200, form=None):
    return render("methods/index.html", "methods/_index.html", status=status, **_ctx(message, errors, form))


@bp.route("/methods")
@customer_required
def index():
    """Saved cards and bank accounts, and autopay."""
    return _page()


@bp.route("/methods/<int:method_id>/default", methods=["POST"])
@customer_required
def make_default(method_id):
    """Set default: this method is offered first."""
    try:
        method = methods.set_default(current_user.customer_id, method_id, actor=_actor())
    except FormErrors:
        abort(404)
    return _page(f"{method.brand} ending {method.last4} is now your default payment method.")


@bp.route("/methods/<int:method_id>/remove", methods=["GET", "POST"])
@customer_required
def remove(method_id):
    """Remove a saved method, after asking for the password again."""
    method = methods.own(current_user.customer_id, method_id)
    if method is None:
        abort(404)
    status = autopay.status(current_user.customer_id)
    uses_autopay = status.enabled and status.method is not None and status.method.id == method.id
    if request.method == "GET":
        return render("methods/remove.html", "methods/_remove.html", method=method, errors={},
                      uses_autopay=uses_autopay)
    try:
        removed = methods.remove(current_user.customer_id, method_id, user_id=current_user.user.id,
                                 password=request.form.get("password"), actor=_actor(),
                                 ip=request.remote_addr or "")
    except FormErrors as e:
        return render("methods/remove.html", "methods/_remove.html", status=422, method=method, errors=e.errors,
                      uses_autopay=uses_autopay)
    message = f"{removed.method.brand} ending {removed.method.last4} was removed."
    if removed.autopay_turned_off:
        message += " Autopay is now off, because it used this method. Turn it on again with another method below."
    return _page(message)


@bp.route("/methods/autopay/on", methods=["POST"])
@customer_required
def autopay_on():
    """Turn autopay on with a saved method, recording the authorization."""
    try:
        autopay.turn_on(current_user.customer_id, request.form.get("method"),
                        accepted=bool(request.form.get("accepted")), ip=request.remote_addr or "",
                        user_agent=request.user_agent.string, actor=_actor())
    except FormErrors as e:
        return _page(errors=e.errors, status=422, form=request.form)
    return _page("Autopay is on.")


@bp.route("/methods/autopay/off", methods=["POST"])
@customer_required
def autopay_off():
    """Turn autopay off: one click, at once."""
    was_on = autopay.turn_off(current_user.customer_id, actor=_actor())
    message = "Autopay is off. Nothing more will be charged automatically." if was_on else "Autopay was already off."
    if request.form.get("from") == "home":
        return redirect(url_for("home.index"), code=303)
    return _page(message)


# --- Add a method through the processor's window. ----------------------------------------------------


def _setup_urls(setup):
    if processor().name == "stripe":  # the portal's own window, which loads Stripe.js
        # With pop-ups blocked the window opens in this tab (Stripe's Element is never put in an iframe of ours).
        urls = {mode: url_for("methods.stripe_window", ref=setup.ref, mode="page" if mode == "inline" else mode)
                for mode in STRIPE_MODES}
        return {**urls, "inline_tab": True}
    state = processor().retrieve(setup.processor_ref)
    back = url_for("methods.setup_show", ref=setup.ref)
    return {mode: url_for("sandbox.setup", intent_id=state.id, secret=state.client_secret, mode=mode, back=back)
            for mode in ("page", "popup", "inline")}


def _own_setup(ref):
    setup = methods.setup_for(current_user.customer_id, ref)
    if setup is None:
        abort(404)
    return setup


@bp.route("/methods/add", methods=["POST"])
@customer_required
def add():
    """Add a payment method: open the processor's window, which saves it without charging."""
    try:
        setup = methods.start_setup(current_user.customer_id, request.form.get("method_type"), processor())
    except FormErrors as e:
        return _page(errors=e.errors, status=422, form=request.form)
    except ProcessorError as e:
        current_app.logger.warning("method setup at the processor: %s", e)
        if request.form.get("method_type") == "ach":
            text = ("The payment processor could not start saving a bank account just now, so nothing was saved. "
                    "You can save one by ticking the box to save it when you pay by bank account.")
        else:
            text = "We could not reach the payment processor, so nothing was saved. Please try again in a minute."
        return _page(errors={"form": text}, status=503, form=request.form)
    if not wants_fragment():
        return redirect(_setup_urls(setup)["page"], code=303)
    return render_template("methods/_setup.html", setup=setup, entry_url=_setup_urls(setup)), 200, {
        "HX-Push-Url": url_for("methods.setup_show", ref=setup.ref)}


@bp.route("/methods/setup/<ref>")
@customer_required
def setup_show(ref):
    """Where adding a method is now; the processor's page returns here."""
    setup = methods.sync_setup(_own_setup(ref), processor(), actor=_actor())
    if setup.status == methods.SETUP_SAVED:
        return _page(_saved_message(setup))
    return render("methods/setup.html", "methods/_setup.html", setup=setup, entry_url=_setup_urls(setup))


@bp.route("/methods/setup/<ref>/status")
@customer_required
def setup_status(ref):
    """Polled while the window is open: has the processor saved the method yet?"""
    setup = methods.sync_setup(_own_setup(ref), processor(), actor=_actor())
    if setup.status == methods.SETUP_OPEN:
        return render_template("methods/_setup_poll.html", setup=setup)
    body = render_template("methods/_index.html", final=True, **_ctx(_saved_message(setup)))
    return body, 200, {"HX-Retarget": "#methods", "HX-Reswap": "outerHTML", "HX-Push-Url": url_for("methods.index")}


def _saved_message(setup):
    m = setup.payment_method
    return f"Saved: {m.brand} ending {m.last4}." if m else "Saved."


# --- Stripe's setup window: Stripe.js's own fields save the card; the portal asks Stripe for the outcome. ---

STRIPE_MODES = ("page", "popup", "inline")
STRIPE_TOKEN = re.compile(r"ctoken_[A-Za-z0-9_]{1,250}")  # a ConfirmationToken id
SETUP_MANDATE = (
    "By clicking Save, you authorize {isp} to debit the bank account above for payments you make in the "
    "portal and, if you turn it on, for autopay, according to the terms you agreed with {isp}. You can remove "
    "this account in the portal at any time."
)


def _stripe_setup(ref):
    proc = processor()
    if proc.name != "stripe":
        abort(404)
    return proc, _own_setup(ref)


@bp.route("/methods/setup/<ref>/window")
@customer_required
def stripe_window(ref):
    """Save a card (or bank account) with Stripe.js: a pop-up, inline when pop-ups are blocked, or this tab."""
    proc, setup = _stripe_setup(ref)
    mode = request.args.get("mode")
    mode = mode if mode in STRIPE_MODES else "page"
    back = url_for("methods.setup_show", ref=setup.ref)
    try:
        setup = methods.sync_setup(setup, proc, actor=_actor())
        state = proc.retrieve(setup.processor_ref) if setup.status == methods.SETUP_OPEN else None
    except ProcessorError as e:
        current_app.logger.warning("stripe setup window %s: %s", setup.ref, e)
        return render_template("error.html", code=503, message="We could not reach the payment service. "
                               "Nothing was saved. Please try again in a minute."), 503
    finished = setup.status != methods.SETUP_OPEN
    if finished and mode == "page":
        return redirect(back, code=303)
    from views.stripe_pay import METHOD_TYPES, billing_details

    return render_template(
        "stripe/setup.html", setup=setup, finished=finished, mode=mode, back=back, proc=proc, state=state,
        mandate=SETUP_MANDATE.format(isp=isp().name),
        element={"mode": "setup", "currency": isp().currency.lower(),
                 "paymentMethodTypes": [METHOD_TYPES[setup.method_type]]},
        billing=billing_details(setup.customer, prefix=""),
        next_action=state.next_action if state is not None and state.status == "requires_action" else "")


def _setup_answer(setup, state=None):
    """JSON for the setup window's script: saved yet, the bank's check to run, deposits to verify, or a message."""
    done = setup.status == methods.SETUP_SAVED
    action = state.next_action if state is not None and state.status == "requires_action" and not done else ""
    message = ""
    if not done and not action:
        message = (state.failure_message if state is not None and state.failure_message else
                   "The details were not saved yet. Check them and try again.")
    return jsonify(done=done, status=setup.status, next_action=action,
                   verify_url=state.verify_url if state is not None and action else "", message=message), 200


@bp.route("/methods/setup/<ref>/stripe/sync", methods=["POST"])
@customer_required
def stripe_sync(ref):
    """Stripe.js finished the bank's check: ask Stripe (never the browser) whether the method is saved."""
    proc, setup = _stripe_setup(ref)
    try:
        setup = methods.sync_setup(setup, proc, actor=_actor())
        state = proc.retrieve(setup.processor_ref) if setup.status == methods.SETUP_OPEN else None
    except ProcessorError as e:
        current_app.logger.warning("stripe setup sync %s: %s", setup.ref, e)
        return jsonify(done=False, status="error", message="We could not reach the payment service. "
                       "Reload this window in a minute to see whether the details were saved."), 502
    if state is not None and state.status == "requires_action" and state.next_action == "authenticate":
        return jsonify(done=False, status=setup.status, next_action="",
                       message="The card issuer's check was not completed. Try again or use another card."), 200
    return _setup_answer(setup, state)


@bp.route("/methods/setup/<ref>/stripe/confirm", methods=["POST"])
@customer_required
def stripe_confirm(ref):
    """Save the details the Payment Element collected (its ConfirmationToken): this server confirms the
    SetupIntent, with the debit authorization the customer accepted for a bank account."""
    proc, setup = _stripe_setup(ref)
    token = request.form.get("confirmation_token", "")
    if not STRIPE_TOKEN.fullmatch(token):
        return jsonify(done=False, status="error", message="Enter your details again."), 400
    mandate = None
    if setup.method_type == "ach" and setup.status == methods.SETUP_OPEN:
        if not request.form.get("accepted"):
            return jsonify(done=False, status="error", field="accepted",
                           message="Accept the authorization to save this bank account."), 422
        mandate = methods.Acceptance(SETUP_MANDATE.format(isp=isp().name), request.remote_addr or "",
                                     request.headers.get("User-Agent", ""), utcnow())
    try:
        setup, state = methods.confirm_setup(setup, proc, token, mandate=mandate, actor=_actor())
    except ProcessorError as e:
        current_app.logger.warning("stripe setup confirm %s: %s", setup.ref, e)
        return jsonify(done=False, status="error", message="We could not reach the payment processor. "
                       "Nothing was saved; please try again."), 502
    return _setup_answer(setup, state)
