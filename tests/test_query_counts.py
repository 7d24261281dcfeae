"""How many SQL statements the busiest pages cost: each one is a round trip and, through the ORM, a compile."""
from billing import identity
from tests.factories import counting_queries


def test_a_session_lookup_reads_session_user_and_customer_in_one_statement(app, customer):
    token = identity.open_session(customer.users.get())
    with counting_queries() as seen:
        user = identity.session_user(token)
        assert user.customer.account_number == customer.account_number
    assert len(seen) == 1, seen


def test_a_staff_session_lookup_is_one_statement_and_has_no_customer(app):
    user = identity.create_user("staff-counts@example.test", "correct horse battery", role="staff")
    token = identity.open_session(user)
    with counting_queries() as seen:
        found = identity.session_user(token)
        assert found.customer is None
    assert len(seen) == 1, seen


def test_home_runs_six_statements(logged_in):
    logged_in.get("/")  # the first page may set up the session's CSRF secret
    with counting_queries() as seen:
        assert logged_in.get("/").status_code == 200
    # session+user+customer, the ISP's settings version, the summary, payments in progress, autopay alerts,
    # and autopay's policy+enrolment+method
    assert len(seen) == 6, seen


def test_autopay_status_is_one_statement_whether_on_or_off(app, customer):
    from billing import autopay

    with counting_queries() as seen:
        ap = autopay.status(customer.id)
    assert not ap.enabled and len(seen) == 1, seen


def test_a_compiled_query_is_built_once_and_converts_its_values_as_the_orm_does(app, customer):
    import datetime as dt

    from db.compiled import Arg, Compiled
    from db.models import LoginSession, utcnow

    user = customer.users.get()
    identity.open_session(user)
    builds = []

    def build():
        builds.append(1)
        return LoginSession.select().where((LoginSession.user == Arg(0)) & (LoginSession.created_at > Arg(1)))

    q = Compiled(build)
    an_hour_ago = utcnow() - dt.timedelta(hours=1)
    assert [s.user_id for s in q.rows(user, an_hour_ago)] == [user.id]  # a model for a foreign key, as peewee takes
    assert q.rows(user.id, utcnow() + dt.timedelta(hours=1)) == []
    expected = list(LoginSession.select().where((LoginSession.user == user) & (LoginSession.created_at > an_hour_ago)))
    assert q.rows(user.id, an_hour_ago) == expected
    assert len(builds) == 1


def test_the_invoices_tab_needs_no_count_when_its_list_fits_one_page(logged_in, customer):
    from tests.factories import make_invoice

    for _ in range(3):
        make_invoice(customer)
    logged_in.get("/")
    with counting_queries() as seen:
        resp = logged_in.get("/invoices", headers={"HX-Request": "true"})
    assert resp.status_code == 200 and all(inv.number in resp.get_data(as_text=True) for inv in customer.invoices)
    assert not [sql for sql in seen if "COUNT(" in sql.upper()], seen
    assert len(seen) == 4, seen  # session+user+customer, the ISP's settings version, the invoices, amounts pending
