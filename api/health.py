"""Operational endpoints: ``/_health`` (can the API reach its database and Redis?) and
``/metrics`` (Prometheus). Neither needs an API key, and neither is part of the OpenAPI document.
"""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from api.errors import SERVER_ERROR, error_response

CHECK_TIMEOUT_SECONDS = 3.0

logger = logging.getLogger(__name__)

router = APIRouter(include_in_schema=False)


@router.get("/_health")
async def health(request: Request) -> Response:
    failed = [
        name
        for name, healthy in (
            ("database", await _database_ok(request)),
            ("redis", await _redis_ok(request)),
        )
        if not healthy
    ]
    if failed:
        return error_response(503, SERVER_ERROR, "unhealthy", f"Unavailable: {', '.join(failed)}.")
    return JSONResponse({"status": "ok", "database": "ok", "redis": "ok"})


@router.get("/metrics")
async def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


async def _database_ok(request: Request) -> bool:
    async def select_one() -> None:
        async with request.app.state.sessionmaker() as session:
            await session.execute(text("SELECT 1"))

    try:
        await asyncio.wait_for(select_one(), CHECK_TIMEOUT_SECONDS)
    except Exception as exc:
        # Any failure at all means "not healthy"; the reason is for the logs, not the probe.
        logger.warning("health check: database unavailable: %r", exc)
        return False
    return True


async def _redis_ok(request: Request) -> bool:
    try:
        return bool(await asyncio.wait_for(request.app.state.redis.ping(), CHECK_TIMEOUT_SECONDS))
    except Exception as exc:
        logger.warning("health check: redis unavailable: %r", exc)
        return False
