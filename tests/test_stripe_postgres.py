"""The Stripe ledger paths (refunds, ACH returns, disputes, exactly-once webhooks) on PostgreSQL too."""
import pytest

from tests.stripe_support import app, localstripe, stripe_server  # noqa: F401
from tests.test_postgres import database_url, pg_server  # noqa: F401
from tests.test_stripe_payments import (  # noqa: F401
    owing,
    test_crash_after_the_charge_is_fixed_by_reconcile_with_no_second_charge,
    test_refund_in_part_then_in_full_reverses_with_new_rows_and_reopens_invoices,
)
from tests.test_stripe_webhooks import (  # noqa: F401
    side,
    test_a_late_ach_return_arrives_as_a_dispute_and_is_taken_back_with_new_rows,
    test_dispute_opened_reverses_then_won_applies_the_money_again,
    test_the_same_event_delivered_three_times_at_once_allocates_once,
)

pytestmark = pytest.mark.postgres
