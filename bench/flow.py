"""The sandbox card payment walked the way a browser does it, counting bytes on the wire.

Used by the byte-budget test (tests/test_budgets.py) and by ``make bench``. It runs in process
through Flask's test client, sends the headers Chromium sends (so compression is negotiated as in a
real browser), fetches every stylesheet, script, icon and image a full page links to (once: a cold
cache at the start, a warm one afterwards, as in one browser profile), and counts each response's
status line, headers and compressed body.
"""
from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import urlsplit

ACCEPT_ENCODING = "gzip, deflate, br, zstd"  # what Chromium sends
CARD = {"number": "4242 4242 4242 4242", "expiry": "12 / 34", "cvc": "123", "zip": "78701"}


@dataclass
class Hit:
    """One request and what came back."""

    step: str
    method: str
    url: str
    status: int
    encoding: str
    body_bytes: int
    header_bytes: int

    @property
    def bytes(self):
        return self.body_bytes + self.header_bytes


@dataclass
class Walk:
    """Every request of a flow, grouped by the step that caused it."""

    hits: list = field(default_factory=list)

    def step(self, name):
        return [h for h in self.hits if h.step == name]

    def steps(self):
        seen = []
        for h in self.hits:
            if h.step not in seen:
                seen.append(h.step)
        return seen

    @property
    def bytes(self):
        return sum(h.bytes for h in self.hits)

    @property
    def requests(self):
        return len(self.hits)


class _Page(HTMLParser):
    """The sub-resources a page needs to render, and its forms' fields."""

    def __init__(self):
        super().__init__()
        self.resources = []
        self.inputs = {}
        self.attrs = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.attrs.append((tag, a))
        if tag == "script" and a.get("src"):
            self.resources.append(a["src"])
        elif tag == "link" and a.get("href") and set((a.get("rel") or "").split()) & {"stylesheet", "icon",
                                                                                         "preload", "modulepreload"}:
            self.resources.append(a["href"])
        elif tag in ("img", "iframe") and a.get("src"):
            self.resources.append(a["src"])
        elif tag == "input" and a.get("name"):
            kind = a.get("type", "text")
            if kind in ("radio", "checkbox") and "checked" not in a:
                return
            self.inputs.setdefault(a["name"], a.get("value") or "")


def parse(html):
    """The resources and form fields of an HTML page or fragment."""
    p = _Page()
    p.feed(html)
    return p


def _header_bytes(response):
    lines = [f"HTTP/1.1 {response.status}"] + [f"{k}: {v}" for k, v in response.headers.items()]
    return len("\r\n".join(lines).encode()) + 4


def _path(url):
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


class Browser:
    """A test client that behaves like one browser profile: compression, cache, htmx headers."""

    def __init__(self, client):
        self.client = client
        self.cache = set()
        self.walk = Walk()
        self.current = "/"

    def _record(self, step, method, url, response):
        self.walk.hits.append(Hit(step, method, url, response.status_code,
                                  response.headers.get("Content-Encoding", "identity"),
                                  len(response.get_data()), _header_bytes(response)))

    def request(self, step, method, url, data=None, htmx=False, page=False):
        """Send one request as the browser would; for a full page, also fetch what it links to."""
        headers = {"Accept-Encoding": ACCEPT_ENCODING}
        if htmx:
            headers.update({"HX-Request": "true", "HX-Current-URL": "http://127.0.0.1" + self.current})
        r = self.client.open(url, method=method, data=data, headers=headers)
        self._record(step, method, url, r)
        html = ""
        if r.mimetype == "text/html":
            html = _decoded(r)
        if page:
            for res in parse(html).resources:
                if res.startswith("data:") or res in self.cache:
                    continue
                self.cache.add(res)
                sub = self.client.get(_path(res), headers={"Accept-Encoding": ACCEPT_ENCODING})
                self._record(step, "GET", res, sub)
            self.current = urlsplit(url).path
        return r, html

    def follow(self, step, r):
        """Follow redirects the way a browser does (GET, then the page's resources)."""
        html = _decoded(r) if r.mimetype == "text/html" else ""
        while r.status_code in (301, 302, 303, 307):
            r, html = self.request(step, "GET", _path(r.headers["Location"]), page=True)
        return r, html


def _decoded(r):
    data = r.get_data()
    enc = r.headers.get("Content-Encoding")
    if enc == "br":
        import brotli

        data = brotli.decompress(data)
    elif enc == "gzip":
        import gzip

        data = gzip.decompress(data)
    return data.decode()


def pay_by_card(client, email, password):
    """Log in and pay the balance by sandbox card through the pop-up; returns the Walk."""
    b = Browser(client)
    _, html = b.request("Login page", "GET", "/login", page=True)
    form = parse(html).inputs
    r, _ = b.request("Log in → Home", "POST", "/login",
                     data={"csrf_token": form["csrf_token"], "email": email, "password": password})
    _, html = b.follow("Log in → Home", r)
    assert "Log out" in html, "login failed"

    _, html = b.request("Payments tab (htmx)", "GET", "/payments", htmx=True)
    fields = parse(html).inputs
    fields["method_type"] = "card"
    _, html = b.request("Continue (htmx)", "POST", "/pay", data=fields, htmx=True)
    assert "Billing Information" in html, html
    billing = parse(html)
    action = next(a["hx-post"] for tag, a in billing.attrs if tag == "form" and a.get("hx-post"))
    _, html = b.request("Make Payment (htmx)", "POST", action, data=billing.inputs, htmx=True)
    popup = next(a["data-popup-url"] for tag, a in parse(html).attrs if a.get("data-popup-url"))
    poll = next(a["hx-get"] for tag, a in parse(html).attrs if tag == "p" and a.get("id") == "pay-poll")

    _, html = b.request("Pop-up: card form", "GET", _path(popup), page=True)
    entry = parse(html)
    action = next(a["action"] for tag, a in entry.attrs if tag == "form")
    r, html = b.request("Pop-up: Pay", "POST", action, data={**entry.inputs, **CARD}, page=True)
    assert r.status_code == 200 and "sandbox-done" in html, html[:500]

    _, html = b.request("Result (htmx poll)", "GET", _path(poll), htmx=True)
    assert "Payment was successful" in html, html
    return b.walk


def login_page(client):
    """Just the login page and everything it needs to render."""
    b = Browser(client)
    b.request("Login page", "GET", "/login", page=True)
    return b.walk


