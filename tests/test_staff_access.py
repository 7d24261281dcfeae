"""Staff pages: only staff reach them, and each only with its role.

Every /staff route is walked as anonymous, as a customer, as a clerk and as an owner. Each staff endpoint
must be listed below as owner-only or open to clerks: a new route fails here until someone decides.
"""
import re

import pytest

from app import create_app
from tests.factories import PASSWORD, TEST_CONFIG, make_customer
from tests.staff_support import (  # noqa: F401
    CLERK_EMAIL,
    STAFF_EMAIL,
    STAFF_PASSWORD,
    clerk,
    log_in_staff,
    make_staff,
    staff,
)

# Owner: settings, staff logins, API tokens, import, the audit log, refunds (money going out).
OWNER_ONLY = {"staff.settings_page", "staff.logo", "staff.import_page", "staff.api_tokens", "staff.revoke_token",
              "staff.audit", "staff.staff_logins", "staff.disable_staff", "staff.enable_staff", "staff.staff_role",
              "staff.refund_payment", "staff.resolve_held", "staff.audit_csv"}
# Clerk (and owner): the counter's work.
CLERK_OK = {"staff.index", "staff.customers", "staff.customer", "staff.invite", "staff.invite_all", "staff.paylink",
            "staff.payments", "staff.payments_csv", "staff.record_payment", "staff.payment", "staff.reverse_payment",
            "staff.find_payment",  # support looks a payment up by its confirmation code
            "staff.new_invoice", "staff.invoice", "staff.edit_invoice", "staff.void_invoice", "staff.adjust_invoice",
            "staff.edit_customer", "staff.disable_customer_login", "staff.enable_customer_login", "staff.outbox_page",
            "staff.resend_email"}


def staff_rules():
    """Every URL rule under /staff, with its endpoint and a sample value for its arguments."""
    app = create_app({**TEST_CONFIG, "DATABASE_URL": "sqlite:///:memory:"})
    rules = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/staff"):
            continue
        url = re.sub(r"<(?:[a-z]+:)?[a-z_]+>", "1", rule.rule)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            rules.append((method, url, rule.endpoint))
    return app, rules


_APP, STAFF_ENDPOINTS = staff_rules()
STAFF_ROUTES = [(m, u) for m, u, _e in STAFF_ENDPOINTS]


def _request(portal, method, url):
    return portal.post(url, {}) if method == "POST" else portal.get(url)


def test_every_staff_route_is_classified_as_owner_only_or_open_to_clerks():
    endpoints = {e for _m, _u, e in STAFF_ENDPOINTS}
    assert endpoints - OWNER_ONLY - CLERK_OK == set(), "a new staff route: add it to OWNER_ONLY or CLERK_OK"
    assert (OWNER_ONLY | CLERK_OK) - endpoints == set(), "listed routes that no longer exist"
    for endpoint in endpoints:
        declared = getattr(_APP.view_functions[endpoint], "staff_role", None)
        assert declared == ("owner" if endpoint in OWNER_ONLY else "clerk"), endpoint


@pytest.mark.parametrize("method,url,endpoint", [r for r in STAFF_ENDPOINTS if r[2] in OWNER_ONLY])
def test_clerks_get_403_on_every_owner_route(app, clerk, method, url, endpoint):
    make_customer()
    resp = _request(clerk, method, url)
    assert resp.status_code == 403, (method, url, resp.status_code)


@pytest.mark.parametrize("method,url,endpoint", [r for r in STAFF_ENDPOINTS if r[2] in CLERK_OK])
def test_clerks_reach_every_clerk_route(app, clerk, method, url, endpoint):
    make_customer()
    resp = _request(clerk, method, url)
    assert resp.status_code != 403 and resp.status_code < 500, (method, url, resp.status_code)
    if method == "GET":
        assert resp.status_code in (200, 404), (url, resp.status_code)


@pytest.mark.parametrize("method,url,endpoint", STAFF_ENDPOINTS)
def test_owners_reach_every_staff_route(app, staff, method, url, endpoint):
    make_customer()
    resp = _request(staff, method, url)
    assert resp.status_code != 403 and resp.status_code < 500, (method, url, resp.status_code)
    if method == "GET":
        assert resp.status_code in (200, 404), (url, resp.status_code)


def test_a_staff_route_that_declares_no_role_is_refused_to_every_role(app, portal):
    app.add_url_rule("/staff/undeclared", endpoint="staff.undeclared", view_func=lambda: "reached")
    make_staff()
    log_in_staff(portal, STAFF_EMAIL)
    assert portal.get("/staff/").status_code == 200
    assert portal.get("/staff/undeclared").status_code == 403


def test_a_clerk_sees_no_links_to_owner_pages(app, clerk):
    page = clerk.get("/staff/").get_data(as_text=True)
    assert 'href="/staff/customers"' in page
    for href in ("/staff/settings", "/staff/staff", "/staff/api-tokens", "/staff/audit", "/staff/import"):
        assert f'href="{href}"' not in page, href


def test_staff_routes_were_found():
    urls = {u for _m, u in STAFF_ROUTES}
    for expected in ("/staff/", "/staff/customers", "/staff/customers/1", "/staff/payments", "/staff/payments.csv",
                     "/staff/audit", "/staff/settings", "/staff/import", "/staff/api-tokens"):
        assert expected in urls


@pytest.mark.parametrize("method,url", STAFF_ROUTES)
def test_anonymous_users_are_sent_to_log_in_from_every_staff_route(app, portal, method, url):
    make_customer()
    resp = portal.post(url, {}) if method == "POST" else portal.get(url)
    assert resp.status_code == 302, (method, url, resp.status_code)
    assert "/login" in resp.headers["Location"]


@pytest.mark.parametrize("method,url", STAFF_ROUTES)
def test_customers_get_403_on_every_staff_route(app, portal, method, url):
    customer = make_customer()
    assert portal.login(customer.email, PASSWORD).status_code == 302
    resp = portal.post(url, {}) if method == "POST" else portal.get(url)
    assert resp.status_code == 403, (method, url, resp.status_code)


def test_staff_cannot_use_customer_pages(app, staff):
    resp = staff.get("/")
    assert resp.status_code == 403
    assert 'href="/staff/">Go to the staff pages' in resp.get_data(as_text=True)  # not a link to another 403


def test_staff_login_lands_on_the_staff_home(app, staff):
    page = staff.get("/staff/").get_data(as_text=True)
    assert "Getting started" in page
    assert staff.get("/login").headers["Location"].endswith("/staff/")


def test_create_staff_prompts_for_the_password_and_never_takes_it_as_an_argument(app, runner):
    result = runner.invoke(args=["create-staff", "boss@isp.example.test"],
                           input="a long staff password\na long staff password\n")
    assert result.exit_code == 0, result.output
    assert "a long staff password" not in result.output
    from billing import identity

    user = identity.authenticate("boss@isp.example.test", "a long staff password")
    assert user is not None and user.role == "staff" and user.customer_id is None
    assert user.staff_role == "owner"  # the first login made from a shell runs the portal
    again = runner.invoke(args=["create-staff", "boss@isp.example.test"], input="x\nx\n")
    assert again.exit_code != 0 and "already has a login" in again.output
    short = runner.invoke(args=["create-staff", "other@isp.example.test"], input="short\nshort\n")
    assert short.exit_code != 0 and "at least 10" in short.output
    params = [p.name for p in app.cli.get_command(None, "create-staff").params]
    assert "password" not in params
    clerk_login = runner.invoke(args=["create-staff", "desk@isp.example.test", "--role", "clerk", "--name", "Dee"],
                                input="a long clerk password\na long clerk password\n")
    assert clerk_login.exit_code == 0, clerk_login.output
    user = identity.authenticate("desk@isp.example.test", "a long clerk password")
    assert (user.staff_role, user.name) == ("clerk", "Dee")
    bad_role = runner.invoke(args=["create-staff", "x@isp.example.test", "--role", "admin"], input="")
    assert bad_role.exit_code != 0


def test_a_staff_password_is_not_a_customer_login(app, portal):
    make_staff()
    assert portal.login(STAFF_EMAIL, STAFF_PASSWORD).status_code == 302
    assert portal.get("/invoices").status_code == 403
