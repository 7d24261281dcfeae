"""The built-in sandbox processor's own pages (the payment pop-up) and its background worker.

These pages stand in for a remote processor's: they are reached with the
intent's client secret, not the portal login, and they only ever hand the
portal a token. Card and account numbers are checked and dropped here.
"""
import threading
import time

from flask import Blueprint, abort, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf.csrf import CSRFError

from billing import payments
from billing.processors import PROCESSING, REQUIRES_ACTION, SUCCEEDED
from billing.processors.sandbox import ACH_AUTHORIZATION
from views import isp, pay_start_url, processor
from views.edge import local_url

bp = Blueprint("sandbox", __name__, url_prefix="/sandbox")
MODES = ("page", "popup", "inline")


def _sandbox():
    if processor().name != "sandbox":
        abort(404)
    return processor()


def _back(url):
    """Only a path on this site may be the return address."""
    return local_url(url) or pay_start_url()


def _intent():
    intent = _sandbox().intent_for_page(request.view_args["intent_id"], request.values.get("secret"))
    if intent is None:
        abort(404)
    return intent


def _ctx(intent, **extra):
    mode = request.values.get("mode")
    ctx = dict(intent=intent, secret=request.values.get("secret"), mode=mode if mode in MODES else "page",
               back=_back(request.values.get("back")), authorization=ACH_AUTHORIZATION.format(isp=isp().name),
               errors={}, decline="", form={}, setup=False)
    ctx.update(extra)
    return ctx


def _submit(intent, ctx, card, ach):
    """Hand the posted card or bank fields to the processor; keep only what may be shown again."""
    f = request.form
    if intent.method_type == "card":
        ctx["form"] = {"expiry": f.get("expiry", ""), "zip": f.get("zip", "")}  # never echo the number or CVC
        return card(intent.id, f.get("number"), f.get("expiry"), f.get("cvc"), f.get("zip"))
    ctx["form"] = {"holder": f.get("holder", ""), "routing": f.get("routing", ""),
                   "account_type": f.get("account_type", "")}
    return ach(intent.id, f.get("holder"), f.get("routing"), f.get("account"), f.get("account_type"),
               f.get("accepted"))


@bp.errorhandler(CSRFError)
def _expired(e):
    """Pay in a window whose portal login ended (say, Log out in the page behind the pop-up).

    Flask-WTF refuses the form, as it must: the token belonged to the login that ended. Nothing was sent
    to the processor, so the customer is told that, and where to sign in to resume this same payment.
    """
    back = _back(request.values.get("back"))
    mode = request.values.get("mode") if request.values.get("mode") in MODES else "page"
    signed_out = not current_user.is_authenticated and not back.startswith("/paylink/")
    return render_template("sandbox/expired.html", back=back, mode=mode, signed_out=signed_out,
                           login_url=url_for("auth.login", next=back)), 400


def _finished(intent, ctx):
    if ctx["mode"] == "page":
        return redirect(ctx["back"], code=303)
    return render_template("sandbox/done.html", **ctx)


@bp.route("/pay/<intent_id>", methods=["GET", "POST"])
def entry(intent_id):
    """The processor's entry form: card or bank account, then Pay."""
    intent = _intent()
    ctx = _ctx(intent)
    if intent.status in (SUCCEEDED, PROCESSING):
        return _finished(intent, ctx)
    if intent.status == REQUIRES_ACTION:
        return render_template("sandbox/challenge.html", **ctx)
    if intent.status != "requires_payment_method":
        return render_template("sandbox/done.html", **ctx)
    if request.method == "GET":
        return render_template("sandbox/entry.html", **ctx)
    # The portal checks, in the transaction in which the sandbox charges, that the amount still fits.
    with payments.charging(intent.id) as gate:
        if gate.problem is None:
            state, errors = _submit(intent, ctx, _sandbox().confirm_card, _sandbox().confirm_ach)
            if errors:
                gate.nothing_charged()
    if gate.problem is not None:  # not charged: canceled here and in the portal, which says what changed
        payments.retire(gate.payment, _sandbox(), problem=gate.problem, actor="processor")
        return _finished(intent, ctx)
    if errors:
        ctx["errors"] = errors
        return render_template("sandbox/entry.html", **ctx), 422
    if state.status in (SUCCEEDED, PROCESSING):
        return _finished(intent, ctx)
    if state.status == REQUIRES_ACTION:
        return render_template("sandbox/challenge.html", **ctx)
    ctx["decline"] = state.failure_message
    return render_template("sandbox/entry.html", **ctx), 402


@bp.route("/pay/<intent_id>/challenge", methods=["POST"])
def challenge(intent_id):
    """The 3-D Secure step: the cardholder approves or fails the authentication."""
    intent = _intent()
    state = _sandbox().complete_challenge(intent.id, request.form.get("outcome") == "approve")
    ctx = _ctx(intent)
    if state.status == SUCCEEDED:
        return _finished(intent, ctx)
    ctx["decline"] = state.failure_message
    return render_template("sandbox/entry.html", **ctx), 402


def deliver_events(app):
    """Send the sandbox's pending webhooks to this portal's /webhooks/sandbox through the WSGI app."""
    client = app.test_client()

    def post(body, headers):
        return client.post("/webhooks/sandbox", data=body, headers=headers).status_code

    return app.extensions["processor"].deliver(post)


def tick(app, force=False):
    """Settle due ACH debits and deliver webhooks; returns (settled, delivered)."""
    settled = app.extensions["processor"].settle(force=force)
    with app.app_context():
        # Each delivery is a full request through the app, whose teardown closes this thread's
        # connection; peewee reconnects on the next query, so no connection context here.
        delivered = deliver_events(app)
    return settled, delivered


def start_worker(app, interval=1.0):
    """A daemon thread that plays the processor's part: settling ACH and sending webhooks."""

    def loop():
        while True:
            time.sleep(interval)
            try:
                tick(app)
            except Exception:  # keep the worker alive; the next tick retries
                app.logger.exception("sandbox worker tick failed")

    thread = threading.Thread(target=loop, name="sandbox-worker", daemon=True)
    thread.start()
    app.extensions["sandbox_worker"] = thread
    return thread


# --- Saving a method without paying: the portal's "Add a payment method" opens this page. ---

SETUP_AUTHORIZATION = (
    "By clicking Save, you authorize {isp} to debit the bank account above for payments you make in the "
    "portal and, if you turn it on, for autopay. You can remove this account in the portal at any time."
)


@bp.route("/setup/<intent_id>", methods=["GET", "POST"])
def setup(intent_id):
    """The processor's page for saving a card or bank account: it only tokenizes, nothing is charged."""
    intent = _intent()
    if not _sandbox().is_setup(intent.id):
        abort(404)
    ctx = _ctx(intent, setup=True)
    ctx["authorization"] = SETUP_AUTHORIZATION.format(isp=isp().name)
    if intent.status == SUCCEEDED:
        return _finished(intent, ctx)
    if request.method == "GET":
        return render_template("sandbox/entry.html", **ctx)
    state, errors = _submit(intent, ctx, _sandbox().confirm_setup_card, _sandbox().confirm_setup_ach)
    if errors:
        ctx["errors"] = errors
        return render_template("sandbox/entry.html", **ctx), 422
    if state.status == SUCCEEDED:
        return _finished(intent, ctx)
    ctx["decline"] = state.failure_message
    return render_template("sandbox/entry.html", **ctx), 402
