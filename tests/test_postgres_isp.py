"""The ISP side's import, API, invite and pay-by-link tests again on a real PostgreSQL server."""
import pytest

from tests.test_postgres import database_url, ledger_db, pg_server  # noqa: F401  (the PostgreSQL fixtures)
from tests.staff_support import staff  # noqa: F401

pytestmark = pytest.mark.postgres

from tests.test_api import (  # noqa: E402,F401
    api,
    test_an_invoice_with_payments_cannot_be_voided_or_repriced,
    test_batch_upserts_are_all_or_nothing_with_errors_by_index,
    test_payments_since_a_cursor_pages_through_every_payment_once,
    test_upsert_invoice_applies_credit_and_voids,
    token,
)
from tests.test_import import (  # noqa: E402,F401
    test_bad_file_reports_every_error_by_row_and_column_and_imports_nothing,
    test_changed_rows_are_updated_by_account_and_invoice_number,
    test_credit_on_the_account_goes_to_new_invoices_oldest_first,
    test_large_reimport_finds_every_invoice_unchanged_and_one_edit,
    test_sample_files_import_and_reimport_changes_nothing,
)
from tests.test_invites import (  # noqa: E402,F401
    test_invite_all_invites_only_customers_not_yet_invited,
    test_invite_token_is_stored_hashed_and_works_once,
    test_reset_changes_the_password_once_and_ends_every_session,
)
from tests.test_paylink import test_link_pays_that_invoice_without_logging_in_and_shows_nothing_else  # noqa: E402,F401
from tests.test_staff_pages import test_customer_search_by_name_account_and_email  # noqa: E402,F401
from tests.test_staff_pages import test_payments_filters_and_csv_export  # noqa: E402,F401
from tests.test_offline_payments import (  # noqa: E402,F401
    test_a_bounced_check_is_reversed_by_new_rows_and_the_invoice_reopens,
    test_a_double_submitted_payment_form_records_one_payment,
    test_cash_pays_the_chosen_invoice_first_then_the_oldest_and_the_rest_is_credit,
)
from tests.staff_support import clerk  # noqa: E402,F401
from tests.test_staff_logins import (  # noqa: E402,F401
    test_two_owners_demoting_and_disabling_each_other_at_once_leave_an_owner,
)
