"""The API's service endpoints: the OpenAPI document and its docs page, ``/_health`` (database and
Redis) and ``/metrics`` (Prometheus)."""

from __future__ import annotations

import httpx
from prometheus_client import REGISTRY

from api.main import create_app
from schemas.settings import Settings
from tests.api.conftest import ProjectAccess

SEED_PATHS = {
    "/api/projects/{project_id}/error_tracking/releases/",
    "/api/projects/{project_id}/error_tracking/releases/{release_id}/",
    "/api/projects/{project_id}/error_tracking/releases/hash/{hash_id}/",
    "/api/projects/{project_id}/error_tracking/settings/retrieve_settings/",
    "/api/projects/{project_id}/error_tracking/settings/update_settings/",
    "/api/projects/{project_id}/error_tracking/spike_detection_config/",
    "/api/projects/{project_id}/error_tracking/spike_detection_config/update_config/",
    "/api/projects/{project_id}/error_tracking/spike_events/",
    "/api/projects/{project_id}/error_tracking/stack_frames/",
    "/api/projects/{project_id}/error_tracking/stack_frames/{frame_id}/",
    "/api/projects/{project_id}/error_tracking/stack_frames/batch_get/",
    "/api/projects/{project_id}/error_tracking/suppression_rules/",
    "/api/projects/{project_id}/error_tracking/suppression_rules/{rule_id}/",
    "/api/projects/{project_id}/error_tracking/suppression_rules/reorder/",
}


async def test_the_openapi_document_lists_every_seed_path_with_400_not_422(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/api/schema/")

    document = response.json()
    assert response.status_code == 200
    assert set(document["paths"]) == SEED_PATHS
    codes = {
        code
        for path_item in document["paths"].values()
        for operation in path_item.values()
        for code in operation["responses"]
    }
    assert "422" not in codes
    assert {"400", "401", "403", "404"} <= codes
    create = document["paths"]["/api/projects/{project_id}/error_tracking/suppression_rules/"]
    assert set(create["post"]["requestBody"]["content"]) == {
        "application/json",
        "application/x-www-form-urlencoded",
    }
    assert create["post"]["security"] == [{"PersonalApiKey": []}]
    reorder = document["paths"][
        "/api/projects/{project_id}/error_tracking/suppression_rules/reorder/"
    ]
    assert set(reorder) == {"patch"}
    assert set(reorder["patch"]["responses"]) == {
        "204",
        "400",
        "401",
        "403",
        "404",
        "413",
        "415",
        "503",
    }
    orders = document["components"]["schemas"]["SuppressionRuleReorder"]["properties"]["orders"]
    assert orders["propertyNames"] == {"format": "uuid"}


async def test_interactive_docs_load_the_document(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/schema/swagger-ui/")

    assert response.status_code == 200
    assert "text/html" in response.headers["content-type"]
    assert "/api/schema/" in response.text


async def test_health_is_ok_when_database_and_redis_answer(client: httpx.AsyncClient) -> None:
    response = await client.get("/_health")

    assert (response.status_code, response.json()) == (
        200,
        {"status": "ok", "database": "ok", "redis": "ok"},
    )


async def test_health_is_503_naming_redis_when_redis_is_down(database_url: str) -> None:
    app = create_app(Settings(database_url=database_url, redis_url="redis://127.0.0.1:1/0"))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client,
    ):
        response = await client.get("/_health")

    assert response.status_code == 503
    assert response.json() == {
        "type": "server_error",
        "code": "unhealthy",
        "detail": "Unavailable: redis.",
        "attr": None,
    }


async def test_metrics_count_requests_by_route_template_and_status(
    client: httpx.AsyncClient, acme: ProjectAccess
) -> None:
    labels = {
        "method": "GET",
        "route": "/api/projects/{project_id}/error_tracking/releases/",
        "status": "200",
    }
    before = REGISTRY.get_sample_value("spikewatch_api_requests_total", labels) or 0.0

    for _ in range(3):
        await client.get(acme.url("releases/"), headers=acme.read)
    response = await client.get("/metrics")

    assert REGISTRY.get_sample_value("spikewatch_api_requests_total", labels) == before + 3
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert "spikewatch_api_request_duration_seconds_bucket" in response.text
