"""Static files under content-hashed names, compressed once at start-up and cached for a year.

``static_url("app.js")`` in a template gives ``/assets/app.<hash>.js``. The name changes whenever the
content does, so browsers may keep the file for a year without asking again. A bundle joins several
files into one download (one round trip fewer on a 900 ms link), and ``inline_style()`` puts the small
stylesheet into the page itself, allowed by its hash in the Content-Security-Policy, so the first
render needs no second round trip either. Pages and fragments are compressed per response by
Flask-Compress (brotli, else gzip).
"""
import base64
import gzip
import hashlib
import pathlib
import threading
from dataclasses import dataclass

import brotli
from flask import Blueprint, Response, abort, current_app, request, url_for
from flask_compress import Compress
from markupsafe import Markup

bp = Blueprint("assets", __name__)
compress = Compress()

YEAR = 365 * 24 * 3600
IMMUTABLE = f"public, max-age={YEAR}, immutable"

# One script download for every portal page: htmx first, then the portal's own script, then the
# sandbox pop-up's self-closing line (which acts only on the sandbox's "done" page), so the pop-up
# finds the file already cached. Order matters: portal.js expects htmx to be defined.
BUNDLES = {
    "app.js": ("htmx-2.0.11.min.js", "portal.js", "sandbox-done.js", "session-timeout.js"),
}
# The stylesheet that inline_style() puts into every full page.
INLINE_CSS = "app.css"
MIMETYPES = {".js": "text/javascript", ".css": "text/css"}


@dataclass(frozen=True)
class Asset:
    """One file as served: its hashed name, type, and its bytes raw, brotli'd and gzipped."""

    name: str
    mimetype: str
    raw: bytes
    br: bytes
    gz: bytes


def _hashed_name(logical, data):
    stem, dot, ext = logical.rpartition(".")
    return f"{stem}.{hashlib.sha256(data).hexdigest()[:12]}{dot}{ext}"


def _build(logical, data):
    return Asset(
        name=_hashed_name(logical, data),
        mimetype=MIMETYPES.get(pathlib.PurePath(logical).suffix, "application/octet-stream"),
        raw=data,
        br=brotli.compress(data, quality=11),
        gz=gzip.compress(data, compresslevel=9, mtime=0),
    )


def _fingerprint(folder):
    """What the built assets depend on: every served file's name, size and modification time."""
    return tuple((p.name, p.stat().st_size, p.stat().st_mtime_ns)
                 for p in sorted(folder.iterdir()) if p.suffix in MIMETYPES and p.is_file())


# Built assets per static folder, shared by every app of the process: brotli at quality 11 costs
# 0.2-0.4 s, paid once rather than by each app (the test suite makes hundreds). A changed file
# changes the fingerprint, so a new app still sees it.
_built = {}
_built_lock = threading.Lock()


def load(static_folder):
    """The static files and bundles, hashed and compressed once per process; {logical name: Asset}."""
    folder = pathlib.Path(static_folder).resolve()
    fingerprint = _fingerprint(folder)
    with _built_lock:
        cached = _built.get(folder)
        if cached is None or cached[0] != fingerprint:
            cached = _built[folder] = (fingerprint, _load(folder))
        return cached[1]


def _load(folder):
    assets = {}
    for path in sorted(folder.iterdir()):
        if path.suffix in MIMETYPES and path.is_file():
            assets[path.name] = _build(path.name, path.read_bytes())
    for name, parts in BUNDLES.items():
        data = b"\n;\n".join((folder / part).read_bytes().rstrip() for part in parts) + b"\n"
        assets[name] = _build(name, data)
    return assets


def _registry():
    return current_app.extensions["assets"]


def static_url(filename):
    """The content-hashed URL of a static file or bundle (plain /static/ for anything else)."""
    asset = _registry()["by_logical"].get(filename)
    if asset is None:
        return url_for("static", filename=filename)
    return url_for("assets.serve", name=asset.name)


def inline_style():
    """The stylesheet as an inline <style> element; the CSP allows exactly this text by its hash."""
    return Markup("<style>") + Markup(_registry()["css_text"]) + Markup("</style>")


@bp.route("/assets/<name>")
def serve(name):
    """A hashed file, precompressed, cacheable for a year."""
    asset = _registry()["by_name"].get(name)
    if asset is None:
        abort(404)
    enc = request.accept_encodings.best_match(("br", "gzip"))  # Werkzeug weighs q-values and "*"
    body = {"br": asset.br, "gzip": asset.gz}.get(enc, asset.raw)
    response = Response(body, mimetype=asset.mimetype)
    if enc:
        response.headers["Content-Encoding"] = enc
    response.headers["Cache-Control"] = IMMUTABLE
    response.headers["Vary"] = "Accept-Encoding"
    response.set_etag(name)
    return response


def style_hash(css_text):
    """The CSP source expression ('sha256-…') that allows this exact inline stylesheet."""
    digest = hashlib.sha256(css_text.encode()).digest()
    return f"'sha256-{base64.b64encode(digest).decode()}'"


def init_app(app):
    """Hash and compress static files, register /assets/, the template helpers and compression.

    Call after the CSP is in app.config: the inline stylesheet's hash is added to its style-src.
    Call before the app's own after_request hooks so that compression runs last.
    """
    by_logical = load(app.static_folder)
    css_text = by_logical[INLINE_CSS].raw.decode().strip()
    app.extensions["assets"] = {
        "by_logical": by_logical,
        "by_name": {a.name: a for a in by_logical.values()},
        "css_text": css_text,
    }
    app.register_blueprint(bp)
    app.jinja_env.globals.update(static_url=static_url, inline_style=inline_style)
    csp = app.config.get("CSP", "")
    if "style-src 'self'" in csp and style_hash(css_text) not in csp:
        app.config["CSP"] = csp.replace("style-src 'self'", f"style-src 'self' {style_hash(css_text)}", 1)
    app.config.setdefault("COMPRESS_ALGORITHM", ["br", "gzip"])
    app.config.setdefault("COMPRESS_ALGORITHM_STREAMING", ["br", "deflate"])
    app.config.setdefault("COMPRESS_BR_LEVEL", 6)  # q6: ~0.1 ms a page; q11 saves ~9% for ~7 ms
    # The staff's CSV export (payments, audit) is text that shrinks ~10x, and it is streamed.
    app.config.setdefault("COMPRESS_MIMETYPES", ["text/html", "text/css", "text/plain", "text/csv",
                                                 "text/javascript", "application/javascript", "application/json",
                                                 "image/svg+xml"])
    compress.init_app(app)
