"""Suppression rules: create (order_key = max + 1), list by order_key, retrieve, update (204,
re-enables the rule), delete; filters checked by the worker's grammar; config version bumps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
from redis.asyncio import Redis
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.main import create_app
from schemas.redis_keys import CONFIG_VERSIONS_KEY
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


async def test_create_answers_201_with_the_rule_and_its_defaults(
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
        None,
        0,
        None,
        1.0,
    )


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
        answers.append((response.status_code, body["type"], body["attr"]))

    assert answers == [
        (400, "validation_error", "filters.values.0.operator"),
        (400, "validation_error", "filters.values"),
        (400, "validation_error", "filters.values.0.value"),
    ]
    listed = (await client.get(acme.url("suppression_rules/"), headers=acme.read)).json()
    assert listed["count"] == 0


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
    import json

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
    version_key = str(acme.project_id)
    rule = await create_rule(client, acme)
    after_create = await api_redis.hget(CONFIG_VERSIONS_KEY, version_key)
    await client.patch(
        acme.url(f"suppression_rules/{rule['id']}/"),
        json={"sampling_rate": 0.5},
        headers=acme.write,
    )
    after_update = await api_redis.hget(CONFIG_VERSIONS_KEY, version_key)
    await client.post(acme.url("suppression_rules/"), json={"sampling_rate": 7}, headers=acme.write)
    await client.delete(acme.url(f"suppression_rules/{rule['id']}/"), headers=acme.write)
    after_delete = await api_redis.hget(CONFIG_VERSIONS_KEY, version_key)

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
