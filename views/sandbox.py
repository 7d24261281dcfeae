"""The built-in sandbox processor's own pages (the payment pop-up), commands and background worker.

These pages stand in for a remote processor's: they are reached with the
intent's client secret, not the portal login, and they only ever hand the
portal a token. Card and account numbers are checked and dropped here.
This blueprint is registered only while the sandbox is the configured processor
(views/windows.py describes what a processor's pages module provides).
"""
import re
import threading
import time

import click
from flask import Blueprint, abort, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf.csrf import CSRFError

from billing import legal, methods, money, payments
from billing.processors import (MICRODEPOSIT_AMOUNTS, PROCESSING, REQUIRES_ACTION, REQUIRES_VERIFICATION, SUCCEEDED,
                                WINDOW_MODES, ProcessorError)
from billing.processors.sandbox import MICRODEPOSIT_TEST_VALUES
from views import i18n, isp, pay_start_url, processor
from views.edge import local_url

bp = Blueprint("sandbox", __name__, url_prefix="/sandbox")
MODES = WINDOW_MODES


def _sandbox():
    return processor()


def csp_sources(config):
    """The sandbox's pages are the portal's own: nothing to add to the CSP."""
    return ""


def payment_window_url(payment, state, *, mode, back, paylink_token=None):
    """The sandbox's entry page for a payment intent (its client secret is the way in, login or not)."""
    return url_for("sandbox.entry", intent_id=state.id, secret=state.client_secret, mode=mode, back=back)


def setup_window_url(setup, state, *, mode, back):
    """The sandbox's page that saves a card or bank account for a setup intent."""
    return url_for("sandbox.setup", intent_id=state.id, secret=state.client_secret, mode=mode, back=back)


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
               back=_back(request.values.get("back")),
               authorization=legal.sandbox_ach_once(i18n.language(), isp=isp().name),
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
    if intent.kind != "payment":
        abort(404)
    ctx = _ctx(intent)
    if intent.status in (SUCCEEDED, PROCESSING):
        return _finished(intent, ctx)
    if intent.next_action == "microdeposits" and intent.status == REQUIRES_ACTION:
        return redirect(_verify_url(intent, ctx), code=303)
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
    if state.status in (SUCCEEDED, PROCESSING, REQUIRES_VERIFICATION):
        return _finished(intent, ctx)  # a bank account to verify: the portal's page shows the way there
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

@bp.route("/setup/<intent_id>", methods=["GET", "POST"])
def setup(intent_id):
    """The processor's page for saving a card or bank account: it only tokenizes, nothing is charged."""
    intent = _intent()
    if intent.kind != "setup":
        abort(404)
    ctx = _ctx(intent, setup=True)
    ctx["authorization"] = legal.sandbox_ach_saved(i18n.language(), isp=isp().name)
    if intent.status == SUCCEEDED:
        return _finished(intent, ctx)
    if intent.next_action == "microdeposits" and intent.status == REQUIRES_ACTION:
        return redirect(_verify_url(intent, ctx), code=303)
    if request.method == "GET":
        return render_template("sandbox/entry.html", **ctx)
    state, errors = _submit(intent, ctx, _sandbox().confirm_setup_card, _sandbox().confirm_setup_ach)
    if errors:
        ctx["errors"] = errors
        return render_template("sandbox/entry.html", **ctx), 422
    if state.status in (SUCCEEDED, REQUIRES_VERIFICATION):
        return _finished(intent, ctx)
    ctx["decline"] = state.failure_message
    return render_template("sandbox/entry.html", **ctx), 402


# --- Verifying a bank account with microdeposits: the sandbox's stand-in for Stripe's hosted page. ---------


def _verify_url(intent, ctx):
    return url_for("sandbox.verify", intent_id=intent.id, secret=intent.client_secret, mode=ctx["mode"],
                   back=ctx["back"])


@bp.route("/verify/<intent_id>", methods=["GET", "POST"])
def verify(intent_id):
    """The verification page: the customer types the deposits' amounts (or the deposit's code) from their bank."""
    intent = _intent()
    ctx = _ctx(intent, setup=intent.kind == "setup", test_values=MICRODEPOSIT_TEST_VALUES,
               amounts_type=MICRODEPOSIT_AMOUNTS)
    waiting = intent.status == REQUIRES_ACTION and intent.next_action == "microdeposits"
    if request.method == "GET" or not waiting:
        return render_template("sandbox/verify.html", **ctx), 200 if waiting or request.method == "GET" else 409
    f = request.form
    ctx["form"] = {"amount1": f.get("amount1", ""), "amount2": f.get("amount2", ""),
                   "descriptor_code": f.get("descriptor_code", "")}
    if intent.microdeposit_type == MICRODEPOSIT_AMOUNTS:
        amounts = [money.deposit_cents(f.get("amount1")), money.deposit_cents(f.get("amount2"))]
        state, errors = _sandbox().verify_microdeposits(intent.id, amounts=None if None in amounts else amounts)
    else:
        state, errors = _sandbox().verify_microdeposits(intent.id, descriptor_code=f.get("descriptor_code"))
    # The portal hears of it at once (as from the webhook, which follows).
    if intent.kind == "setup":
        methods.sync_setup_of_intent(intent.id, _sandbox(), actor="processor")
    else:
        payments.sync_intent(intent.id, _sandbox(), actor="processor")
    ctx["intent"] = _sandbox().intent_for_page(intent.id, intent.client_secret)
    ctx["errors"] = errors
    return render_template("sandbox/verify.html", **ctx), 422 if errors else 200


def init_app(app):
    """The sandbox's commands, and its worker (settling ACH, sending webhooks) unless SANDBOX_WORKER is off."""
    from views.cli import run_once

    @app.cli.command("sandbox-settle")
    @run_once("sandbox-settle")
    def sandbox_settle():
        """Settle every processing sandbox ACH debit now and deliver the webhooks."""
        settled, delivered = tick(app, force=True)
        click.echo(f"settled {settled} ACH payment(s); delivered {delivered} webhook event(s)")

    @app.cli.command("sandbox-dispute")
    @click.argument("payment_ref")
    @click.option("--amount", help="Dispute only this much of it (e.g. 12.50); all of it by default.")
    @click.option("--won", "outcome", flag_value="won", help="The bank decides the open dispute for the ISP.")
    @click.option("--lost", "outcome", flag_value="lost", help="The bank decides the open dispute for the customer "
                                                             "(an open inquiry becomes a chargeback).")
    @click.option("--inquiry", is_flag=True, help="Only ask about a card payment first: no money moves until it "
                                                  "becomes a chargeback (--lost) or closes (--won).")
    def sandbox_dispute(payment_ref, amount, outcome, inquiry):
        """Play the customer's bank: dispute a succeeded sandbox payment, or decide its open dispute.

        A bank (ACH) debit's dispute is its late return (unauthorized), lost at once, as with Stripe.
        """
        from billing import money
        from db import database
        from db.models import Payment

        proc = app.extensions["processor"]
        with database.connection_context():
            payment = Payment.get_or_none(Payment.ref == payment_ref.strip().upper())
            if payment is None or not payment.processor_ref:
                raise click.ClickException(f"no sandbox payment {payment_ref}")
            try:
                if outcome:
                    open_ = [d for d, status in proc.disputes_of(payment.processor_ref)
                             if status in ("needs_response", "under_review", "warning_needs_response",
                                           "warning_under_review")]
                    if not open_:
                        raise click.ClickException(f"{payment.ref} has no open dispute")
                    dispute_id = proc.close_dispute(open_[0], won=outcome == "won")
                else:
                    cents = money.parse_amount(amount) if amount else None
                    dispute_id = proc.open_dispute(payment.processor_ref, cents, inquiry=inquiry)
            except money.AmountError as e:
                raise click.ClickException(str(e)) from None
            except ProcessorError as e:
                raise click.ClickException(str(e)) from None
        _, delivered = tick(app)
        done = outcome or ("inquiry opened" if inquiry else "opened")
        click.echo(f"{payment.ref}: dispute {dispute_id} {done}; delivered {delivered} webhook event(s)")

    if app.config["SANDBOX_WORKER"]:
        start_worker(app)
