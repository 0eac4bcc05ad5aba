"""Schemathesis' whole engine against the running API on PostgreSQL, with every check it has:
server errors, status codes, content types, headers and bodies against the document, schema-
violating data refused, schema-valid data accepted, missing auth refused, unsupported methods
answered 405 with a true ``Allow``, and deleted objects gone; through the examples, coverage
(boundary values, wrong types, missing parts), fuzzing and stateful (create, use, delete) phases.

Driven through its Python engine, because its pytest plugin does not run under this pytest.
"""

from __future__ import annotations

import asyncio
import copy
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import schemathesis
from schemathesis.config import SchemathesisConfig
from schemathesis.engine import Status, events, from_schema
from schemathesis.specs.openapi.checks import positive_data_acceptance

from loadtest.api_server import ApiProcess
from tests.api.conftest import ProjectAccess

EXAMPLES_PER_OPERATION = 20
FORM_MEDIA_TYPE = "application/x-www-form-urlencoded"


@schemathesis.check
def positive_data_acceptance_beyond_the_schema(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: schemathesis.Case
) -> bool | None:
    """Schemathesis' ``positive_data_acceptance``, except for the refusals the document explains
    in words because JSON Schema cannot say them (each is tested on its own elsewhere):

    - an operation whose only documented answers are refusals (DELETE of a stack frame is 405);
    - ``unique``: a hash id another release of the project holds. The reference answers such a
      conflict 400, where schemathesis expects 409 (tests/api/test_releases.py);
    - ``filters``: the property-group grammar (operators, RE2 regexes, versions, depth and
      count bounds) that the document describes in prose (tests/api/test_suppression_rules.py);
    - ``orders``: a reorder may only name rules of the project, and the ids schemathesis makes up
      name none (tests/api/test_suppression_rules.py).
    """
    documented = case.operation.responses.status_codes
    if not any(code.startswith("2") for code in documented):
        if str(response.status_code) in documented:
            return None
    elif response.status_code == 400:
        error = response.json()
        if error["code"] == "unique" or (error["attr"] or "").startswith(("filters", "orders")):
            return None
    return positive_data_acceptance(ctx, response, case)


@dataclass
class EngineReport:
    failures: list[str] = field(default_factory=list)
    cases_by_operation: dict[str, int] = field(default_factory=dict)
    phases: set[str] = field(default_factory=set)
    stop_reason: str = ""


def _without_form_bodies(document: dict[str, Any]) -> dict[str, Any]:
    """The document minus its urlencoded alternatives. A form cannot tell an empty string from
    null, nor an empty list from a missing one, so the data checks would misread every such form;
    forms keep their own fuzz (tests/api/test_openapi_fuzz.py) and tests."""
    document = copy.deepcopy(document)
    for path_item in document["paths"].values():
        for operation in path_item.values():
            operation.get("requestBody", {}).get("content", {}).pop(FORM_MEDIA_TYPE, None)
    return document


def _run_engine(document: dict[str, Any], base_url: str, access: ProjectAccess) -> EngineReport:
    config = SchemathesisConfig.from_dict(
        {
            "seed": 8,
            "base-url": base_url,
            "headers": access.write,
            "parameters": {"project_id": access.project_id},
            "workers": 1,
            "checks": {"enabled": True, "positive_data_acceptance": {"enabled": False}},
            "generation": {
                "max-examples": EXAMPLES_PER_OPERATION,
                # PostgreSQL cannot store NUL, so the API refuses it in any text (the document
                # says so, tests/api/test_request_errors.py proves it); valid data has none.
                "allow-x00": False,
                "codec": "utf-8",
            },
        }
    )
    schema = schemathesis.openapi.from_dict(document, config=config)
    report = EngineReport()
    for event in from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            _record_scenario(report, event)
        elif isinstance(event, events.NonFatalError):
            report.failures.append(f"error in {event.label}: {event.value!r}")
        elif isinstance(event, events.FatalError):
            report.failures.append(f"engine crashed: {event.exception!r}")
        elif isinstance(event, events.EngineFinished):
            report.stop_reason = event.stop_reason.value
            report.failures.extend(f"after the run: {failure}" for failure in event.failures)
    return report


def _record_scenario(report: EngineReport, event: events.ScenarioFinished) -> None:
    report.phases.add(event.phase.value)
    for node in event.recorder.cases.values():
        label = f"{node.value.method.upper()} {node.value.path}"
        report.cases_by_operation[label] = report.cases_by_operation.get(label, 0) + 1
    if event.status not in (Status.FAILURE, Status.ERROR):
        return
    for case_id, checks in event.recorder.checks.items():
        for check in checks:
            if check.failure_info is None:
                continue
            case = event.recorder.cases[case_id].value
            response = event.recorder.find_response(case_id=case_id)
            report.failures.append(
                f"[{event.phase.value}] {check.name}: {check.failure_info.failure.title} — "
                f"{case.method} {case.formatted_path} query={case.query} body={case.body!r:.300} "
                f"-> {response.status_code if response else 'no response'}"
            )


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_every_schemathesis_check_passes_in_every_phase_on_postgresql(
    api_process: ApiProcess, acme: ProjectAccess
) -> None:
    async with httpx.AsyncClient() as http:
        document = (await http.get(f"{api_process.base_url}/api/schema/")).json()
    operations = {
        f"{method.upper()} {path}" for path, item in document["paths"].items() for method in item
    }

    report = await asyncio.to_thread(
        _run_engine, _without_form_bodies(document), api_process.base_url, acme
    )

    assert report.failures == [], "\n".join(report.failures)
    assert report.stop_reason == "completed"
    assert {"examples", "coverage", "fuzzing", "stateful"} <= report.phases
    untested = {label for label in operations if report.cases_by_operation.get(label, 0) == 0}
    assert untested == set()
