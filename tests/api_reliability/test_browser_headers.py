"""What a browser is told: security headers on every answer (successes, every kind of error,
the service endpoints, the document), a strict Content-Security-Policy except on the docs page,
whose own policy allows exactly its scripts; and no CORS unless ``api_cors_origins`` names the
origin.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import AsyncIterator

import httpx
import pytest

from api.main import create_app
from api.security_headers import SECURITY_HEADERS, STRICT_CONTENT_SECURITY_POLICY
from schemas.settings import Settings
from tests.api.conftest import ProjectAccess

UI_ORIGIN = "https://errors-ui.example"
OTHER_ORIGIN = "https://evil.example"


def _missing_headers(response: httpx.Response) -> dict[str, str | None]:
    return {
        name: response.headers.get(name)
        for name, value in SECURITY_HEADERS.items()
        if response.headers.get(name) != value
    }


async def test_every_kind_of_answer_carries_the_security_headers(
    client: httpx.AsyncClient, acme: ProjectAccess
) -> None:
    rule = await client.post(acme.url("suppression_rules/"), json={}, headers=acme.write)
    answers = {
        "200 list": await client.get(acme.url("releases/"), headers=acme.read),
        "201 create": rule,
        "204 update": await client.patch(
            acme.url(f"suppression_rules/{rule.json()['id']}/"), json={}, headers=acme.write
        ),
        "400 invalid": await client.post(acme.url("releases/"), json={}, headers=acme.write),
        "401 no key": await client.get(acme.url("releases/")),
        "403 scope": await client.post(acme.url("releases/"), json={}, headers=acme.read),
        "404 route": await client.get("/nothing/here/"),
        "405 method": await client.put(acme.url("releases/"), headers=acme.write),
        "413 too large": await client.post(
            acme.url("releases/"),
            content=b" " * 1_000_001,
            headers={**acme.write, "Content-Type": "application/json"},
        ),
        "415 media type": await client.post(
            acme.url("releases/"),
            content=b"x",
            headers={**acme.write, "Content-Type": "text/plain"},
        ),
        "health": await client.get("/_health"),
        "metrics": await client.get("/metrics"),
        "document": await client.get("/api/schema/"),
    }

    assert {name: answer.status_code for name, answer in answers.items()} == {
        "200 list": 200,
        "201 create": 201,
        "204 update": 204,
        "400 invalid": 400,
        "401 no key": 401,
        "403 scope": 403,
        "404 route": 404,
        "405 method": 405,
        "413 too large": 413,
        "415 media type": 415,
        "health": 200,
        "metrics": 200,
        "document": 200,
    }
    assert {name: _missing_headers(answer) for name, answer in answers.items()} == {
        name: {} for name in answers
    }


async def test_an_unexpected_server_error_carries_the_security_headers_too(
    api_settings: Settings,
) -> None:
    app = create_app(api_settings)

    async def fail() -> None:
        raise RuntimeError("a bug")

    # Starlette answers a 500 outside the middleware stack, so this path needs its own proof.
    app.add_api_route("/fail", fail)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://t") as client,
    ):
        response = await client.get("/fail")

    assert response.status_code == 500
    assert response.json()["code"] == "error"
    assert _missing_headers(response) == {}


async def test_the_docs_page_has_its_own_policy_allowing_exactly_its_inline_script(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/api/schema/swagger-ui/")

    policy = dict(
        directive.strip().split(" ", 1)
        for directive in response.headers["content-security-policy"].split(";")
    )
    inline_scripts = re.findall(r"<script>(.*?)</script>", response.text, re.DOTALL)
    hashes = {
        f"'sha256-{base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()}'"
        for script in inline_scripts
    }
    assert response.status_code == 200
    assert len(inline_scripts) == 1
    assert hashes <= set(policy["script-src"].split())
    assert "'unsafe-inline'" not in policy["script-src"]
    assert "'unsafe-eval'" not in policy["script-src"]
    assert policy["default-src"] == "'none'"
    assert policy["connect-src"] == "'self'"
    assert policy["frame-ancestors"] == "'none'"
    assert response.headers["content-security-policy"] != STRICT_CONTENT_SECURITY_POLICY
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["x-content-type-options"] == "nosniff"


@pytest.fixture
async def cors_client(api_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(api_settings.model_copy(update={"api_cors_origins": [UI_ORIGIN]}))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http,
    ):
        yield http


def _preflight(origin: str) -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type",
    }


async def test_cors_is_off_by_default(client: httpx.AsyncClient, acme: ProjectAccess) -> None:
    preflight = await client.options(acme.url("releases/"), headers=_preflight(UI_ORIGIN))
    simple = await client.get(acme.url("releases/"), headers={**acme.read, "Origin": UI_ORIGIN})

    assert preflight.status_code == 405
    assert "access-control-allow-origin" not in preflight.headers
    assert simple.status_code == 200
    assert "access-control-allow-origin" not in simple.headers


async def test_cors_allows_only_the_configured_origins(
    cors_client: httpx.AsyncClient, acme: ProjectAccess
) -> None:
    allowed = await cors_client.options(acme.url("releases/"), headers=_preflight(UI_ORIGIN))
    refused = await cors_client.options(acme.url("releases/"), headers=_preflight(OTHER_ORIGIN))
    simple = await cors_client.get(
        acme.url("releases/"), headers={**acme.read, "Origin": UI_ORIGIN}
    )
    other = await cors_client.get(
        acme.url("releases/"), headers={**acme.read, "Origin": OTHER_ORIGIN}
    )

    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == UI_ORIGIN
    assert "POST" in allowed.headers["access-control-allow-methods"]
    assert _missing_headers(allowed) == {}
    assert refused.status_code == 400
    assert "access-control-allow-origin" not in refused.headers
    assert simple.headers["access-control-allow-origin"] == UI_ORIGIN
    assert "access-control-allow-origin" not in other.headers
