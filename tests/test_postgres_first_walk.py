"""Issue 17's Home figures (one SQL statement) and pay-by-link rules again on a real PostgreSQL server."""
import pytest

from tests.test_postgres import database_url, ledger_db, pg_server  # noqa: F401  (the PostgreSQL fixtures)

pytestmark = pytest.mark.postgres

from tests.test_first_walk import (  # noqa: E402,F401
    filed,
    test_a_failed_debit_makes_the_money_overdue_again,
    test_a_pay_link_may_pay_part_of_the_invoice_down_to_the_minimum,
    test_an_invoice_due_today_is_due_not_overdue,
    test_home_shows_the_next_future_due_date_and_overdue_money_with_its_date,
    test_money_settling_for_an_overdue_invoice_is_processing_not_overdue,
    test_with_only_overdue_money_nothing_else_is_due,
)
