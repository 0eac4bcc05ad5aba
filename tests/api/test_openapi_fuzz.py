"""Property-based fuzz of the running API from its own OpenAPI document (schemathesis): for every
operation, requests generated from the document (valid ones, and invalid ones) with a valid key
never get a 5xx, and every answer conforms to the document: status code, content type, body.

Bounded: 25 examples per operation and mode. Driven through schemathesis' strategies, because its
pytest plugin does not run under this pytest version.
"""

from __future__ import annotations

import asyncio

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.api.conftest import ProjectAccess

EXAMPLES_PER_OPERATION = 25
CHECKS = [
    schemathesis.checks.not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def _fuzz(
    operation: schemathesis.APIOperation, mode: schemathesis.GenerationMode, access: ProjectAccess
) -> None:
    # Aim at a project the key may use, so that requests reach each endpoint's own logic.
    strategy = operation.as_strategy(
        mode, path_parameters={"project_id": access.project_id}, headers=access.write
    )

    @given(case=strategy)
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    def check(case: schemathesis.Case) -> None:
        case.call_and_validate(checks=CHECKS)

    check()


def _modes(operation: schemathesis.APIOperation) -> list[schemathesis.GenerationMode]:
    """Invalid requests only where the document constrains something the client sends: the
    project id and the key are fixed, and a path's object id is any text."""
    modes = [schemathesis.GenerationMode.POSITIVE]
    if len(operation.body) or len(operation.query):
        modes.append(schemathesis.GenerationMode.NEGATIVE)
    return modes


async def test_generated_requests_never_get_a_5xx_and_answers_match_the_document(
    live_server: str, acme: ProjectAccess
) -> None:
    schema = schemathesis.openapi.from_url(f"{live_server}/api/schema/")
    operations = [result.ok() for result in schema.get_all_operations()]

    failures: list[str] = []
    for operation in operations:
        for mode in _modes(operation):
            try:
                await asyncio.to_thread(_fuzz, operation, mode, acme)
            except Exception as exc:
                failures.append(f"{operation.label} ({mode.value}): {exc}")

    assert len(operations) == 21
    assert failures == []
