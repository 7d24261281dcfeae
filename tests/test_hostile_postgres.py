"""The hostile-input corpus again on a real PostgreSQL server, which refuses NUL bytes and over-long text
that SQLite would store: each must still be a 4xx decided before the database is asked."""
import pytest

from tests.test_postgres import database_url, pg_server  # noqa: F401  (the PostgreSQL fixtures)
from tests.hostile_support import world  # noqa: F401

pytestmark = pytest.mark.postgres

from tests.test_hostile import (  # noqa: E402,F401
    test_a_signed_sandbox_webhook_with_hostile_json_is_a_400,
    test_every_hostile_input_gets_a_4xx_or_a_field_error_and_refusals_write_nothing,
    test_ids_beyond_a_database_integer_are_404,
    test_nul_bytes_and_lone_surrogates_are_refused_at_the_edge_with_a_clear_message,
)
