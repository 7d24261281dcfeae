"""The Payment methods tab: saved methods, adding one through the processor, default, removal, autopay."""
from flask import Blueprint, abort, current_app, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from billing import autopay, legal, methods, notices
from billing.payments import FormErrors
from billing.processors import ProcessorError
from views import customer_required, i18n, isp, processor, render, wants_fragment, windows

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

    def terms():
        return legal.autopay(i18n.language(), autopay.policy(), isp())

    return {"autopay_alerts": banner, "autopay_home": home, "autopay_terms": terms}


def _actor():
    return f"customer:{current_user.user.id}"


def _ctx(message="", errors=None, form=None):
    cid = current_user.customer_id
    pol = autopay.policy()
    return dict(views=methods.saved(cid, notice_days=pol.expiry_notice_days), ap=autopay.status(cid),
                terms=legal.autopay(i18n.language(), pol, isp()), message=message, errors=errors or {},
                form=form or {}, method_types=methods.METHOD_TYPES)


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
    return _page(_("%(brand)s ending %(last4)s is now your default payment method.", brand=method.brand,
                   last4=method.last4))


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
    message = _("%(brand)s ending %(last4)s was removed.", brand=removed.method.brand, last4=removed.method.last4)
    if removed.autopay_turned_off:
        message += " " + _("Autopay is now off, because it used this method. Turn it on again with another method "
                           "below.")
    return _page(message)


@bp.route("/methods/autopay/on", methods=["POST"])
@customer_required
def autopay_on():
    """Turn autopay on with a saved method, recording the authorization."""
    try:
        autopay.turn_on(current_user.customer_id, request.form.get("method"),
                        accepted=bool(request.form.get("accepted")), ip=request.remote_addr or "",
                        user_agent=request.user_agent.string, actor=_actor(), lang=i18n.language())
    except FormErrors as e:
        return _page(errors=e.errors, status=422, form=request.form)
    return _page(_("Autopay is on."))


@bp.route("/methods/autopay/off", methods=["POST"])
@customer_required
def autopay_off():
    """Turn autopay off: one click, at once."""
    was_on = autopay.turn_off(current_user.customer_id, actor=_actor())
    message = (_("Autopay is off. Nothing more will be charged automatically.") if was_on
               else _("Autopay was already off."))
    if request.form.get("from") == "home":
        return redirect(url_for("home.index"), code=303)
    return _page(message)


# --- Add a method through the processor's window. ----------------------------------------------------


def _setup_urls(setup, state=None):
    """The processor's window that saves this method: in this tab, as a pop-up, and inline."""
    state = state or processor().retrieve_setup_intent(setup.processor_ref)
    return windows.setup_windows(setup, state, url_for("methods.setup_show", ref=setup.ref))


def _setup_page(setup):
    """The setup step: the processor's window, or the way to verify a bank account it waits for."""
    state = processor().retrieve_setup_intent(setup.processor_ref)
    return dict(setup=setup, entry_url=_setup_urls(setup, state), verification=state.verification)


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
            text = _("The payment processor could not start saving a bank account just now, so nothing was saved. "
                     "You can save one by ticking the box to save it when you pay by bank account.")
        else:
            text = _("We could not reach the payment processor, so nothing was saved. Please try again in a minute.")
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
    return render("methods/setup.html", "methods/_setup.html", **_setup_page(setup))


@bp.route("/methods/setup/<ref>/status")
@customer_required
def setup_status(ref):
    """Polled while the window is open: has the processor saved the method yet?"""
    setup = methods.sync_setup(_own_setup(ref), processor(), actor=_actor())
    if setup.status == methods.SETUP_OPEN:
        state = processor().retrieve_setup_intent(setup.processor_ref)
        return render_template("methods/_setup_poll.html", setup=setup, verification=state.verification)
    body = render_template("methods/_index.html", final=True, **_ctx(_saved_message(setup)))
    return body, 200, {"HX-Retarget": "#methods", "HX-Reswap": "outerHTML", "HX-Push-Url": url_for("methods.index")}


def _saved_message(setup):
    m = setup.payment_method
    return _("Saved: %(brand)s ending %(last4)s.", brand=m.brand, last4=m.last4) if m else _("Saved.")
