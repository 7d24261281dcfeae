"""Staff pages under /staff: customers, payments and export, audit log, settings, import, invites, API tokens,
staff logins.

Every route here is for staff only (see ``_staff_only``); anonymous users are
sent to log in and customers get 403. Each route also declares the least staff
role it needs with ``@allow(CLERK)`` or ``@allow(OWNER)`` (billing.staff says
which is which); a route that declares none is refused to every role.
"""
import csv
import datetime as dt
import io

from flask import Blueprint, Response, abort, current_app, redirect, render_template, request, url_for
from flask_login import current_user
from peewee import fn

from billing import accounts, audit_log, bounds, customers as customer_rules, held, imports, invites, invoicing, offline, outbox, paylinks, receipts, refunds, settings
from billing import staff as staff_rules
from billing.staff import CLERK, OWNER
from billing import api as api_rules
from billing import money
from billing import payments as pay
from billing.processors import ProcessorError
from db import keyset_chunks, models, pages
from db.models import Customer, Invoice, Isp, Payment, User
from views import login_manager, page_number, processor

bp = Blueprint("staff", __name__, url_prefix="/staff")
PER_PAGE = 50
STATUSES = ("processing", "held", "succeeded", "failed", "canceled", "awaiting_details", "awaiting_verification",
            "refunded", "disputed", "reversed")
ALL_METHODS = {**pay.METHOD_TYPES, **pay.OFFLINE_TYPES}


IMPORT_MAX_BYTES = 64 * 1024 * 1024  # a CSV of 100,000 invoices is about 9 MB


def _allow_big_imports():
    """Raise the upload limit (MAX_CONTENT_LENGTH, 1 MB) for staff posting to the import page only."""
    if (request.endpoint == "staff.import_page" and request.method == "POST"
            and current_user.is_authenticated and current_user.is_staff):
        request.max_content_length = IMPORT_MAX_BYTES


@bp.record_once
def _install(state):
    # First of the app's hooks: CSRF protection parses the form in its own hook, under the limit in force.
    state.app.before_request_funcs.setdefault(None, []).insert(0, _allow_big_imports)


def allow(role):
    """Declare the least staff role that may use a route (an owner may use every clerk's route)."""
    def mark(view):
        view.staff_role = role
        return view
    return mark


def needed_role(endpoint):
    """The role a staff endpoint declared, or None when it declared none (then nobody may use it)."""
    view = current_app.view_functions.get(endpoint)
    return getattr(view, "staff_role", None)


@bp.before_request
def _staff_only():
    if not current_user.is_authenticated:
        return login_manager.unauthorized()
    if not current_user.is_staff:
        abort(403)
    from views.twofactor import staff_must_enrol

    if staff_must_enrol(current_user.user):  # the ISP requires a second factor for staff (Settings)
        return redirect(url_for("twofactor.manage"), code=303)
    needed = needed_role(request.endpoint)
    if needed is None or not current_user.can(needed):
        abort(403)
    return None


def _actor():
    return f"staff:{current_user.user.id}"


def public_url(endpoint, **values):
    """An absolute link for email, on the portal's public address."""
    return current_app.config["PUBLIC_URL"].rstrip("/") + url_for(endpoint, **values)


def invite_link(token):
    """The emailed link that accepts an invite."""
    return public_url("account.accept", token=token)


def paylink_url(invoice_id):
    """A fresh signed pay-by-link URL for one invoice."""
    return public_url("paylink.show", token=paylinks.make(paylinks.keys(current_app.config), invoice_id))


@bp.route("/")
@allow(CLERK)
def index():
    """Staff home: what to do next."""
    return render_template(
        "staff/index.html", customers=Customer.select().count(), invoices=Invoice.select().count(),
        logins=User.select().where(User.role == "customer").count(), invited=invites.invited_count(),
        not_invited=invites.not_yet_invited().count(),
        processing=Payment.select().where(Payment.status == pay.PROCESSING).count(),
        mail_counts=outbox.counts(), stale=outbox.stale(current_app.config["OUTBOX_STALE_MINUTES"]),
        stale_minutes=current_app.config["OUTBOX_STALE_MINUTES"],
    )


@bp.route("/outbox")
@allow(CLERK)
def outbox_page():
    """The outbox: queued, sent and failed emails with the reason, and Resend."""
    status = request.args.get("status") if request.args.get("status") in outbox.STATUSES else ""
    page = outbox.rows(status, page_number(), PER_PAGE)
    notice = "Email queued again; it goes out with the next send-mail run." if request.args.get("resent") else None
    return render_template("staff/outbox.html", rows=page.rows, page=page, status=status, counts=outbox.counts(), labels=outbox.LABELS, notice=notice,
                           key=pay.new_idempotency_key(), args=request.args,
                           stale=outbox.stale(current_app.config["OUTBOX_STALE_MINUTES"]),
                           stale_minutes=current_app.config["OUTBOX_STALE_MINUTES"])


@bp.route("/outbox/<int:row_id>/resend", methods=["POST"])
@allow(CLERK)
def resend_email(row_id):
    """Send one email again (a failed one is queued again; a sent one is queued as a copy)."""
    try:
        outbox.resend(row_id, request.form.get("key", ""), actor=_actor())
    except LookupError:
        abort(404)
    except pay.FormErrors as e:
        page = outbox.rows(None, 1, PER_PAGE)
        return render_template("staff/outbox.html", rows=page.rows, page=page, status="",
                               counts=outbox.counts(), labels=outbox.LABELS, error=e.errors["form"],
                               key=pay.new_idempotency_key(), args={}, stale=None, stale_minutes=0), 422
    return redirect(url_for("staff.outbox_page", resent=1), code=303)


@bp.route("/customers")
@allow(CLERK)
def customers():
    """Customers, searchable by name, account number or email."""
    q = (request.args.get("q") or "").strip()[:100]
    query = Customer.select()
    if q:
        like = f"%{q.lower()}%"
        query = query.where(fn.LOWER(Customer.name) ** like | (Customer.account_number ** like)
                            | (Customer.email ** like))
    page = pages.paginate(query.order_by(Customer.name, Customer.id), page_number(), PER_PAGE)
    logins = {u.customer_id for u in User.select(User.customer).where(User.customer.in_([c.id for c in page]))}
    return render_template("staff/customers.html", rows=page.rows, q=q, total=page.total, page=page, logins=logins)


def _offline_form(form=None):
    """Values for the Record-a-payment form: a fresh idempotency key each time the form is shown anew."""
    values = {"kind": "cash", "received_on": accounts.today().isoformat(), "amount": "", "check_number": "",
              "note": "", "invoice": "", "idempotency_key": pay.new_idempotency_key()}
    if form is not None:
        values.update({k: form.get(k, "") for k in values})
    return values


def _customer_ctx(customer, **extra):
    extra.setdefault("offline_form", _offline_form())
    extra.setdefault("offline_errors", {})
    return dict(offline_types=pay.OFFLINE_TYPES, void_invoices=invoicing.void_for(customer.id),
        customer=customer, summary=accounts.summary(customer.id),
        invoices=accounts.invoice_views(customer.id),
        payments=list(Payment.select().where(Payment.customer == customer.id)
                      .order_by(Payment.created_at.desc(), Payment.id.desc()).limit(200)),
        tokens=invites.tokens_for(customer.id), cannot_invite=invites.can_invite(customer), labels=pay.LABELS,
        now=models.utcnow(), **customer_rules.overview(customer.id), **extra,
    )


@bp.route("/customers/<int:customer_id>")
@allow(CLERK)
def customer(customer_id):
    """One customer: invoices, payments and invites."""
    c = Customer.get_or_none(Customer.id == customer_id) or abort(404)
    notice = f"Invite queued for {c.email}." if request.args.get("invited") else None
    if request.args.get("mailed"):
        notice = f"Pay link for {request.args['mailed'][:64]} queued for {c.email}."
    if request.args.get("saved"):
        notice = "Details saved."
    return render_template("staff/customer.html", **_customer_ctx(c, notice=notice))


@bp.route("/customers/<int:customer_id>/edit", methods=["GET", "POST"])
@allow(CLERK)
def edit_customer(customer_id):
    """Change a customer's name, email, phone and address."""
    c = Customer.get_or_none(Customer.id == customer_id) or abort(404)
    if request.method == "GET":
        return render_template("staff/customer_edit.html", customer=c, form=customer_rules.form_values(c), errors={})
    try:
        customer_rules.update(c.id, request.form, actor=_actor())
    except pay.FormErrors as e:
        return render_template("staff/customer_edit.html", customer=c, form=request.form, errors=e.errors), 422
    return redirect(url_for("staff.customer", customer_id=c.id, saved=1), code=303)


@bp.route("/customers/<int:customer_id>/login/disable", methods=["POST"])
@allow(CLERK)
def disable_customer_login(customer_id):
    """Disable a customer's portal login; their open sessions end at once."""
    return _customer_login(customer_id, True)


@bp.route("/customers/<int:customer_id>/login/enable", methods=["POST"])
@allow(CLERK)
def enable_customer_login(customer_id):
    """Let a customer's disabled portal login log in again."""
    return _customer_login(customer_id, False)


def _customer_login(customer_id, disabled):
    c = Customer.get_or_none(Customer.id == customer_id) or abort(404)
    try:
        customer_rules.set_login_disabled(c.id, disabled, actor=_actor())
    except LookupError:
        abort(404)
    return redirect(url_for("staff.customer", customer_id=c.id), code=303)


@bp.route("/customers/<int:customer_id>/invite", methods=["POST"])
@allow(CLERK)
def invite(customer_id):
    """Email this customer an invite."""
    c = Customer.get_or_none(Customer.id == customer_id) or abort(404)
    try:
        invites.invite(c.id, invite_link, actor=_actor())
    except ValueError as e:
        return render_template("staff/customer.html", **_customer_ctx(c, error=str(e))), 422
    # Post/redirect/get: reloading the page must not send the invite again.
    return redirect(url_for("staff.customer", customer_id=c.id, invited=1), code=303)


@bp.route("/customers/<int:customer_id>/payments", methods=["POST"])
@allow(CLERK)
def record_payment(customer_id):
    """Record a cash, check or money-order payment taken at the counter (once, however often it is posted)."""
    c = Customer.get_or_none(Customer.id == customer_id) or abort(404)
    try:
        payment, _created = offline.record(c.id, request.form, actor=_actor())
    except pay.FormErrors as e:
        ctx = _customer_ctx(c, offline_form=_offline_form(request.form), offline_errors=e.errors,
                            error="The payment was not recorded. Correct the fields marked below.")
        return render_template("staff/customer.html", **ctx), 422
    return redirect(url_for("staff.payment", ref=payment.ref), code=303)


def _payment_ctx(payment, **extra):
    return dict(payment=payment, customer=Customer.get_by_id(payment.customer_id), labels=pay.LABELS,
                counter=offline.details_of(payment), ledger=accounts.payment_ledger(payment.id),
                credit_cents=accounts.credit_left(payment.id), reversals=list(payment.reversals),
                reversal_labels=accounts.REVERSAL_LABELS, receipt=offline.receipt_email(payment),
                refundable=refunds.refundable(payment), fee_refundable=refunds.fee_refundable(payment),
                refund_requests=refunds.requests_for(payment.id), disputes=pay.disputes_of(payment.id),
                dispute_labels=pay.DISPUTE_LABELS, can_refund=refunds.can_refund(processor()), errors={}, **extra)


@bp.route("/payments/<ref>")
@allow(CLERK)
def payment(ref):
    """One payment as staff see it: its receipt, where the money went, and what can be done with it."""
    p = offline.by_ref(ref) or abort(404)
    p.confirmation_code = receipts.code_for(p)  # what the customer reads out; older payments get one now
    notice = None
    done = refunds.request_by_id(bounds.parse_id(request.args.get("refunded")))
    if done is not None and done.payment_id == p.id:
        made = money.format_money(done.amount_cents + done.fee_cents, p.currency)
        if done.fee_cents:
            made += (f" ({money.format_money(done.amount_cents, p.currency)} of the payment and "
                     f"{money.format_money(done.fee_cents, p.currency)} of its fee)")
        notice = f"Refund of {made} made. The customer's email about it is queued."
    if request.args.get("resolved") and p.status != pay.HELD:
        notice = held.outcome_notice(p)
    return render_template("staff/payment.html", **_payment_ctx(p, notice=notice))


@bp.route("/payments/<ref>/held", methods=["GET", "POST"])
@allow(OWNER)
def resolve_held(ref):
    """Accept a held payment as the processor reported it, or refund and close it: a reason, a review, then once."""
    p = offline.by_ref(ref) or abort(404)
    if p.status != pay.HELD:
        return redirect(url_for("staff.payment", ref=p.ref), code=303)
    form = {"action": request.form.get("action", ""), "reason": request.form.get("reason", "")}
    try:
        found = held.report(p, processor())
    except ProcessorError as e:
        return render_template("staff/held.html", step="form", payment=p, customer=Customer.get_by_id(p.customer_id),
                               report=None, form=form, errors={"form": f"The processor could not be asked: {e}"},
                               actions=held.ACTIONS), 502
    ctx = dict(payment=p, customer=Customer.get_by_id(p.customer_id), report=found, actions=held.ACTIONS)
    if request.method == "GET" or request.form.get("step") == "edit":
        return render_template("staff/held.html", step="form", form=form, errors={}, **ctx)
    try:
        action, reason = held.check(p, form["action"], form["reason"])
        if request.form.get("step") != "confirm":
            if action == held.ACCEPT and found.accept_problem:
                raise pay.FormErrors({"action": found.accept_problem})
            return render_template("staff/held.html", step="review", form=form, action=action, reason=reason,
                                   errors={}, **ctx)
        done = held.resolve(p.id, action, reason, processor(), actor=_actor())
    except pay.FormErrors as e:
        return render_template("staff/held.html", step="form", form=form, errors=e.errors, **ctx), 422
    except ProcessorError as e:
        return render_template("staff/held.html", step="form", form=form,
                               errors={"form": f"The processor could not be asked: {e}"}, **ctx), 502
    return redirect(url_for("staff.payment", ref=done.ref, resolved=1), code=303)


@bp.route("/payments/<ref>/refund", methods=["GET", "POST"])
@allow(OWNER)
def refund_payment(ref):
    """Refund a payment, in full or in part, with a reason: a form, a review to confirm, then the refund once."""
    p = offline.by_ref(ref) or abort(404)
    ctx = dict(payment=p, customer=Customer.get_by_id(p.customer_id), refundable=refunds.refundable(p),
               fee_refundable=refunds.fee_refundable(p))
    form = {"amount": request.form.get("amount", money.cents_to_input(ctx["refundable"])),
            "reason": request.form.get("reason", "")}
    if request.method == "GET" or request.form.get("step") == "edit":
        return render_template("staff/refund.html", step="form", form=form, errors={}, **ctx)
    if request.form.get("step") != "confirm":
        try:
            cents, fee, reason = refunds.check(p, form["amount"], form["reason"])
        except pay.FormErrors as e:
            return render_template("staff/refund.html", step="form", form=form, errors=e.errors, **ctx), 422
        # The key is made when the refund is reviewed: confirming twice sends the same key, and refunds once.
        return render_template("staff/refund.html", step="review", form=form, cents=cents, fee=fee,
                               total=cents + fee, reason=reason, key=pay.new_idempotency_key(), errors={}, **ctx)
    try:
        done = refunds.refund(p.id, form["amount"], form["reason"], request.form.get("key", ""), processor(),
                              actor=_actor())
    except pay.FormErrors as e:
        fresh = Payment.get_by_id(p.id)
        ctx.update(refundable=refunds.refundable(fresh), fee_refundable=refunds.fee_refundable(fresh))
        return render_template("staff/refund.html", step="form", form=form, errors=e.errors, **ctx), 422
    if done.status == refunds.FAILED:
        return render_template("staff/refund.html", step="form", form=form,
                               errors={"form": f"The processor refused the refund: {done.error}"}, **ctx), 422
    return redirect(url_for("staff.payment", ref=p.ref, refunded=done.id), code=303)


@bp.route("/payments/<ref>/reverse", methods=["POST"])
@allow(CLERK)
def reverse_payment(ref):
    """Reverse a counter payment with a reason (a bounced check): new ledger rows, the invoices reopen."""
    p = offline.by_ref(ref) or abort(404)
    try:
        offline.reverse(p, request.form.get("reason"), actor=_actor())
    except pay.FormErrors as e:
        return render_template("staff/payment.html", **{**_payment_ctx(p), "errors": e.errors,
                                                        "reason": request.form.get("reason", "")}), 422
    return redirect(url_for("staff.payment", ref=p.ref), code=303)


@bp.route("/customers/<int:customer_id>/invoices/new", methods=["GET", "POST"])
@allow(CLERK)
def new_invoice(customer_id):
    """Create an invoice with lines for this customer (``?from=ID`` re-issues a void invoice's lines)."""
    c = Customer.get_or_none(Customer.id == customer_id) or abort(404)
    if request.method == "GET":
        source = Invoice.get_or_none((Invoice.id == bounds.parse_id(request.args.get("from")))
                                     & (Invoice.customer == c.id))
        return _invoice_form(c, None, invoicing.form_values(source, copy=True) if source else invoicing.form_values(),
                             {}, reissue_of=source)
    try:
        inv, _created = invoicing.create(c.id, request.form, actor=_actor())
    except pay.FormErrors as e:
        return _invoice_form(c, None, request.form, e.errors, status=422)
    return redirect(url_for("staff.invoice", invoice_id=inv.id), code=303)


def _invoice_form(customer, invoice, form, errors, status=200, reissue_of=None):
    return render_template("staff/invoice_form.html", customer=customer, invoice=invoice, form=form, errors=errors,
                           lines=range(invoicing.MAX_LINES), reissue_of=reissue_of), status


@bp.route("/invoices/<int:invoice_id>")
@allow(CLERK)
def invoice(invoice_id, errors=None, status=200, form=None):
    """One invoice: its lines and adjustments, what was applied, and edit, adjust, void or re-issue."""
    view = invoicing.staff_view(invoice_id) or abort(404)
    return render_template("staff/invoice.html", customer=Customer.get_by_id(view["invoice"].customer_id),
                           errors=errors or {}, form=form or {}, adj_key=pay.new_idempotency_key(),
                           **view), status


@bp.route("/invoices/<int:invoice_id>/edit", methods=["GET", "POST"])
@allow(CLERK)
def edit_invoice(invoice_id):
    """Edit the dates and lines of an invoice no money has touched."""
    inv = Invoice.get_or_none(Invoice.id == invoice_id) or abort(404)
    c = Customer.get_by_id(inv.customer_id)
    if request.method == "GET":
        reason = invoicing.why_not_editable(inv)
        if reason:
            return invoice(inv.id, errors={"form": f"Invoice {inv.number} cannot be edited. {reason}"}, status=409)
        return _invoice_form(c, inv, invoicing.form_values(inv), {})
    try:
        invoicing.update(inv.id, request.form, actor=_actor())
    except pay.FormErrors as e:
        if "form" in e.errors:
            return invoice(inv.id, errors=e.errors, status=409)
        return _invoice_form(c, inv, request.form, e.errors, status=422)
    return redirect(url_for("staff.invoice", invoice_id=inv.id), code=303)


@bp.route("/invoices/<int:invoice_id>/void", methods=["POST"])
@allow(CLERK)
def void_invoice(invoice_id):
    """Void an invoice with a reason; money applied to it becomes account credit."""
    inv = Invoice.get_or_none(Invoice.id == invoice_id) or abort(404)
    try:
        invoicing.void(inv.id, request.form.get("void_reason"), actor=_actor())
    except pay.FormErrors as e:
        return invoice(inv.id, errors=e.errors, status=422, form=request.form)
    return redirect(url_for("staff.invoice", invoice_id=inv.id), code=303)


@bp.route("/invoices/<int:invoice_id>/adjust", methods=["POST"])
@allow(CLERK)
def adjust_invoice(invoice_id):
    """Add an adjustment (credit note) to an invoice: a negative line, applied by the ledger rules."""
    inv = Invoice.get_or_none(Invoice.id == invoice_id) or abort(404)
    try:
        invoicing.adjust(inv.id, request.form, actor=_actor())
    except pay.FormErrors as e:
        return invoice(inv.id, errors=e.errors, status=422, form=request.form)
    return redirect(url_for("staff.invoice", invoice_id=inv.id), code=303)


@bp.route("/invites", methods=["POST"])
@allow(CLERK)
def invite_all():
    """Invite every customer not invited yet."""
    n = invites.invite_all(invite_link, actor=_actor())
    return redirect(url_for("staff.index", invited=n), code=303)


@bp.route("/invoices/<int:invoice_id>/paylink", methods=["POST"])
@allow(CLERK)
def paylink(invoice_id):
    """Make a pay-by-link URL for an invoice; optionally email it to the customer."""
    inv = Invoice.get_or_none(Invoice.id == invoice_id) or abort(404)
    c = Customer.get_by_id(inv.customer_id)
    if inv.void:
        return render_template("staff/customer.html", **_customer_ctx(c, error="That invoice is void.")), 422
    url = paylink_url(inv.id)
    notice = f"Pay link for {inv.number} (valid {paylinks.DEFAULT_DAYS} days)."
    if request.form.get("send") == "1":
        if not c.email:
            return render_template("staff/customer.html",
                                   **_customer_ctx(c, error=f"{c.name} has no email address on file.")), 422
        paylinks.email(inv, c, url, actor=_actor())
        return redirect(url_for("staff.customer", customer_id=c.id, mailed=inv.number), code=303)
    return render_template("staff/customer.html", **_customer_ctx(c, notice=notice, paylink=url,
                                                                   paylink_invoice=inv.id))


def _payment_filters():
    """Checked filters from the query string, and their errors."""
    args, errors, f = request.args, {}, {}
    for key in ("start", "end"):
        value = (args.get(key) or "").strip()
        if value:
            try:
                f[key] = bounds.parse_date(value)
            except bounds.BoundsError as e:
                errors[key] = str(e)
    f["status"] = args.get("status") if args.get("status") in STATUSES else ""
    f["method"] = args.get("method") if args.get("method") in ALL_METHODS else ""
    return f, errors


def _payments_query(f):
    q = (Payment.select(Payment, Customer).join(Customer).where(Payment.status != pay.CREATED))
    if f.get("start"):
        q = q.where(Payment.created_at >= dt.datetime.combine(f["start"], dt.time()))
    if f.get("end"):
        q = q.where(Payment.created_at < dt.datetime.combine(f["end"] + dt.timedelta(days=1), dt.time()))
    if f.get("status"):
        q = q.where(Payment.status == f["status"])
    if f.get("method"):
        q = q.where(Payment.method_type == f["method"])
    return q.order_by(Payment.created_at.desc(), Payment.id.desc())


def _failed_autopays():
    charge = getattr(models, "AutopayCharge", None)
    if charge is None:
        return []
    return list(charge.select(charge, Customer).join(Customer).where(charge.status == "failed")
                .order_by(charge.updated_at.desc()).limit(50))


COUNT_CAP = 10_000  # past this many matches the list says "more than" instead of counting every payment


def _payments_page(f, errors, page, args, **extra):
    # Counting a million payments costs a second; nobody pages that far, so the count stops at the cap.
    page = pages.paginate(_payments_query(f), page, 100, count_cap=COUNT_CAP)
    return render_template(
        "staff/payments.html", rows=page.rows, total=page.total, total_capped=page.total_capped, page=page,
        f=f, errors=errors, statuses=STATUSES, methods=ALL_METHODS, labels=pay.LABELS,
        pending_ach=list(_payments_query({"status": pay.PROCESSING, "method": "ach"}).limit(50)),
        failed_autopays=_failed_autopays(), args=args, **extra,
    )


@bp.route("/payments")
@allow(CLERK)
def payments():
    """Payments by date, status and method; pending ACH and failed autopays shown."""
    f, errors = _payment_filters()
    return _payments_page(f, errors, page_number(), request.args)


@bp.route("/payments/find")
@allow(CLERK)
def find_payment():
    """Support's look-up: the payment with the confirmation code a customer reads out."""
    text = (request.args.get("code") or "").strip()[:32]
    payment = receipts.find_by_code(text)
    if payment is not None:
        return redirect(url_for("staff.payment", ref=payment.ref), code=303)
    if not text:
        error = "Enter the confirmation code, like K7P-4QX."
    elif receipts.normalize(text) is None:
        error = (f"A confirmation code is {receipts.CODE_LENGTH} letters and digits, like K7P-4QX "
                 "(it never has 0, O, 1 or I).")
    else:
        error = f"No payment has the confirmation code {receipts.format_code(receipts.normalize(text))}."
    return _payments_page({}, {"code": error}, 1, {}, code=text), 404


EXPORT_COLUMNS = ("ref", "created_at", "settled_at", "account_number", "customer_name", "status", "method_type",
                  "method_brand", "method_last4", "amount", "currency", "invoices", "failure_code",
                  "confirmation_code", "fee", "charged")


@bp.route("/payments.csv")
@allow(CLERK)
def payments_csv():
    """The filtered payments as CSV, for the ISP's accounting."""
    f, errors = _payment_filters()
    if errors:
        abort(400, "; ".join(f"{k}: {v}" for k, v in errors.items()))

    def rows():
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(EXPORT_COLUMNS)
        yield buf.getvalue()
        columns = (Payment.id, Payment.ref, Payment.created_at, Payment.settled_at, Customer.account_number,
                   Customer.name, Payment.status, Payment.method_type, Payment.method_brand, Payment.method_last4,
                   Payment.amount_cents, Payment.currency, Payment.failure_code, Payment.confirmation_code,
                   Payment.fee_cents)
        # Named tuples, not model objects: building a model per row was most of the export's time.
        query = _payments_query(f).select(*columns).namedtuples()
        for chunk in keyset_chunks(query, (Payment.created_at, Payment.id)):
            applied = pay.applied_numbers_many(chunk)
            buf.seek(0)
            buf.truncate()
            for p in chunk:
                parts = ";".join(f"{number}={money.cents_to_input(cents)}" for number, cents in applied[p.id])
                w.writerow([p.ref, _stamp(p.created_at), _stamp(p.settled_at), _csv_safe(p.account_number),
                            _csv_safe(p.name), p.status, p.method_type, p.method_brand, p.method_last4,
                            money.cents_to_input(p.amount_cents), p.currency, parts, p.failure_code,
                            receipts.format_code(p.confirmation_code), money.cents_to_input(p.fee_cents),
                            money.cents_to_input(p.amount_cents + p.fee_cents)])
            yield buf.getvalue()

    name = f"payments-{dt.date.today().isoformat()}.csv"
    return Response(rows(), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


def _stamp(value):
    """A stored timestamp as 'YYYY-MM-DD HH:MM:SS' (SQLite may hand back text when no model converts it)."""
    if not value:
        return ""
    if isinstance(value, str):
        return value[:19].replace("T", " ")
    return value.isoformat(sep=" ", timespec="seconds")


def _csv_safe(value):
    """Stop spreadsheet formula injection from customer-supplied text."""
    value = str(value or "")
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def _audit_filters():
    """Checked audit filters from the query string, and their errors."""
    f = {k: (request.args.get(k) or "").strip()[:100] for k in ("actor", "action", "entity", "entity_id")}
    errors = {}
    for key in ("start", "end"):
        value = (request.args.get(key) or "").strip()
        f[key] = None
        if value:
            try:
                f[key] = bounds.parse_date(value)
            except bounds.BoundsError as e:
                errors[key] = str(e)
    return f, errors


@bp.route("/audit")
@allow(OWNER)
def audit():
    """The audit log in words: who (name and role), what, which record, when and from where; filterable."""
    f, errors = _audit_filters()
    q = audit_log.query(f)
    page = pages.paginate(q, page_number(), 100).map(audit_log.readable)
    return render_template("staff/audit.html", rows=page.rows, filters=f, errors=errors, page=page,
                           total=page.total, args=request.args)


AUDIT_COLUMNS = ("at", "who", "role", "actor", "what", "action", "record", "entity", "entity_id", "ip", "details")


@bp.route("/audit.csv")
@allow(OWNER)
def audit_csv():
    """The filtered audit log as CSV."""
    f, errors = _audit_filters()
    if errors:
        abort(400, "; ".join(f"{k}: {v}" for k, v in errors.items()))

    def rows():
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(AUDIT_COLUMNS)
        q = audit_log.query(f)
        for chunk_start in range(0, q.count(), 1000):
            for r in audit_log.readable(q.offset(chunk_start).limit(1000)):
                w.writerow([r["at"].isoformat(sep=" ", timespec="seconds"), _csv_safe(r["who"]), r["role"],
                            _csv_safe(r["actor"]), r["what"], r["action"], _csv_safe(r["label"]), r["entity"],
                            _csv_safe(r["entity_id"]), r["ip"], _csv_safe(r["details"])])
            yield buf.getvalue()
            buf.seek(0)
            buf.truncate()

    name = f"audit-{dt.date.today().isoformat()}.csv"
    return Response(rows(), mimetype="text/csv", headers={"Content-Disposition": f'attachment; filename="{name}"'})


@bp.route("/settings", methods=["GET", "POST"])
@allow(OWNER)
def settings_page():
    """The portal's settings: identity, links, tabs, payment types and limits, autopay, invitation text."""
    isp = Isp.current() or Isp(name="Customer Portal")
    if request.method == "GET":
        return render_template("staff/settings.html", form=settings.form_values(isp), errors={},
                               saved=request.args.get("saved"))
    try:
        settings.save(request.form, actor=_actor())
    except settings.SettingsErrors as e:
        return render_template("staff/settings.html", form=request.form, errors=e.errors), 422
    return redirect(url_for("staff.settings_page", saved=1), code=303)


@bp.route("/settings/logo", methods=["POST"])
@allow(OWNER)
def logo():
    """Upload (or remove) the logo shown on every page."""
    isp = Isp.current() or abort(404)
    if request.form.get("remove") == "1":
        settings.save_logo(None, actor=_actor())
        return redirect(url_for("staff.settings_page", saved=1), code=303)
    upload = request.files.get("logo")
    data = upload.read(settings.MAX_LOGO_BYTES + 1) if upload else b""
    try:
        settings.save_logo(data, actor=_actor())
    except settings.SettingsErrors as e:
        return render_template("staff/settings.html", form=settings.form_values(isp), errors=e.errors), 422
    return redirect(url_for("staff.settings_page", saved=1), code=303)


@bp.route("/import", methods=["GET", "POST"])
@allow(OWNER)
def import_page():
    """Import customers or invoices from a CSV file, with a dry run."""
    if request.method == "GET":
        return render_template("staff/import.html", errors=[], result=None, form={}, field_errors={})
    kind = request.form.get("kind")
    upload = request.files.get("file")
    field_errors = {}
    if kind not in ("customers", "invoices"):
        field_errors["kind"] = "Choose what the file holds."
    data = upload.read() if upload else b""
    if not data:
        field_errors["file"] = "Choose a CSV file."
    if field_errors:
        return render_template("staff/import.html", errors=[], result=None, form=request.form,
                               field_errors=field_errors), 422
    fn_ = imports.import_customers if kind == "customers" else imports.import_invoices
    try:
        result = fn_(data, dry_run=bool(request.form.get("dry_run")), actor=_actor())
    except imports.ImportError_ as e:
        return render_template("staff/import.html", errors=e.errors, result=None, form=request.form,
                               field_errors={}), 422
    return render_template("staff/import.html", errors=[], result=result, form=request.form, field_errors={})


@bp.route("/api-tokens", methods=["GET", "POST"])
@allow(OWNER)
def api_tokens():
    """Create and list billing-system API tokens."""
    new_token, error = None, None
    status = 200
    if request.method == "POST":
        try:
            _row, new_token = api_rules.create_token(request.form.get("name"), actor=_actor())
        except ValueError as e:
            error, status = str(e), 422
    return render_template("staff/api_tokens.html", tokens=api_rules.tokens(), new_token=new_token, error=error,
                           name=request.form.get("name", "") if error else ""), status


@bp.route("/api-tokens/<int:token_id>/revoke", methods=["POST"])
@allow(OWNER)
def revoke_token(token_id):
    """Revoke an API token at once."""
    models.ApiToken.get_or_none(models.ApiToken.id == token_id) or abort(404)
    api_rules.revoke_token(token_id, actor=_actor())
    return redirect(url_for("staff.api_tokens"), code=303)


def _staff_page(form=None, errors=None, notice=None, error=None, status=200):
    return render_template("staff/staff.html", logins=staff_rules.staff_logins(), roles=staff_rules.ROLES,
                           form=form or {}, errors=errors or {}, notice=notice, error=error,
                           me=current_user.user.id), status


@bp.route("/staff", methods=["GET", "POST"])
@allow(OWNER)
def staff_logins():
    """Staff logins: list them, and add one (owner or clerk)."""
    if request.method == "GET":
        added = request.args.get("added", "")[:254]
        return _staff_page(notice=f"Staff login created for {added}." if added else None)
    try:
        user = staff_rules.add_staff(request.form, actor=_actor())
    except pay.FormErrors as e:
        form = {k: request.form.get(k, "") for k in ("name", "email", "role")}
        return _staff_page(form=form, errors=e.errors, status=422)
    return redirect(url_for("staff.staff_logins", added=user.email), code=303)


@bp.route("/staff/<int:user_id>/disable", methods=["POST"])
@allow(OWNER)
def disable_staff(user_id):
    """Disable a staff login; its open sessions end at once."""
    return _staff_change(lambda: staff_rules.set_disabled(user_id, True, _actor(), current_user.user.id))


@bp.route("/staff/<int:user_id>/enable", methods=["POST"])
@allow(OWNER)
def enable_staff(user_id):
    """Let a disabled staff login log in again."""
    return _staff_change(lambda: staff_rules.set_disabled(user_id, False, _actor(), current_user.user.id))


@bp.route("/staff/<int:user_id>/role", methods=["POST"])
@allow(OWNER)
def staff_role(user_id):
    """Make a staff login an owner or a clerk."""
    role = request.form.get("role", "")
    return _staff_change(lambda: staff_rules.set_role(user_id, role, _actor(), current_user.user.id))


def _staff_change(change):
    try:
        change()
    except LookupError:
        abort(404)
    except ValueError as e:
        return _staff_page(error=str(e), status=422)
    return redirect(url_for("staff.staff_logins"), code=303)
