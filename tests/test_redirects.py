"""Return addresses stay on the portal: ``next`` after login and the sandbox's ``back`` are parsed as URLs,
the way a browser reads them, and anything that could leave the portal falls back to a page of our own."""
from urllib.parse import quote

import pytest

from tests.factories import make_customer
from tests.test_pay_flow import GOOD_CARD, make_payment, owing, pay_at_processor  # noqa: F401

# Each of these sends a browser off the portal (or into a script) when used as a Location as it is.
VECTORS = [
    "//evil.example/", "///evil.example/", "/\t/evil.example/", "/\n/evil.example/", "/\r\n/evil.example/",
    "\t//evil.example/", " //evil.example/", "/\\evil.example/", "\\\\evil.example/", "/\\/evil.example/",
    "https://evil.example/", "http:evil.example", "https:/evil.example", "//evil.example@portal/",
    "javascript:alert(1)", "JaVaScRiPt:alert(1)", "data:text/html,<script>alert(1)</script>",
    "/%0d%0aSet-Cookie:x=1", "/\x00//evil.example", "evil.example", "../evil", "/.\t/evil.example/",
    "/\u3000/evil.example/", "/\x7f/evil.example/", "//%65vil.example/", "/" + "a" * 5000,
]


def _login_next(client, email, target):
    from tests.factories import PASSWORD, Portal

    portal = Portal(client)
    return portal.post("/login?next=" + quote(target, safe=""), {"email": email, "password": PASSWORD})


@pytest.mark.parametrize("target", VECTORS)
def test_next_after_login_never_leaves_the_portal(app, target):
    customer = make_customer()
    resp = _login_next(app.test_client(), customer.email, target)
    assert resp.status_code in (302, 400), resp.status_code
    if resp.status_code == 302:
        assert resp.headers["Location"] == "/"


def test_next_to_a_page_of_the_portal_is_followed(app):
    customer = make_customer()
    resp = _login_next(app.test_client(), customer.email, "/invoices?page=2")
    assert resp.status_code == 302 and resp.headers["Location"] == "/invoices?page=2"


def test_next_to_a_path_that_is_no_page_of_ours_goes_home(app):
    customer = make_customer()
    resp = _login_next(app.test_client(), customer.email, "/.//evil.example/")
    assert resp.headers["Location"] == "/"


@pytest.mark.parametrize("target", VECTORS)
def test_the_sandbox_back_address_never_leaves_the_portal(logged_in, owing, target):  # noqa: F811
    ref, entry = make_payment(logged_in, "70.00")
    resp = pay_at_processor(logged_in, entry, {**GOOD_CARD, "back": target})
    assert resp.status_code in (303, 400)
    if resp.status_code == 303:
        assert resp.headers["Location"] == "/payments", resp.headers["Location"]
