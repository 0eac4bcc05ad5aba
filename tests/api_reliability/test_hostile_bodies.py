"""Bodies built to hurt: suppression-rule filters nested 10,000 deep or 10,000 wide, 100 kB
regexes, backtracking bombs and regexes whose compiled program is huge are refused (400) or
accepted only when they run in linear time with a small program, each answered quickly; and any
body over 1 MB is refused (413) on every route that reads one, by its Content-Length, while it is
streamed in chunks without one, and when the length it declares is a lie, over a real socket.
"""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest

from loadtest.api_server import ApiProcess
from schemas.property_filters import MAX_RULE_REGEX_INSTRUCTIONS, compile_regex
from tests.api.conftest import ProjectAccess
from tests.api_reliability.raw_http import chunked, raw_request

ONE_MEGABYTE = 1_000_000
# Generous for a 2-core machine under load; what matters is "seconds", never "minutes".
MAX_ANSWER_SECONDS = 5.0
# Classic exponential-backtracking patterns (RE2 has no backtracking), and the costliest shape
# that still fits the API's budget of compiled instructions.
LINEAR_TIME_PATTERNS = (
    "(a+)+$",
    "(a|aa)*b",
    "(.*a){20}",
    "(x+x+)+y",
    "^(([a-z])+.)+[A-Z]([a-z])+$",
    "(?:(?:a*)*)*b",
    r"\w{999}",
)
ADVERSARIAL_TEXT = "a" * ONE_MEGABYTE + "!"


def _regex_filter(*patterns: str) -> dict[str, Any]:
    value: Any = patterns[0] if len(patterns) == 1 else list(patterns)
    return {
        "type": "AND",
        "values": [{"key": "$exception_values", "operator": "regex", "value": value}],
    }


def _nested(depth: int) -> str:
    """A group holding a group ... ``depth`` deep, as JSON text (too deep for json.dumps)."""
    leaf = '{"key": "$exception_types", "value": "TypeError"}'
    return '{"type": "AND", "values": [' * depth + leaf + "]}" * depth


async def _create_rule(
    client: httpx.AsyncClient, access: ProjectAccess, filters_json: str
) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = await client.post(
        access.url("suppression_rules/"),
        content=f'{{"filters": {filters_json}}}'.encode(),
        headers={**access.write, "Content-Type": "application/json"},
    )
    return response, time.monotonic() - started


HOSTILE_FILTERS = {
    "10,000 nested groups": (_nested(10_000), "JSON parse error"),
    "64 nested groups": (_nested(64), "nested deeper than 64 levels"),
    "21 nested groups": (_nested(21), "groups are nested deeper than 20"),
    "10,000 groups side by side": (
        json.dumps({"type": "OR", "values": [{"type": "AND", "values": []}] * 10_000}),
        "more than 1000 filters and groups in one rule",
    ),
    "a 100 kB regex": (json.dumps(_regex_filter("a" * 100_000)), "regex is longer than"),
    "a backreference": (json.dumps(_regex_filter(r"(a+)\1")), "invalid regex"),
    "a lookahead": (json.dumps(_regex_filter("(?=a)a")), "invalid regex"),
    "nested counted repetitions": (
        json.dumps(_regex_filter("((a{100}){100}){100}")),
        "invalid repetition size",
    ),
    "a 560-byte regex with a huge program": (
        json.dumps(_regex_filter(r"\w{999}" * 80)),
        f"more than {MAX_RULE_REGEX_INSTRUCTIONS} RE2 instructions",
    ),
    "100 small regexes, huge together": (
        json.dumps(_regex_filter(*[rf"\w{{100}}{index}" for index in range(100)])),
        f"more than {MAX_RULE_REGEX_INSTRUCTIONS} RE2 instructions",
    ),
}


@pytest.mark.parametrize(("filters_json", "detail"), HOSTILE_FILTERS.values(), ids=HOSTILE_FILTERS)
async def test_hostile_filters_are_refused_quickly(
    client: httpx.AsyncClient, acme: ProjectAccess, filters_json: str, detail: str
) -> None:
    response, seconds = await _create_rule(client, acme, filters_json)

    assert response.status_code == 400
    assert detail in response.json()["detail"]
    assert seconds < MAX_ANSWER_SECONDS
    listed = await client.get(acme.url("suppression_rules/"), headers=acme.read)
    assert listed.json()["count"] == 0


async def test_backtracking_bombs_are_accepted_because_they_run_in_linear_time_on_re2(
    client: httpx.AsyncClient, acme: ProjectAccess
) -> None:
    answers = [
        await _create_rule(client, acme, json.dumps(_regex_filter(pattern)))
        for pattern in LINEAR_TIME_PATTERNS
    ]
    match_seconds = []
    for pattern in LINEAR_TIME_PATTERNS:
        compiled = compile_regex(pattern)
        started = time.monotonic()
        compiled.search(ADVERSARIAL_TEXT)
        match_seconds.append(time.monotonic() - started)

    assert [response.status_code for response, _ in answers] == [201] * len(LINEAR_TIME_PATTERNS)
    assert max(seconds for _, seconds in answers) < MAX_ANSWER_SECONDS
    # A backtracking engine would not finish these on 1 MB of "a" in the lifetime of the sun.
    assert max(match_seconds) < MAX_ANSWER_SECONDS


async def test_a_costly_rule_is_refused_naming_the_regex_that_went_over_the_budget(
    client: httpx.AsyncClient, acme: ProjectAccess
) -> None:
    patterns = [rf"\w{{100}}{index}" for index in range(100)]
    sizes = [compile_regex(pattern).programsize for pattern in patterns]
    over = next(
        index
        for index in range(len(sizes))
        if sum(sizes[: index + 1]) > MAX_RULE_REGEX_INSTRUCTIONS
    )
    within = patterns[:over]

    refused, _ = await _create_rule(client, acme, json.dumps(_regex_filter(*patterns)))
    accepted, _ = await _create_rule(client, acme, json.dumps(_regex_filter(*within)))

    assert (refused.status_code, refused.json()["attr"]) == (400, "filters")
    assert refused.json()["detail"].startswith(f"filters.values.0.value.{over}: ")
    assert accepted.status_code == 201
    assert accepted.json()["filters"]["values"][0]["value"] == within


def _body_operations(document: dict[str, Any], project_id: int) -> list[tuple[str, str]]:
    """(method, path) of every operation that reads a body, with an id that names no object."""
    return [
        (
            method.upper(),
            path.replace("{project_id}", str(project_id))
            .replace("{release_id}", "00000000-0000-4000-8000-000000000000")
            .replace("{rule_id}", "00000000-0000-4000-8000-000000000000"),
        )
        for path, path_item in document["paths"].items()
        for method, operation in path_item.items()
        if "requestBody" in operation
    ]


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_a_body_over_one_megabyte_is_413_on_every_route_however_it_is_sent(
    api_process: ApiProcess, acme: ProjectAccess
) -> None:
    async with httpx.AsyncClient(base_url=api_process.base_url) as http:
        document = (await http.get("/api/schema/")).json()
    operations = _body_operations(document, acme.project_id)
    headers = {**acme.write, "Content-Type": "application/json"}
    oversized = b" " * (ONE_MEGABYTE + 1)

    answers = {}
    for method, path in operations:
        by_length = raw_request(
            api_process.base_url,
            f"{method} {path} HTTP/1.1",
            {**headers, "Content-Length": str(len(oversized))},
            [oversized],
        )
        streamed = raw_request(
            api_process.base_url,
            f"{method} {path} HTTP/1.1",
            {**headers, "Transfer-Encoding": "chunked"},
            chunked([b" " * 100_000] * 11),
        )
        # Ten gigabytes announced and nothing sent: refused before a single byte is read.
        announced = raw_request(
            api_process.base_url,
            f"{method} {path} HTTP/1.1",
            {**headers, "Content-Length": str(10 * 1024**3)},
        )
        answers[f"{method} {path}"] = [
            (answer.status, json.loads(answer.body)["code"])
            for answer in (by_length, streamed, announced)
        ]

    assert len(operations) >= 7
    assert answers == dict.fromkeys(answers, [(413, "request_too_large")] * 3)
