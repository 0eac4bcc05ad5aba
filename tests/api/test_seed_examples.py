"""Each curl example of the seed API, replayed against a running server with a real key: the
documented status code and a body with the documented fields. The reorder of suppression rules,
an endpoint of the reference that the seed does not list, is replayed too: 204, no body.

The examples' placeholders (``"string"``, ``["integer","null"]``, ``"array"``, ``undefined``) are
replaced by values of that type. Where an example sets ``Content-Type: application/json`` its
fields are sent as a JSON object; elsewhere ``-d field=value`` is sent as curl sends it, an
urlencoded form.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.api.conftest import ProjectAccess
from tests.api.seeding import (
    add_issue,
    add_release,
    add_spike_event,
    add_stack_frame,
    add_symbol_set,
)

RELEASE_FIELDS = {"id", "hash_id", "team_id", "created_at", "metadata", "version", "project"}
SETTINGS_FIELDS = {
    "project_rate_limit_value",
    "project_rate_limit_bucket_size_minutes",
    "per_issue_rate_limit_value",
    "per_issue_rate_limit_bucket_size_minutes",
}
SPIKE_CONFIG_FIELDS = {"snooze_duration_minutes", "multiplier", "threshold"}
PAGE_FIELDS = {"count", "next", "previous", "results"}
SPIKE_EVENT_FIELDS = {"id", "issue", "detected_at", "computed_baseline", "current_bucket_value"}
ISSUE_FIELDS = {"id", "name", "description"}
FRAME_FIELDS = {
    "id",
    "raw_id",
    "created_at",
    "contents",
    "resolved",
    "context",
    "symbol_set_ref",
    "release",
}
RULE_FIELDS = {
    "id",
    "filters",
    "order_key",
    "disabled_data",
    "sampling_rate",
    "created_at",
    "updated_at",
}
FILTERS = {
    "type": "OR",
    "values": [{"key": "$exception_types", "operator": "exact", "value": ["TypeError"]}],
}


@dataclass
class Example:
    name: str
    method: str
    path: str
    status: int
    json_body: dict[str, Any] | None = None
    form_body: dict[str, str] | None = None
    fields: set[str] = field(default_factory=set)
    result_fields: set[str] = field(default_factory=set)


def _fields_missing(fields: set[str], result_fields: set[str], body: Any) -> list[str]:
    """Documented fields the body lacks, including those of its results, issue and release."""
    if not fields:
        return [] if body is None else ["<expected no body>"]
    missing = sorted(fields - set(body))
    for result in body.get("results", []):
        missing += _fields_missing(result_fields, set(), result)
    if "issue" in body:
        missing += sorted(ISSUE_FIELDS - set(body["issue"]))
    if body.get("release") is not None:
        missing += sorted(RELEASE_FIELDS - set(body["release"]))
    return missing


async def test_every_seed_curl_example_gets_its_documented_answer(
    live_server: str, sessionmaker: async_sessionmaker[AsyncSession], acme: ProjectAccess
) -> None:
    issue = await add_issue(sessionmaker, acme.project_id, "TypeError", "x is undefined")
    await add_spike_event(sessionmaker, issue, datetime(2026, 11, 26, 6, 0, tzinfo=UTC), 4.0, 800)
    shipped = await add_release(sessionmaker, acme.project_id, "0.9.0", "sha-090")
    symbols = await add_symbol_set(sessionmaker, acme.project_id, "app.js.map", shipped)
    frame = await add_stack_frame(sessionmaker, acme.project_id, "raw-frame-1", symbols)

    answers: list[tuple[str, int, list[str]]] = []
    expected: list[tuple[str, int, list[str]]] = []
    async with httpx.AsyncClient(base_url=live_server, headers=acme.write) as client:

        async def replay(example: Example) -> Any:
            response = await client.request(
                example.method,
                acme.url(example.path),
                json=example.json_body,
                data=example.form_body,
            )
            body = response.json() if response.content else None
            missing = _fields_missing(example.fields, example.result_fields, body)
            answers.append((example.name, response.status_code, missing))
            expected.append((example.name, example.status, []))
            return body

        release = await replay(
            Example(
                "create release",
                "POST",
                "releases/",
                201,
                json_body={"version": "string", "project": "string"},
                fields=RELEASE_FIELDS,
            )
        )
        await replay(
            Example(
                "retrieve release", "GET", f"releases/{release['id']}/", 200, fields=RELEASE_FIELDS
            )
        )
        await replay(
            Example(
                "update release",
                "PATCH",
                f"releases/{release['id']}/",
                204,
                form_body={"version": "1.0.1"},
            )
        )
        await replay(
            Example(
                "retrieve release by hash",
                "GET",
                f"releases/hash/{release['hash_id']}/",
                200,
                fields=RELEASE_FIELDS,
            )
        )
        await replay(Example("delete release", "DELETE", f"releases/{release['id']}/", 204))
        await replay(
            Example(
                "retrieve settings",
                "GET",
                "settings/retrieve_settings/",
                200,
                fields=SETTINGS_FIELDS,
            )
        )
        await replay(
            Example(
                "update settings",
                "PATCH",
                "settings/update_settings/",
                200,
                form_body={"project_rate_limit_value": "100"},
                fields=SETTINGS_FIELDS,
            )
        )
        await replay(
            Example(
                "spike detection config",
                "GET",
                "spike_detection_config/",
                200,
                fields=SPIKE_CONFIG_FIELDS,
            )
        )
        await replay(
            Example(
                "update spike detection config",
                "PATCH",
                "spike_detection_config/update_config/",
                200,
                form_body={"snooze_duration_minutes": "30"},
                fields=SPIKE_CONFIG_FIELDS,
            )
        )
        spikes = await replay(
            Example(
                "list spike events",
                "GET",
                "spike_events/",
                200,
                fields=PAGE_FIELDS,
                result_fields=SPIKE_EVENT_FIELDS,
            )
        )
        frames = await replay(
            Example(
                "list stack frames",
                "GET",
                "stack_frames/",
                200,
                fields=PAGE_FIELDS,
                result_fields=FRAME_FIELDS,
            )
        )
        await replay(
            Example(
                "retrieve stack frame", "GET", f"stack_frames/{frame.id}/", 200, fields=FRAME_FIELDS
            )
        )
        await replay(
            Example(
                "delete stack frame",
                "DELETE",
                f"stack_frames/{frame.id}/",
                405,
                fields={"type", "code", "detail", "attr"},
            )
        )
        batch = await replay(
            Example(
                "batch get stack frames",
                "POST",
                "stack_frames/batch_get/",
                200,
                json_body={"raw_ids": ["raw-frame-1"]},
                fields={"results"},
                result_fields=FRAME_FIELDS,
            )
        )
        rule = await replay(
            Example(
                "create suppression rule",
                "POST",
                "suppression_rules/",
                201,
                json_body={"filters": FILTERS},
                fields=RULE_FIELDS,
            )
        )
        rules = await replay(
            Example(
                "list suppression rules",
                "GET",
                "suppression_rules/",
                200,
                fields=PAGE_FIELDS,
                result_fields=RULE_FIELDS,
            )
        )
        await replay(
            Example(
                "retrieve suppression rule",
                "GET",
                f"suppression_rules/{rule['id']}/",
                200,
                fields=RULE_FIELDS,
            )
        )
        await replay(
            Example(
                "update suppression rule",
                "PATCH",
                f"suppression_rules/{rule['id']}/",
                204,
                form_body={"filters": json.dumps(FILTERS)},
            )
        )
        await replay(
            Example(
                "reorder suppression rules",
                "PATCH",
                "suppression_rules/reorder/",
                204,
                json_body={"orders": {rule["id"]: 3}},
            )
        )
        reordered = await replay(
            Example(
                "retrieve reordered suppression rule",
                "GET",
                f"suppression_rules/{rule['id']}/",
                200,
                fields=RULE_FIELDS,
            )
        )

    assert answers == expected
    # The lists were not vacuously complete: each had the seeded or created object in it.
    assert [spikes["count"], frames["count"], len(batch["results"]), rules["count"]] == [1, 1, 1, 1]
    assert reordered["order_key"] == 3
    assert frames["results"][0]["release"]["hash_id"] == "sha-090"
