"""Webhook endpoints: signed by the processor, the only routes exempt from CSRF."""
from flask import Blueprint, abort, current_app, jsonify, request

from billing import payments
from views import csrf, processor

bp = Blueprint("webhooks", __name__, url_prefix="/webhooks")


@bp.route("/sandbox", methods=["POST"])
@csrf.exempt
def sandbox():
    """Events from the built-in sandbox processor, HMAC-signed."""
    proc = processor()
    if proc.name != "sandbox":
        abort(404)
    from billing.processors.sandbox import SIGNATURE_HEADER

    try:
        event = proc.verify(request.get_data(), request.headers.get(SIGNATURE_HEADER))
    except ValueError as e:
        current_app.logger.warning("sandbox webhook rejected: %s", e)
        return jsonify(error=str(e)), 400
    first = payments.handle_event(proc, event["id"], event["type"], event["intent_id"])
    return jsonify(received=True, duplicate=not first), 200
