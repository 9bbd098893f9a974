"""Schemathesis against the real server over HTTP, on both databases. Every operation of the OpenAPI spec is
run as ``schema.parametrize()`` would run it (``schemathesis.pytest.lazy.get_all_tests``: one Hypothesis test
per operation), in three of schemathesis's phases, each with positive *and* negative data:

- **examples**: the request examples the spec declares;
- **coverage**: every case the spec defines for the operation, deterministic — boundary values, values of
  the wrong type or out of range, missing required parameters, a malformed ``Content-Type``, and each HTTP
  method the spec does not list for the path (GET, PUT, POST, DELETE, OPTIONS, PATCH, TRACE, QUERY);
- **fuzzing**: ``MAX_EXAMPLES`` generated cases per operation, positive and negative mixed, derandomised.

(The stateful phase does not run.) About 1,500 requests per database. Every response must pass every check
schemathesis has: no server errors, only documented statuses (``status_code_conformance``), response schemas,
headers and content types, 405 with an ``Allow`` header for a method the spec does not list
(``unsupported_method``), an OPTIONS ``Allow`` that lists exactly the documented methods
(``allow_header_conformance``), negative data rejected (``negative_data_rejection``), … — except
``positive_data_acceptance``: a schema-valid random upload is not a valid dataset or weights file, and a
schema-valid random id names no resource, so their 415/422 are right. The test then asserts that negative
and unspecified-method cases were really sent, so the checks that need them fired."""

from __future__ import annotations

from collections import Counter

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.generation import GenerationMode
from schemathesis.generation.meta import CoverageScenario, TestPhase
from schemathesis.pytest.lazy import get_all_tests
from schemathesis.specs.openapi.checks import positive_data_acceptance

pytestmark = pytest.mark.slow

MAX_EXAMPLES = 12


def test_api_conforms_to_its_schema(live_server_factory):
    server = live_server_factory(start_executor=False)
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    schema.config.phases.update(phases=["examples", "coverage", "fuzzing"])
    schema.config.generation.update(modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
    sent: Counter = Counter()

    @settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def run(case) -> None:
        phase = case.meta.phase
        scenario = getattr(phase.data, "scenario", None)
        response = case.call_and_validate(timeout=60, excluded_checks=[positive_data_acceptance])
        sent[phase.name, case.meta.generation.mode] += 1
        if scenario == CoverageScenario.UNSPECIFIED_HTTP_METHOD:
            sent["unspecified method", response.status_code] += 1

    failures: dict[str, str] = {}
    operations = 0
    for result in get_all_tests(schema=schema, test_func=run, settings=None, given_kwargs=None):
        operation, test = result.ok()
        operations += 1
        try:
            test()
        except (Exception, BaseExceptionGroup) as exc:  # collect every operation's failure, report them all
            failures[operation.label] = str(exc)[:3000]
    assert operations >= 18
    assert not failures, "\n\n".join(f"{label}:\n{text}" for label, text in failures.items())
    # the checks that need them had cases to check: negative data in both phases, undocumented methods
    assert sent[TestPhase.COVERAGE, GenerationMode.NEGATIVE] > 100
    assert sent[TestPhase.FUZZING, GenerationMode.NEGATIVE] > 0
    assert sent["unspecified method", 405] > 50
