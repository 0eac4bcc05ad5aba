"""Every error has the one JSON shape, and bad input is a 4xx, never a 5xx: malformed JSON, wrong
types, unknown fields, text no database can store, oversized bodies, unknown routes and methods,
and a database that is down (503)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from api.main import create_app
from schemas.settings import Settings
from tests.api.conftest import ProjectAccess
from tests.api.operations import OPERATIONS

ERROR_FIELDS = {"type", "code", "detail", "attr"}
ONE_MEGABYTE = 1_000_000


async def _post_raw(
    client: httpx.AsyncClient, access: ProjectAccess, body: bytes | str, path: str = "releases/"
) -> httpx.Response:
    return await client.post(
        access.url(path),
        content=body,
        headers={**access.write, "Content-Type": "application/json"},
    )


async def test_malformed_json_is_400_parse_error(
    client: httpx.AsyncClient, acme: ProjectAccess
) -> None:
    response = await _post_raw(client, acme, b'{"version": "1", "project": ')

    assert response.status_code == 400
    assert set(response.json()) == ERROR_FIELDS
    assert (response.json()["type"], response.json()["code"]) == ("validation_error", "parse_error")
    assert response.json()["detail"].startswith("JSON parse error - ")


@pytest.mark.parametrize(
    "body",
    [b'{"version": NaN}', b'{"metadata": {"x": Infinity}}', b'{"metadata": {"x": 1e999}}'],
    ids=["nan", "infinity", "overflowing-float"],
)
async def test_numbers_json_does_not_allow_are_400(
    client: httpx.AsyncClient, acme: ProjectAccess, body: bytes
) -> None:
    response = await _post_raw(client, acme, body)

    assert (response.status_code, response.json()["code"]) == (400, "parse_error")


async def test_a_body_that_is_not_an_object_is_400(
    client: httpx.AsyncClient, acme: ProjectAccess
) -> None:
    response = await _post_raw(client, acme, b'["version", "project"]')

    assert response.status_code == 400
    assert response.json()["type"] == "validation_error"
    assert response.json()["attr"] is None


async def test_wrong_types_are_400_naming_the_field(
    client: httpx.AsyncClient, acme: ProjectAccess
) -> None:
    answers = []
    for path, body in (
        ("releases/", {"version": 1.5, "project": "web"}),
        ("releases/", {"version": "1", "project": "web", "metadata": ["a"]}),
        ("suppression_rules/", {"sampling_rate": "often"}),
        ("suppression_rules/", {"filters": "everything"}),
        ("stack_frames/batch_get/", {"raw_ids": "raw-1"}),
    ):
        response = await client.post(acme.url(path), json=body, headers=acme.write)
        answers.append((response.status_code, response.json()["attr"]))

    assert answers == [
        (400, "version"),
        (400, "metadata"),
        (400, "sampling_rate"),
        (400, "filters"),
        (400, "raw_ids"),
    ]


async def test_unknown_fields_are_400_unknown_field_on_every_body(
    client: httpx.AsyncClient, acme: ProjectAccess
) -> None:
    release = await client.post(
        acme.url("releases/"), json={"version": "1", "project": "web"}, headers=acme.write
    )
    rule = await client.post(acme.url("suppression_rules/"), json={}, headers=acme.write)
    valid_bodies = [
        ("POST", "releases/", {"version": "1", "project": "web"}),
        ("PATCH", f"releases/{release.json()['id']}/", {}),
        ("PATCH", "settings/update_settings/", {}),
        ("PATCH", "spike_detection_config/update_config/", {}),
        ("POST", "stack_frames/batch_get/", {"raw_ids": []}),
        ("POST", "suppression_rules/", {}),
        ("PATCH", f"suppression_rules/{rule.json()['id']}/", {}),
        ("PATCH", "suppression_rules/reorder/", {}),
    ]

    answers = set()
    for method, path, body in valid_bodies:
        response = await client.request(
            method, acme.url(path), json={**body, "surprise": True}, headers=acme.write
        )
        answers.add((response.status_code, response.json()["code"], response.json()["attr"]))

    assert answers == {(400, "unknown_field", "surprise")}


@pytest.mark.parametrize(
    ("body", "attr"),
    [
        (b'{"version": "1\\u0000", "project": "web"}', "version"),
        (b'{"version": "1", "project": "web", "metadata": {"k": "\\ud800"}}', "metadata.k"),
        (b'{"version": "1", "project": "web", "metadata": {"a\\u0000": 1}}', "metadata"),
    ],
    ids=["nul-in-text", "lone-surrogate", "nul-in-key"],
)
async def test_text_no_database_can_store_is_400(
    client: httpx.AsyncClient, acme: ProjectAccess, body: bytes, attr: str
) -> None:
    response = await _post_raw(client, acme, body)

    assert (response.status_code, response.json()["attr"]) == (400, attr)


async def test_json_nested_deeper_than_64_levels_is_400(
    client: httpx.AsyncClient, acme: ProjectAccess
) -> None:
    deep = '{"a": ' * 70 + "1" + "}" * 70
    shallow = '{"a": ' * 10 + "1" + "}" * 10

    too_deep = await _post_raw(
        client, acme, f'{{"version": "1", "project": "w", "metadata": {deep}}}'
    )
    fine = await _post_raw(
        client, acme, f'{{"version": "1", "project": "w", "metadata": {shallow}}}'
    )
    recursion = await _post_raw(client, acme, "[" * 100_000 + "]" * 100_000)

    assert (too_deep.status_code, too_deep.json()["code"]) == (400, "invalid")
    assert fine.status_code == 201
    assert recursion.status_code == 400


async def test_a_body_over_one_megabyte_is_413_by_content_length(
    client: httpx.AsyncClient, acme: ProjectAccess
) -> None:
    response = await _post_raw(client, acme, b" " * (ONE_MEGABYTE + 1))

    assert response.status_code == 413
    assert response.json() == {
        "type": "invalid_request",
        "code": "request_too_large",
        "detail": f"The request body is larger than {ONE_MEGABYTE} bytes.",
        "attr": None,
    }


async def test_a_streamed_body_over_one_megabyte_is_413_without_content_length(
    client: httpx.AsyncClient, acme: ProjectAccess
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(11):
            yield b" " * 100_000

    response = await client.post(
        acme.url("releases/"),
        content=chunks(),
        headers={**acme.write, "Content-Type": "application/json"},
    )

    assert response.request.headers.get("content-length") is None
    assert (response.status_code, response.json()["code"]) == (413, "request_too_large")


async def test_a_body_of_exactly_the_limit_is_read(
    client: httpx.AsyncClient, acme: ProjectAccess
) -> None:
    body = b'{"version": "1", "project": "web"}'
    padded = body + b" " * (ONE_MEGABYTE - len(body))

    response = await _post_raw(client, acme, padded)

    assert response.status_code == 201


async def test_a_body_neither_json_nor_form_is_415(
    client: httpx.AsyncClient, acme: ProjectAccess
) -> None:
    response = await client.post(
        acme.url("releases/"),
        content=b"version=1",
        headers={**acme.write, "Content-Type": "text/plain"},
    )

    assert response.status_code == 415
    assert response.json()["code"] == "unsupported_media_type"


async def test_an_unknown_route_is_404_in_the_error_shape(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/nothing/here")

    assert response.status_code == 404
    assert response.json() == {
        "type": "invalid_request",
        "code": "not_found",
        "detail": "Not found.",
        "attr": None,
    }


async def test_an_unsupported_method_is_405_listing_every_allowed_method(
    client: httpx.AsyncClient, acme: ProjectAccess
) -> None:
    response = await client.put(acme.url("suppression_rules/"), headers=acme.write)

    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD, POST"
    assert response.json()["detail"] == 'Method "PUT" not allowed.'


async def test_every_path_answers_with_and_without_trailing_slash_without_redirect(
    client: httpx.AsyncClient, acme: ProjectAccess
) -> None:
    answers = set()
    for method, path, _ in OPERATIONS:
        with_slash = await client.request(method, acme.url(path), headers=acme.read)
        without = await client.request(method, acme.url(path.rstrip("/")), headers=acme.read)
        answers.add(with_slash.status_code == without.status_code)
        assert with_slash.status_code < 300 or with_slash.status_code >= 400
        assert without.status_code < 300 or without.status_code >= 400

    assert answers == {True}


@pytest.mark.parametrize(
    "database_url_down",
    [
        "postgresql+asyncpg://spikewatch:spikewatch@127.0.0.1:1/spikewatch",
        "sqlite+aiosqlite:////nonexistent-directory/spikewatch.db",
    ],
    ids=["postgresql", "sqlite"],
)
async def test_a_database_that_is_down_is_503_in_the_error_shape(
    database_url_down: str, api_redis_url: str
) -> None:
    app = create_app(Settings(database_url=database_url_down, redis_url=api_redis_url))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client,
    ):
        response = await client.get(
            "/api/projects/1/error_tracking/releases/", headers={"Authorization": "Bearer swk_x"}
        )

    assert response.status_code == 503
    assert response.json() == {
        "type": "server_error",
        "code": "database_unavailable",
        "detail": "The database is unavailable; try again later.",
        "attr": None,
    }
