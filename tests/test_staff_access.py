"""Staff pages: only staff reach them; every /staff route is walked as a customer and as anonymous."""
import re

import pytest

from app import create_app
from tests.conftest import PASSWORD, TEST_CONFIG, make_customer
from tests.staff_support import STAFF_EMAIL, STAFF_PASSWORD, make_staff, staff  # noqa: F401


def staff_rules():
    """Every URL rule under /staff, with a sample value for its arguments."""
    app = create_app({**TEST_CONFIG, "DATABASE_URL": "sqlite:///:memory:"})
    rules = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/staff"):
            continue
        url = re.sub(r"<(?:[a-z]+:)?[a-z_]+>", "1", rule.rule)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            rules.append((method, url))
    return rules


STAFF_ROUTES = staff_rules()


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


@pytest.mark.parametrize("method,url", [r for r in STAFF_ROUTES if r[0] == "GET"])
def test_staff_reach_every_staff_page(app, staff, method, url):
    make_customer()
    resp = staff.get(url)
    assert resp.status_code in (200, 404), (url, resp.status_code)


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
    again = runner.invoke(args=["create-staff", "boss@isp.example.test"], input="x\nx\n")
    assert again.exit_code != 0 and "already has a login" in again.output
    short = runner.invoke(args=["create-staff", "other@isp.example.test"], input="short\nshort\n")
    assert short.exit_code != 0 and "at least 10" in short.output
    params = [p.name for p in app.cli.get_command(None, "create-staff").params]
    assert params == ["email"]


def test_a_staff_password_is_not_a_customer_login(app, portal):
    make_staff()
    assert portal.login(STAFF_EMAIL, STAFF_PASSWORD).status_code == 302
    assert portal.get("/invoices").status_code == 403
