"""The billing-system JSON API under /api/v1, authenticated by per-ISP bearer tokens (see README)."""
import functools

from flask import Blueprint, current_app, g, jsonify, request, url_for

from billing import api as rules
from billing import imports, paylinks
from db.models import Customer, Invoice
from views import csrf

bp = Blueprint("api", __name__, url_prefix="/api/v1")
csrf.exempt(bp)  # no cookies here: every request carries its bearer token instead

CUSTOMER_FIELDS = set(imports.CUSTOMER_COLUMNS)
INVOICE_FIELDS = set(imports.INVOICE_COLUMNS) | {"amount_cents"}
MAX_LIMIT = 500
MAX_BATCH = 5000


def _error(status, message, fields=None, **headers):
    body = {"error": message}
    if fields:
        body["fields"] = fields
    return jsonify(body), status, headers


def token_required(view):
    """Only requests with a live bearer token get through (401 otherwise)."""

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        token = rules.authenticate(request.headers.get("Authorization"))
        if token is None:
            return _error(401, "send a valid API token as 'Authorization: Bearer <token>'",
                          **{"WWW-Authenticate": 'Bearer realm="api"'})
        g.api_token = token
        return view(*args, **kwargs)

    return wrapper


def _actor():
    return f"api:{g.api_token.id}"


def _body(allowed):
    """The JSON object sent, as strings by field, or an error response."""
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        return None, _error(400, "send a JSON object with Content-Type: application/json")
    fields = _check_types(data, allowed)
    if fields:
        return None, _error(422, "the request has invalid fields", fields)
    return {k: ("" if v is None else v) for k, v in data.items()}, None


def _fields(err):
    return {e.column: e.message for e in err.errors}


def _check_types(item, allowed):
    """{field: message} for wrongly typed or unknown fields of one JSON object."""
    fields = {}
    for key, value in item.items():
        if key not in allowed:
            fields[key] = "unknown field"
        elif key == "amount_cents":
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                fields[key] = "must be a whole number of cents, 0 or more"
        elif value is not None and not isinstance(value, str):
            fields[key] = "must be a string"
    return fields


def _batch(key, allowed, upsert):
    """Upsert a list of records in one transaction: all or nothing, errors by index and field."""
    data = request.get_json(silent=True)
    items = data.get(key) if isinstance(data, dict) else None
    if not isinstance(items, list) or not items or len(items) > MAX_BATCH:
        return _error(400, f'send a JSON object {{"{key}": [...]}} with 1 to {MAX_BATCH} records')
    rows, problems = [], []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            problems.append({"index": index, "field": None, "message": "must be a JSON object"})
            continue
        problems += [{"index": index, "field": f, "message": m} for f, m in _check_types(item, allowed).items()]
        if "amount" in item and "amount_cents" in item:
            problems.append({"index": index, "field": "amount", "message": "send amount or amount_cents, not both"})
        record = {k: ("" if v is None else v) for k, v in item.items()}
        if isinstance(record.get("amount_cents"), int) and not isinstance(record["amount_cents"], bool):
            cents = record.pop("amount_cents")
            record["amount"] = f"{cents // 100}.{cents % 100:02d}"
        rows.append((index, record))
    if problems:
        return jsonify({"error": "some records have invalid fields", "errors": problems}), 422
    try:
        result = upsert(rows, dry_run=request.args.get("dry_run") in ("1", "true"), actor=_actor())
    except imports.ImportError_ as e:
        status = 409 if all(err.conflict for err in e.errors) else 422
        return jsonify({"error": "nothing was saved", "errors": [
            {"index": err.row, "field": err.column, "message": err.message} for err in e.errors]}), status
    return jsonify({"created": result.created, "updated": result.updated, "unchanged": result.unchanged,
                    "dry_run": result.dry_run, "message": result.message()})


@bp.route("/customers", methods=["POST"])
@token_required
def post_customers():
    """Create or update many customers at once, by account number."""
    return _batch("customers", CUSTOMER_FIELDS, imports.upsert_customers)


@bp.route("/invoices", methods=["POST"])
@token_required
def post_invoices():
    """Create or update many invoices at once, by invoice number; credit goes to new invoices oldest first."""
    return _batch("invoices", INVOICE_FIELDS, imports.upsert_invoices)


@bp.route("/customers/<account_number>", methods=["PUT"])
@token_required
def put_customer(account_number):
    """Create or update a customer by account number."""
    data, err = _body(CUSTOMER_FIELDS)
    if err:
        return err
    if data.get("account_number", account_number) != account_number:
        return _error(422, "the request has invalid fields", {"account_number": "does not match the URL"})
    data["account_number"] = account_number
    try:
        customer, outcome = imports.upsert_customer(data, actor=_actor())
    except imports.ImportError_ as e:
        return _error(422, "the request has invalid fields", _fields(e))
    return jsonify({"result": outcome, "customer": rules.customer_json(customer)}), 201 if outcome == "created" else 200


@bp.route("/customers/<account_number>", methods=["GET"])
@token_required
def get_customer(account_number):
    """One customer."""
    customer = Customer.get_or_none(Customer.account_number == account_number)
    if customer is None:
        return _error(404, "no customer has this account number")
    return jsonify({"customer": rules.customer_json(customer)})


def _invoice_out(inv):
    out = rules.invoice_json(inv)
    if not inv.void:
        token = paylinks.make(paylinks.keys(current_app.config), inv.id)
        out["pay_url"] = current_app.config["PUBLIC_URL"].rstrip("/") + url_for("paylink.show", token=token)
    return out


@bp.route("/invoices/<number>", methods=["PUT"])
@token_required
def put_invoice(number):
    """Create or update an invoice by number; credit on the account is applied to a new one."""
    data, err = _body(INVOICE_FIELDS)
    if err:
        return err
    if data.get("invoice_number", number) != number:
        return _error(422, "the request has invalid fields", {"invoice_number": "does not match the URL"})
    data["invoice_number"] = number
    if "amount_cents" in data:
        if "amount" in data:
            return _error(422, "the request has invalid fields", {"amount": "send amount or amount_cents, not both"})
        cents = data.pop("amount_cents")
        data["amount"] = f"{cents // 100}.{cents % 100:02d}"
    try:
        inv, outcome = imports.upsert_invoice(data, actor=_actor())
    except imports.ImportError_ as e:
        status = 409 if any(err.conflict for err in e.errors) else 422
        return _error(status, "the invoice cannot be saved", _fields(e))
    return jsonify({"result": outcome, "invoice": _invoice_out(inv)}), 201 if outcome == "created" else 200


@bp.route("/invoices/<number>", methods=["GET"])
@token_required
def get_invoice(number):
    """One invoice, with what is paid and a pay-by-link URL."""
    inv = Invoice.get_or_none(Invoice.number == number)
    if inv is None:
        return _error(404, "no invoice has this number")
    return jsonify({"invoice": _invoice_out(inv)})


@bp.route("/invoices/<number>/void", methods=["POST"])
@token_required
def void_invoice(number):
    """Mark an invoice void (refused while payments are applied to or pending on it)."""
    try:
        inv, outcome = imports.void_invoice(number, actor=_actor())
    except LookupError:
        return _error(404, "no invoice has this number")
    except ValueError as e:
        return _error(409, str(e))
    return jsonify({"result": outcome, "invoice": _invoice_out(inv)})


@bp.route("/payments", methods=["GET"])
@token_required
def payments():
    """Payments changed since a cursor, oldest change first, with the cursor for the next call."""
    args = request.args
    fields = {}
    try:
        limit = int(args.get("limit", 100))
        if not 1 <= limit <= MAX_LIMIT:
            raise ValueError
    except ValueError:
        fields["limit"] = f"must be a whole number from 1 to {MAX_LIMIT}"
        limit = 100
    status = args.get("status") or None
    if status and status not in rules.STATUS_FILTERS:
        fields["status"] = f"must be {', '.join(rules.STATUS_FILTERS[:-1])} or {rules.STATUS_FILTERS[-1]}"
    since = args.get("since") or None
    if since:
        try:
            rules.decode_cursor(since)
        except ValueError as e:
            fields["since"] = str(e)
    if fields:
        return _error(400, "the query has invalid parameters", fields)
    rows, nxt = rules.payments_since(since, limit, status, current_app.config.get("API_FEED_LAG_SECONDS", 5))
    return jsonify({"payments": [rules.payment_json(p) for p in rows], "next_cursor": nxt,
                    "has_more": len(rows) == limit})
