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
