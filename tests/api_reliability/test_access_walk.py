"""Scopes and project access on every route of the API's own OpenAPI document: no key, an
unknown key and a revoked key are 401; a read-only key is 403 on every write and answers reads
exactly as a write key does; a key of another project is 404 everywhere, whatever its scope.

The routes come from the document served by the app, so a route added later is walked too.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api import admin
from api.auth import READ_SCOPE, generate_key
from tests.api.conftest import ProjectAccess, bearer

# The only operations that need no more than the read scope although they are not GETs: a
# batch_get sends its list of ids in a body, and changes nothing.
READ_ONLY_OPERATIONS_WITH_A_BODY = frozenset({"batch_get_stack_frames"})
NOT_AUTHENTICATED = (401, "not_authenticated")
AUTHENTICATION_FAILED = (401, "authentication_failed")
PERMISSION_DENIED = (403, "permission_denied")
NOT_FOUND = (404, "not_found")


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    operation_id: str
    parameters: list[dict[str, Any]]
    has_body: bool

    @property
    def needs_write(self) -> bool:
        return self.method != "GET" and self.operation_id not in READ_ONLY_OPERATIONS_WITH_A_BODY

    def url(self, project_id: int) -> str:
        path = self.path.replace("{project_id}", str(project_id))
        for parameter in self.parameters:
            if parameter["in"] == "path" and parameter["name"] != "project_id":
                # An id of the right shape that names no object: the access checks come first.
                placeholder = f"{{{parameter['name']}}}"
                path = path.replace(placeholder, _any_value(parameter["schema"]))
        return path


def _any_value(schema: dict[str, Any]) -> str:
    return str(uuid.uuid4()) if schema.get("format") == "uuid" else "anything"


def operations_of(document: dict[str, Any]) -> list[Operation]:
    return [
        Operation(
            method=method.upper(),
            path=path,
            operation_id=operation["operationId"],
            parameters=operation.get("parameters", []),
            has_body="requestBody" in operation,
        )
        for path, path_item in document["paths"].items()
        for method, operation in path_item.items()
    ]


async def _walk(
    client: httpx.AsyncClient,
    operations: list[Operation],
    project_id: int,
    headers: dict[str, str],
) -> dict[str, tuple[int, str]]:
    answers = {}
    for operation in operations:
        response = await client.request(
            operation.method,
            operation.url(project_id),
            headers=headers,
            json={} if operation.has_body else None,
        )
        answers[f"{operation.method} {operation.path}"] = (
            response.status_code,
            response.json()["code"] if response.status_code >= 400 else "",
        )
    return answers


async def test_every_documented_route_enforces_keys_scopes_and_projects(
    client: httpx.AsyncClient,
    sessionmaker: async_sessionmaker[AsyncSession],
    acme: ProjectAccess,
    globex: ProjectAccess,
) -> None:
    document = (await client.get("/api/schema/")).json()
    operations = operations_of(document)
    labels = [f"{operation.method} {operation.path}" for operation in operations]
    writes = {f"{op.method} {op.path}" for op in operations if op.needs_write}
    revoked, revoked_plaintext = await admin.create_api_key(
        sessionmaker, label="old", scopes=["*"], project_ids=[acme.project_id]
    )
    await admin.revoke_api_key(sessionmaker, revoked.id)
    _, globex_admin = await admin.create_api_key(
        sessionmaker, label="globex admin", scopes=["*"], project_ids=[globex.project_id]
    )
    _, everywhere_read = await admin.create_api_key(
        sessionmaker, label="auditor", scopes=[READ_SCOPE], project_ids=None
    )

    def walk(headers: dict[str, str]) -> Any:
        return _walk(client, operations, acme.project_id, headers)

    no_key = await walk({})
    unknown_key = await walk(bearer(generate_key()))
    revoked_key = await walk(bearer(revoked_plaintext))
    read_only = await walk(acme.read)
    read_everywhere = await walk(bearer(everywhere_read))
    write = await walk(acme.write)
    other_project = await walk(globex.write)
    other_project_admin = await walk(bearer(globex_admin))

    assert len(operations) >= 21 and writes and set(labels) - writes
    assert "PATCH /api/projects/{project_id}/error_tracking/suppression_rules/reorder/" in writes
    assert all(
        operation["security"] == [{"PersonalApiKey": []}]
        for path_item in document["paths"].values()
        for operation in path_item.values()
    )
    assert no_key == dict.fromkeys(labels, NOT_AUTHENTICATED)
    assert unknown_key == dict.fromkeys(labels, AUTHENTICATION_FAILED)
    assert revoked_key == dict.fromkeys(labels, AUTHENTICATION_FAILED)
    assert {label: read_only[label] for label in writes} == dict.fromkeys(writes, PERMISSION_DENIED)
    assert {label: read_everywhere[label] for label in writes} == dict.fromkeys(
        writes, PERMISSION_DENIED
    )
    reads = [label for label in labels if label not in writes]
    assert {label: read_only[label] for label in reads} == {label: write[label] for label in reads}
    assert {label: read_everywhere[label] for label in reads} == {
        label: write[label] for label in reads
    }
    assert all(write[label][0] not in (401, 403) for label in reads)
    assert other_project == dict.fromkeys(labels, NOT_FOUND)
    assert other_project_admin == dict.fromkeys(labels, NOT_FOUND)


async def test_an_answer_without_a_key_says_how_to_authenticate(
    client: httpx.AsyncClient, acme: ProjectAccess
) -> None:
    document = (await client.get("/api/schema/")).json()

    challenges = {
        (await client.request(op.method, op.url(acme.project_id))).headers.get("www-authenticate")
        for op in operations_of(document)
    }

    assert challenges == {"Bearer"}
