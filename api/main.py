"""The FastAPI application: ``create_app(settings)`` wires routers, error handling, the body limit,
metrics and the database and Redis clients (created in the lifespan, kept on ``app.state``).

It holds no endpoint logic of its own; each resource of the seed API lives in ``api.routes``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import version
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from api import docs_page, health
from api.body_limit import BodyLimitMiddleware
from api.errors import install_error_handlers
from api.openapi import build_openapi
from api.request_metrics import RequestMetricsMiddleware
from api.routes import (
    releases,
    spike_detection_config,
    spike_events,
    stack_frames,
    suppression_rules,
)
from api.routes import settings as settings_routes
from api.security_headers import SecurityHeadersMiddleware
from schemas.db import make_engine, make_sessionmaker
from schemas.redis_client import make_redis
from schemas.settings import Settings, get_settings

# A request should fail fast (503) when a backing service is down, not hang until the client
# gives up; that includes a database that keeps the connection open but never answers.
DATABASE_CONNECT_TIMEOUT_SECONDS = 5
DATABASE_COMMAND_TIMEOUT_SECONDS = 5
REDIS_TIMEOUT_SECONDS = 2


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = make_engine(settings.database_url, **_engine_options(settings.database_url))
        app.state.sessionmaker = make_sessionmaker(engine)
        app.state.redis = make_redis(
            settings.redis_url,
            cluster=settings.redis_cluster,
            timeout_seconds=REDIS_TIMEOUT_SECONDS,
        )
        try:
            yield
        finally:
            await app.state.redis.aclose()
            await engine.dispose()

    app = FastAPI(
        title="spikewatch",
        version=version("spikewatch"),
        description="The error tracking API of spikewatch: releases, settings, spike detection "
        "config, spike events, stack frames and suppression rules, per project. Text in request "
        "bodies may not contain NUL characters (\\u0000): no database can store them.",
        openapi_url=docs_page.OPENAPI_PATH,
        # Served by api.docs_page, which gives the page its own Content-Security-Policy.
        docs_url=None,
        redoc_url=None,
        redirect_slashes=False,
        lifespan=lifespan,
        # Operation ids are the route functions' names (create_release, ...), stable for clients.
        generate_unique_id_function=lambda route: route.name,
    )
    app.state.settings = settings
    install_error_handlers(app)
    for module in (
        releases,
        settings_routes,
        spike_detection_config,
        spike_events,
        stack_frames,
        suppression_rules,
        health,
        docs_page,
    ):
        app.include_router(module.router)
    app.openapi = lambda: build_openapi(app)  # type: ignore[method-assign]

    # Added last = outermost: metrics see every answer, including a 413 or a CORS preflight,
    # and so do the security headers.
    app.add_middleware(BodyLimitMiddleware, max_body_bytes=settings.api_max_body_bytes)
    if settings.api_cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.api_cors_origins,
            allow_methods=["*"],
            allow_headers=["Authorization", "Content-Type"],
        )
    app.add_middleware(SecurityHeadersMiddleware)
    app.add_middleware(RequestMetricsMiddleware)
    return app


def _engine_options(database_url: str) -> dict[str, Any]:
    if database_url.startswith("postgresql"):
        return {
            "connect_args": {
                "timeout": DATABASE_CONNECT_TIMEOUT_SECONDS,
                "command_timeout": DATABASE_COMMAND_TIMEOUT_SECONDS,
            }
        }
    return {}
