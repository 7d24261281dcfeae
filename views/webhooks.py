"""The one webhook endpoint, /webhooks/<processor>: signed by the processor, the only route exempt from CSRF."""
from flask import Blueprint, abort, current_app, jsonify, request

from billing import payments
from billing.processors import BadWebhook, ProcessorError
from views import csrf, processor

bp = Blueprint("webhooks", __name__, url_prefix="/webhooks")


@bp.route("/<name>", methods=["POST"])
@csrf.exempt
def receive(name):
    """A processor's event: verified on the raw body, its object re-read from the processor, applied once."""
    proc = processor()
    if name != proc.name:  # only the configured processor's events are taken
        abort(404)
    try:
        event = proc.parse_webhook(request.get_data(), request.headers)
    except BadWebhook as e:
        current_app.logger.warning("%s webhook rejected: %s", proc.name, e)
        return jsonify(error="invalid signature or body"), 400
    except ProcessorError as e:  # the processor retries the event later; nothing was recorded
        current_app.logger.warning("%s webhook: could not re-read the object: %s", proc.name, e)
        return jsonify(error="could not re-read the object"), 503
    if not event.handled:
        return jsonify(received=True, handled=False), 200
    fresh = payments.handle_remote_event(proc, event.id, event.type, event.update)
    return jsonify(received=True, handled=True, duplicate=not fresh), 200
