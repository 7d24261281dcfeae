"""The fuzzing of tests/test_fuzz.py again on a real PostgreSQL server (stricter than SQLite about types,
lengths and NUL bytes)."""
import pytest

from tests.test_postgres import database_url, pg_server  # noqa: F401  (the PostgreSQL fixtures)
from tests.test_fuzz import fuzz_world  # noqa: F401

pytestmark = pytest.mark.postgres

from tests.test_fuzz import (  # noqa: E402,F401
    test_fuzzed_csv_imports_are_all_or_nothing,
    test_fuzzed_forms_get_a_4xx_or_field_error_and_refusals_write_nothing,
    test_fuzzed_json_api_requests_get_a_4xx_and_refusals_write_nothing,
    test_fuzzed_signed_sandbox_webhooks_get_a_2xx_or_4xx,
)
