"""The portal's edge: what every request must pass before a view sees it, and what it is told when it does not.

Bad input is refused here, once, for every route, instead of in each view:

- text holding a NUL byte or a lone surrogate (PostgreSQL cannot store the first, no encoder the second) in the
  path, the query, a form or a JSON body;
- JSON nested deeper than ``JSON_MAX_DEPTH`` (Python's parser would hit its recursion limit);
- ids in URLs outside what a database integer holds (``<int:…>`` is bounded to 2^63-1; larger is a 404).

It also owns the answers the portal gives when something is wrong: its own error page for every HTTP error,
a 503 page saying why when the database cannot be written (read-only or full disk), ``/healthz`` for monitors,
and ``local_url`` — the one check that a return address (``next``, ``back``) stays on the portal.
"""
import json
import shutil
import pathlib
from urllib.parse import urlsplit

from flask import Blueprint, current_app, g, jsonify, render_template, request
from peewee import InternalError, OperationalError
from werkzeug.exceptions import HTTPException, abort
from werkzeug.routing import IntegerConverter, ValidationError

from billing import bounds
from billing.language import LANGUAGES, Speaker
from billing.words import N_, Text

bp = Blueprint("edge", __name__)
JSON_MAX_DEPTH = 32
# Endpoints whose body is JSON whatever its Content-Type says (a processor's signed webhooks).
JSON_BODY_ENDPOINTS = {"webhooks.receive"}


_MESSAGES = {
    400: N_("The request could not be understood."),
    403: N_("You do not have access to that page."),
    404: N_("We could not find that page."),
    405: N_("That page cannot be used that way."),
    413: N_("That upload is too large."),
    429: N_("Too many attempts. Wait a moment and try again."),
    500: N_("Something went wrong on our side. Please try again."),
}


class DatabaseIdConverter(IntegerConverter):
    """``<int:…>`` that matches only ids a database integer can hold; anything larger is a 404, not a crash."""

    def __init__(self, map, *args, **kwargs):
        kwargs.setdefault("max", bounds.MAX_DB_INT)
        super().__init__(map, *args, **kwargs)

    def to_python(self, value):
        if len(value) > len(str(bounds.MAX_DB_INT)):
            raise ValidationError()
        return super().to_python(value)


def bad_text(value):
    """The reason this text cannot be accepted anywhere (NUL byte, lone surrogate), or None."""
    if "\x00" in value:
        return "contains a NUL character"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid Unicode text"
    return None


def json_problem(raw):
    """Why this JSON body is refused before anyone parses it for real, or None (also for non-JSON)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return "the body is not UTF-8"
    try:
        data = json.loads(text)
    except RecursionError:
        return f"JSON nested more than {JSON_MAX_DEPTH} levels deep"
    except ValueError:
        return None  # not JSON at all: the endpoint answers that in its own words
    stack = [(data, 1)]
    while stack:  # iterative: a deep document cannot exhaust the stack here either
        value, depth = stack.pop()
        if depth > JSON_MAX_DEPTH:
            return f"JSON nested more than {JSON_MAX_DEPTH} levels deep"
        if isinstance(value, dict):
            for key, item in value.items():
                if bad_text(key):
                    return f"a JSON key {bad_text(key)}"
                stack.append((item, depth + 1))
        elif isinstance(value, list):
            stack.extend((item, depth + 1) for item in value)
        elif isinstance(value, str) and bad_text(value):
            return f"a JSON string {bad_text(value)}"
    return None


def _texts():
    yield "the address", request.path
    for source, multi in (("the query", request.args), ("the form", request.form)):
        for key, value in multi.items(multi=True):
            yield source, key
            yield source, value
    for key, upload in request.files.items(multi=True):
        yield "an upload", key
        yield "an upload", upload.filename or ""
    yield "the User-Agent header", request.headers.get("User-Agent", "")


def check_request():
    """Refuse (400) a request carrying text no field may hold, or hostile JSON; before any view runs."""
    for where, text in _texts():
        problem = bad_text(text)
        if problem:
            abort(400, f"Text in {where} {problem}.")
    if request.content_length != 0 and (request.is_json or request.endpoint in JSON_BODY_ENDPOINTS):
        problem = json_problem(request.get_data(cache=True))
        if problem:
            abort(400, f"Refused: {problem}.")


def local_url(target):
    """``target`` if it is a page of this portal (a path a browser keeps on this host), else None.

    Parsed as a URL, the way a browser would, rather than by its first characters: browsers drop tabs and
    newlines and read a backslash as a slash, so ``/\\t/evil.example`` is ``//evil.example``.
    """
    if not target or len(target) > 2048 or "\\" in target:
        return None
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in target):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not parts.path.startswith("/") or parts.path.startswith("//"):
        return None
    try:
        current_app.url_map.bind("portal.invalid").match(parts.path, method="GET")
    except HTTPException:  # not one of our pages (or only after a redirect)
        return None
    return target


def _wants_json():
    return request.path.startswith("/api/") or request.endpoint in JSON_BODY_ENDPOINTS


def _http_error(e):
    code = e.code or 500
    message = _MESSAGES.get(code, e.name)
    if code in (400, 413, 429) and e.description and not e.description.startswith(("The browser", "The server")):
        message = e.description  # our own words, given to abort()
    if "CSRF" in message:
        message = N_("This form has expired. Go back, reload the page and try again.")
    if _wants_json():
        response = jsonify(error=message)
    else:
        response = current_app.make_response((render_template("error.html", code=code, message=message), code))
    response.status_code = code
    for key, value in (e.get_headers() if code in (405, 429) else []):
        if key.lower() != "content-type":
            response.headers[key] = value
    return response


STORAGE_WORDS = (
    ("readonly", N_("the database is read-only")),
    ("read-only", N_("the database is read-only")),
    ("disk is full", N_("the disk is full")),
    ("no space left", N_("the disk is full")),
    ("disk i/o", N_("the disk cannot be read or written")),
    ("unable to open", N_("the database file cannot be opened")),
    ("locked", N_("the database is busy")),
)


def _free_bytes():
    url = current_app.config["DATABASE_URL"]
    if not url.startswith("sqlite:///"):
        return None
    try:
        return shutil.disk_usage(pathlib.Path(url[len("sqlite:///"):]).parent).free
    except OSError:
        return None


def storage_reason(error):
    """In plain words, why the database refused (read-only, full, …), or None when it is not a storage fault."""
    text = str(error).lower()
    for word, reason in STORAGE_WORDS:
        if word in text:
            free = _free_bytes()
            # SQLite reports a full disk under its WAL as an I/O error; the free space tells them apart.
            if reason.startswith("the disk cannot") and free is not None and free < 1024 * 1024:
                return N_("the disk is full")
            return reason
    return None


def _storage_error(e):
    reason = storage_reason(e)
    if reason is None and isinstance(e, InternalError):
        raise e  # a bug, not the disk: let it be a 500 and be logged
    reason = reason or N_("the database cannot be reached")
    current_app.logger.error("database unavailable (%s): %s", reason, e)
    from db.models import Isp

    g.isp = Isp(name="Customer Portal")  # the hooks that still run after this must not ask the database
    message = N_("The portal cannot save or show your account right now: %(reason)s. Please try again later.",
                 reason=Text(reason))
    if request.endpoint == "edge.healthz":  # the database failed before /healthz could ask it itself
        response = jsonify(status="unavailable", database=reason)
    elif _wants_json():
        response = jsonify(error=message)
    else:  # rendered without the context processors and layout: they read the database too
        # in the language this request already chose, else the cookie's or the browser's: not the account's,
        # which is in the database; through billing/language.py, since Flask-Babel's selector reads it too
        from views.i18n import COOKIE

        lang = g.get("language") or request.cookies.get(COOKIE)
        lang = lang if lang in LANGUAGES else request.accept_languages.best_match(LANGUAGES) or "en"
        speaker = Speaker(lang)
        page = current_app.jinja_env.get_template("unavailable.html").render(
            message=speaker.text(message), _=speaker.say, lang=speaker.lang)
        response = current_app.make_response(page)
    response.status_code = 503
    response.headers["Retry-After"] = "60"
    return response


def health():
    """(ok, details): can the database be written, and how much disk is left."""
    from db import database, write_tx
    from db.models import HealthCheck, utcnow

    details = {}
    try:
        database.connect(reuse_if_open=True)
        with write_tx():
            if not HealthCheck.update(checked_at=utcnow()).where(HealthCheck.id == 1).execute():
                HealthCheck.create(id=1, checked_at=utcnow())
        details["database"] = "writable"
    except (OperationalError, InternalError) as e:
        details["database"] = storage_reason(e) or "the database cannot be reached"
    if current_app.config["DATABASE_URL"].startswith("sqlite:///"):
        details["disk_free_bytes"] = _free_bytes()
    return details["database"] == "writable", details


@bp.route("/healthz")
def healthz():
    """For monitors and load balancers: 200 when the portal can write its database, else 503 saying why."""
    ok, details = health()
    return jsonify(status="ok" if ok else "unavailable", **details), 200 if ok else 503


def init_app(app):
    """Bound ids in URLs, check every request at the edge, and answer errors with the portal's own pages."""
    app.url_map.converters["int"] = DatabaseIdConverter
    app.before_request_funcs.setdefault(None, []).insert(0, check_request)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(OperationalError, _storage_error)
    app.register_error_handler(InternalError, _storage_error)
    app.register_blueprint(bp)
