"""gunicorn's access log without secrets: `make serve` logs through this class.

Some URLs carry a secret in their path (an invite, a password reset, a pay-by-link) or in their query (the
sandbox window's client secret). An access log is read by more people and kept longer than the database, so
the secret parts are replaced with "…" and query strings are left out of every line, the referrer's included.
"""
import re

from gunicorn.glogging import Logger

_SECRET_PATH = re.compile(r"^(/(?:invite|reset|paylink|signup)/)[^/?\s]+")


def redact(path):
    """The path with secret segments replaced and no query string."""
    path = (path or "").split("?", 1)[0]
    return _SECRET_PATH.sub(r"\1…", path)


class RedactingLogger(Logger):
    """gunicorn's logger, with the request line, path, query and referrer stripped of secrets."""

    def atoms(self, resp, req, environ, request_time):
        atoms = super().atoms(resp, req, environ, request_time)
        path = redact(environ.get("PATH_INFO", ""))
        atoms["U"] = path
        atoms["q"] = ""
        atoms["r"] = f"{environ.get('REQUEST_METHOD', '-')} {path} {environ.get('SERVER_PROTOCOL', '-')}"
        referer = atoms.get("f", "-")
        if referer not in ("-", ""):
            scheme, _, rest = referer.partition("://")
            host, slash, tail = rest.partition("/")
            atoms["f"] = f"{scheme}://{host}{redact(slash + tail) if slash else ''}"
        return atoms
