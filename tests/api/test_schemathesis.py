"""Schemathesis against the real server over HTTP, on both databases: every operation of the OpenAPI spec
with a bounded number of generated examples, and every check schemathesis runs by default (no server errors,
only documented statuses, response schemas and headers, content types, Allow on 405, negative data
rejected, …) must pass — except ``positive_data_acceptance``: a schema-valid random upload is not a valid
dataset or weights file, and a schema-valid random id names no resource, so their 415/422 are right."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

pytestmark = pytest.mark.slow

MAX_EXAMPLES = 12


def _exercise(operation) -> None:
    @given(case=operation.as_strategy())
    @settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def run(case) -> None:
        case.call_and_validate(timeout=60, excluded_checks=[positive_data_acceptance])

    run()


def test_api_conforms_to_its_schema(live_server_factory):
    server = live_server_factory(start_executor=False)
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    failures: dict[str, str] = {}
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1
        try:
            _exercise(operation)
        except (Exception, BaseExceptionGroup) as exc:  # collect every operation's failure, report them all
            failures[operation.label] = str(exc)[:3000]
    assert operations >= 18
    assert not failures, "\n\n".join(f"{label}:\n{text}" for label, text in failures.items())
