"""Suppression rules: create (order_key = max + 1, no filters = the empty AND group), list by
order_key, retrieve, update (204, re-enables the rule), delete, reorder (all or nothing); filters
checked by the worker's grammar, refused naming "filters"; config version bumps."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from redis.asyncio import Redis
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.main import create_app
from schemas.property_filters import OPERATORS
from schemas.redis_keys import config_version_key
from schemas.settings import Settings
from schemas.tables import SuppressionRule
from tests.api.conftest import ProjectAccess

TYPE_ERRORS = {
    "type": "AND",
    "values": [
        {"key": "$exception_types", "type": "event", "operator": "exact", "value": ["TypeError"]}
    ],
}


async def create_rule(client: httpx.AsyncClient, access: ProjectAccess, **fields: object) -> dict:
    response = await client.post(
        access.url("suppression_rules/"), json=fields, headers=access.write
    )
    assert response.status_code == 201, response.text
    return response.json()


MATCH_EVERY_EVENT = {"type": "AND", "values": []}
NOT_A_GROUP = "filters: must be a group {'type': 'AND'|'OR', 'values': [...]}"


async def rule_ids_in_order(client: httpx.AsyncClient, access: ProjectAccess) -> list[str]:
    listed = await client.get(access.url("suppression_rules/"), headers=access.read)
    return [rule["id"] for rule in listed.json()["results"]]


def filters_error(detail: str) -> dict[str, object]:
    return {"type": "validation_error", "code": "invalid", "detail": detail, "attr": "filters"}


async def test_create_without_filters_stores_and_echoes_the_empty_and_group(
    client: httpx.AsyncClient, acme: ProjectAccess
) -> None:
    response = await client.post(acme.url("suppression_rules/"), json={}, headers=acme.write)

    assert response.status_code == 201
    rule = response.json()
    assert set(rule) == {
        "id",
        "filters",
        "order_key",
        "disabled_data",
        "sampling_rate",
        "created_at",
        "updated_at",
    }
    assert (rule["filters"], rule["order_key"], rule["disabled_data"], rule["sampling_rate"]) == (
        MATCH_EVERY_EVENT,
        0,
        None,
        1.0,
    )
    fetched = await client.get(acme.url(f"suppression_rules/{rule['id']}/"), headers=acme.read)
    assert fetched.json() == rule


async def test_create_stores_valid_filters_and_sampling_rate(
    client: httpx.AsyncClient, acme: ProjectAccess
) -> None:
    rule = await create_rule(client, acme, filters=TYPE_ERRORS, sampling_rate=0.25)

    assert rule["filters"] == TYPE_ERRORS
    assert rule["sampling_rate"] == 0.25
    fetched = await client.get(acme.url(f"suppression_rules/{rule['id']}/"), headers=acme.read)
    assert fetched.json() == rule


async def test_empty_filters_match_everything_and_are_stored_as_null(
    client: httpx.AsyncClient, acme: ProjectAccess
) -> None:
    rule = await create_rule(client, acme, filters={})

    assert rule["filters"] is None


async def test_order_key_is_one_past_the_highest_and_the_list_follows_it(
    client: httpx.AsyncClient, acme: ProjectAccess
) -> None:
    first, second, third = [await create_rule(client, acme) for _ in range(3)]
    await client.delete(acme.url(f"suppression_rules/{second['id']}/"), headers=acme.write)
    await client.delete(acme.url(f"suppression_rules/{first['id']}/"), headers=acme.write)
    fourth = await create_rule(client, acme)

    listed = (await client.get(acme.url("suppression_rules/"), headers=acme.read)).json()

    assert [first["order_key"], second["order_key"], third["order_key"]] == [0, 1, 2]
    assert fourth["order_key"] == 3
    assert [rule["id"] for rule in listed["results"]] == [third["id"], fourth["id"]]
    assert listed["count"] == 2


async def test_filters_the_grammar_rejects_are_400_naming_the_problem(
    client: httpx.AsyncClient, acme: ProjectAccess
) -> None:
    unknown_operator = {
        "type": "AND",
        "values": [{"key": "$exception_types", "operator": "sounds_like", "value": "x"}],
    }
    malformed_group = {"type": "AND", "values": "TypeError"}
    backreference = {
        "type": "OR",
        "values": [{"key": "$exception_values", "operator": "regex", "value": "(a+)\\1"}],
    }

    answers = []
    for filters in (unknown_operator, malformed_group, backreference):
        response = await client.post(
            acme.url("suppression_rules/"), json={"filters": filters}, headers=acme.write
        )
        body = response.json()
        answers.append((response.status_code, body["type"], body["attr"], body["detail"]))

    assert answers == [
        (
            400,
            "validation_error",
            "filters",
            "filters.values.0.operator: unknown operator 'sounds_like'; expected one of "
            + ", ".join(sorted(OPERATORS)),
        ),
        (400, "validation_error", "filters", "filters.values: must be a list"),
        (
            400,
            "validation_error",
            "filters",
            "filters.values.0.value: invalid regex: invalid escape sequence: \\1",
        ),
    ]
    listed = (await client.get(acme.url("suppression_rules/"), headers=acme.read)).json()
    assert listed["count"] == 0


async def test_filters_that_are_not_a_group_are_400_naming_filters(
    client: httpx.AsyncClient, acme: ProjectAccess
) -> None:
    response = await client.post(
        acme.url("suppression_rules/"), json={"filters": {"not": "valid"}}, headers=acme.write
    )

    assert (response.status_code, response.json()) == (400, filters_error(NOT_A_GROUP))
    assert await rule_ids_in_order(client, acme) == []


@pytest.mark.parametrize(
    ("filters", "detail"),
    [
        (
            {"type": "AND", "values": [1]},
            "filters.values.0: must be a group or a property filter object",
        ),
        (
            {"type": "XOR", "values": []},
            "filters.type: group type must be 'AND' or 'OR', got 'XOR'",
        ),
        (
            {"type": "OR", "values": [{"type": "NOT", "values": []}]},
            "filters.values.0.type: group type must be 'AND' or 'OR', got 'NOT'",
        ),
    ],
    ids=["a value that is not an object", "type XOR", "a nested group of type NOT"],
)
async def test_malformed_filter_groups_are_400_on_filters_with_the_path_in_the_detail(
    client: httpx.AsyncClient, acme: ProjectAccess, filters: dict, detail: str
) -> None:
    rule = await create_rule(client, acme, filters=TYPE_ERRORS)

    created = await client.post(
        acme.url("suppression_rules/"), json={"filters": filters}, headers=acme.write
    )
    updated = await client.patch(
        acme.url(f"suppression_rules/{rule['id']}/"), json={"filters": filters}, headers=acme.write
    )

    assert (created.status_code, created.json()) == (400, filters_error(detail))
    assert (updated.status_code, updated.json()) == (400, filters_error(detail))
    fetched = await client.get(acme.url(f"suppression_rules/{rule['id']}/"), headers=acme.read)
    assert fetched.json() == rule
    assert await rule_ids_in_order(client, acme) == [rule["id"]]


async def test_sampling_rate_must_be_between_0_and_1(
    client: httpx.AsyncClient, acme: ProjectAccess
) -> None:
    above = await client.post(
        acme.url("suppression_rules/"), json={"sampling_rate": 1.5}, headers=acme.write
    )
    below = await client.post(
        acme.url("suppression_rules/"), json={"sampling_rate": -0.1}, headers=acme.write
    )
    edges = [await create_rule(client, acme, sampling_rate=rate) for rate in (0, 1)]

    assert (above.status_code, above.json()["code"], above.json()["attr"]) == (
        400,
        "max_value",
        "sampling_rate",
    )
    assert (below.status_code, below.json()["code"]) == (400, "min_value")
    assert [rule["sampling_rate"] for rule in edges] == [0.0, 1.0]


async def test_create_accepts_a_form_with_filters_as_json_text(
    client: httpx.AsyncClient, acme: ProjectAccess
) -> None:
    response = await client.post(
        acme.url("suppression_rules/"),
        data={"filters": json.dumps(TYPE_ERRORS), "sampling_rate": "0.5"},
        headers=acme.write,
    )

    assert response.status_code == 201
    assert (response.json()["filters"], response.json()["sampling_rate"]) == (TYPE_ERRORS, 0.5)


async def test_any_update_answers_204_and_re_enables_a_disabled_rule(
    client: httpx.AsyncClient,
    sessionmaker: async_sessionmaker[AsyncSession],
    acme: ProjectAccess,
) -> None:
    rule = await create_rule(client, acme, filters=TYPE_ERRORS)
    a_while_ago = datetime.now(UTC) - timedelta(days=1)
    async with sessionmaker() as session:
        await session.execute(
            update(SuppressionRule)
            .where(SuppressionRule.project_id == acme.project_id)
            .values(
                disabled_data={"message": "boom", "props": {}},
                updated_at=a_while_ago,
            )
        )
        await session.commit()

    response = await client.patch(
        acme.url(f"suppression_rules/{rule['id']}/"), json={}, headers=acme.write
    )

    assert (response.status_code, response.content) == (204, b"")
    updated = (
        await client.get(acme.url(f"suppression_rules/{rule['id']}/"), headers=acme.read)
    ).json()
    assert updated["disabled_data"] is None
    assert updated["filters"] == TYPE_ERRORS
    assert datetime.fromisoformat(updated["updated_at"]) > a_while_ago + timedelta(hours=23)


async def test_update_changes_filters_and_sampling_rate(
    client: httpx.AsyncClient, acme: ProjectAccess
) -> None:
    rule = await create_rule(client, acme, filters=TYPE_ERRORS)

    await client.patch(
        acme.url(f"suppression_rules/{rule['id']}/"),
        json={"filters": None, "sampling_rate": 0.1},
        headers=acme.write,
    )

    updated = (
        await client.get(acme.url(f"suppression_rules/{rule['id']}/"), headers=acme.read)
    ).json()
    assert (updated["filters"], updated["sampling_rate"], updated["order_key"]) == (None, 0.1, 0)


async def test_delete_answers_204_and_the_rule_is_gone(
    client: httpx.AsyncClient, acme: ProjectAccess
) -> None:
    rule = await create_rule(client, acme)

    deleted = await client.delete(acme.url(f"suppression_rules/{rule['id']}/"), headers=acme.write)
    again = await client.get(acme.url(f"suppression_rules/{rule['id']}/"), headers=acme.read)

    assert (deleted.status_code, deleted.content) == (204, b"")
    assert again.status_code == 404


async def test_create_update_and_delete_each_bump_the_config_version_once(
    client: httpx.AsyncClient, acme: ProjectAccess, api_redis: Redis
) -> None:
    version_key = config_version_key(acme.project_id)
    rule = await create_rule(client, acme)
    after_create = await api_redis.get(version_key)
    await client.patch(
        acme.url(f"suppression_rules/{rule['id']}/"),
        json={"sampling_rate": 0.5},
        headers=acme.write,
    )
    after_update = await api_redis.get(version_key)
    await client.post(acme.url("suppression_rules/"), json={"sampling_rate": 7}, headers=acme.write)
    await client.delete(acme.url(f"suppression_rules/{rule['id']}/"), headers=acme.write)
    after_delete = await api_redis.get(version_key)

    assert (after_create, after_update, after_delete) == ("1", "2", "3")


async def test_with_redis_down_a_write_is_saved_and_answers_503_saying_so(
    database_url: str,
    sessionmaker: async_sessionmaker[AsyncSession],
    acme: ProjectAccess,
) -> None:
    app = create_app(Settings(database_url=database_url, redis_url="redis://127.0.0.1:1/0"))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client,
    ):
        response = await client.post(
            acme.url("suppression_rules/"), json={"sampling_rate": 0.5}, headers=acme.write
        )

    assert response.status_code == 503
    assert response.json()["code"] == "config_not_propagated"
    assert "saved" in response.json()["detail"]
    async with sessionmaker() as session:
        stored = await session.scalar(
            select(func.count()).where(SuppressionRule.project_id == acme.project_id)
        )
    assert stored == 1


async def test_reorder_answers_204_and_sets_each_rules_order_key(
    client: httpx.AsyncClient, acme: ProjectAccess
) -> None:
    first, second, third = [await create_rule(client, acme) for _ in range(3)]

    response = await client.patch(
        acme.url("suppression_rules/reorder/"),
        json={"orders": {third["id"]: 0, first["id"]: 1, second["id"]: 2}},
        headers=acme.write,
    )

    assert (response.status_code, response.content) == (204, b"")
    listed = (await client.get(acme.url("suppression_rules/"), headers=acme.read)).json()
    assert [(rule["id"], rule["order_key"]) for rule in listed["results"]] == [
        (third["id"], 0),
        (first["id"], 1),
        (second["id"], 2),
    ]
    # Only the order changed: a reorder is not an edit of the rules themselves.
    assert {rule["id"]: rule for rule in listed["results"]} == {
        rule["id"]: rule | {"order_key": order_key}
        for rule, order_key in ((third, 0), (first, 1), (second, 2))
    }


async def test_reorder_leaves_rules_it_does_not_name_and_create_appends_after_the_highest(
    client: httpx.AsyncClient, acme: ProjectAccess
) -> None:
    first, second = [await create_rule(client, acme) for _ in range(2)]

    await client.patch(
        acme.url("suppression_rules/reorder/"),
        json={"orders": {first["id"]: 7}},
        headers=acme.write,
    )
    third = await create_rule(client, acme)

    assert third["order_key"] == 8
    assert await rule_ids_in_order(client, acme) == [second["id"], first["id"], third["id"]]


async def test_reorder_naming_an_unknown_rule_or_another_projects_rule_is_400_and_changes_nothing(
    client: httpx.AsyncClient, acme: ProjectAccess, globex: ProjectAccess, api_redis: Redis
) -> None:
    first, second = [await create_rule(client, acme) for _ in range(2)]
    foreign = await create_rule(client, globex)
    unknown = str(uuid.uuid4())
    version_before = await api_redis.get(config_version_key(acme.project_id))

    answers = []
    for stranger in (unknown, foreign["id"]):
        response = await client.patch(
            acme.url("suppression_rules/reorder/"),
            json={"orders": {second["id"]: 0, first["id"]: 1, stranger: 2}},
            headers=acme.write,
        )
        answers.append((response.status_code, response.json()))

    assert answers == [
        (
            400,
            {
                "type": "validation_error",
                "code": "invalid",
                "detail": f"No suppression rule of this project has the id {stranger}.",
                "attr": "orders",
            },
        )
        for stranger in (unknown, foreign["id"])
    ]
    assert await rule_ids_in_order(client, acme) == [first["id"], second["id"]]
    foreign_now = await client.get(
        globex.url(f"suppression_rules/{foreign['id']}/"), headers=globex.read
    )
    assert foreign_now.json() == foreign
    assert await api_redis.get(config_version_key(acme.project_id)) == version_before


async def test_reorder_bumps_the_config_version_once_and_an_empty_reorder_changes_nothing(
    client: httpx.AsyncClient, acme: ProjectAccess, api_redis: Redis
) -> None:
    version_key = config_version_key(acme.project_id)
    first, second = [await create_rule(client, acme) for _ in range(2)]
    after_creates = await api_redis.get(version_key)

    reordered = await client.patch(
        acme.url("suppression_rules/reorder/"),
        json={"orders": {second["id"]: 0, first["id"]: 1}},
        headers=acme.write,
    )
    after_reorder = await api_redis.get(version_key)
    empty = await client.patch(acme.url("suppression_rules/reorder/"), headers=acme.write)
    no_orders = await client.patch(
        acme.url("suppression_rules/reorder/"), json={"orders": {}}, headers=acme.write
    )

    assert [reordered.status_code, empty.status_code, no_orders.status_code] == [204, 204, 204]
    assert (after_creates, after_reorder) == ("2", "3")
    assert await api_redis.get(version_key) == "3"
    assert await rule_ids_in_order(client, acme) == [second["id"], first["id"]]


async def test_reorder_refuses_order_keys_out_of_range_and_ids_that_are_not_uuids(
    client: httpx.AsyncClient, acme: ProjectAccess
) -> None:
    rule = await create_rule(client, acme)

    answers = []
    for orders in (
        {rule["id"]: -1},
        {rule["id"]: 1_000_000_001},
        {rule["id"]: "first"},
        {"first": 0},
        [rule["id"]],
    ):
        response = await client.patch(
            acme.url("suppression_rules/reorder/"), json={"orders": orders}, headers=acme.write
        )
        answers.append((response.status_code, response.json()["code"], response.json()["attr"]))

    assert answers == [
        (400, "min_value", f"orders.{rule['id']}"),
        (400, "max_value", f"orders.{rule['id']}"),
        (400, "invalid", f"orders.{rule['id']}"),
        (400, "invalid", "orders.first.[key]"),
        (400, "invalid", "orders"),
    ]
    assert (await rule_ids_in_order(client, acme)) == [rule["id"]]
    fetched = await client.get(acme.url(f"suppression_rules/{rule['id']}/"), headers=acme.read)
    assert fetched.json()["order_key"] == 0


async def test_reorder_accepts_a_form_with_orders_as_json_text(
    client: httpx.AsyncClient, acme: ProjectAccess
) -> None:
    first, second = [await create_rule(client, acme) for _ in range(2)]

    response = await client.patch(
        acme.url("suppression_rules/reorder/"),
        data={"orders": json.dumps({second["id"]: 0, first["id"]: 5})},
        headers=acme.write,
    )

    assert response.status_code == 204
    assert await rule_ids_in_order(client, acme) == [second["id"], first["id"]]
