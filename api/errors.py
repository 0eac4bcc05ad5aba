"""The one JSON error shape of the API, ``{"type", "code", "detail", "attr"}``, for every error.

Maps our own errors, request validation, Starlette's 404/405, database and Redis outages (503)
and anything unexpected (500) onto it. A client never sees a stack trace or a framework's body.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from redis.exceptions import RedisClusterException, RedisError
from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import Scope

from api.security_headers import SECURITY_HEADERS

logger = logging.getLogger(__name__)

VALIDATION_ERROR = "validation_error"
AUTHENTICATION_ERROR = "authentication_error"
INVALID_REQUEST = "invalid_request"
SERVER_ERROR = "server_error"

# What an unreachable database looks like from SQLAlchemy and the drivers below it: asyncpg
# raises OSError itself (refused connection, timeout) before SQLAlchemy can wrap anything.
DATABASE_OUTAGES: tuple[type[Exception], ...] = (
    OperationalError,
    InterfaceError,
    DisconnectionError,
    PoolTimeoutError,
    OSError,
)

_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


class ErrorBody(BaseModel):
    """Every error response of the API has this body."""

    type: str
    code: str
    detail: str
    attr: str | None


class ApiError(Exception):
    """An error a route raises on purpose; rendered as :class:`ErrorBody`."""

    def __init__(
        self,
        status_code: int,
        type: str,
        code: str,
        detail: str,
        attr: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status_code = status_code
        self.body = ErrorBody(type=type, code=code, detail=detail, attr=attr)
        self.headers = headers


def not_found() -> ApiError:
    # One message for "does not exist" and "not yours": a key must not learn which it was.
    return ApiError(404, INVALID_REQUEST, "not_found", "Not found.")


def invalid(detail: str, attr: str | None, code: str = "invalid") -> ApiError:
    return ApiError(400, VALIDATION_ERROR, code, detail, attr)


def error_response(
    status_code: int,
    type: str,
    code: str,
    detail: str,
    attr: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = ErrorBody(type=type, code=code, detail=detail, attr=attr)
    return JSONResponse(body.model_dump(), status_code=status_code, headers=headers)


def error_responses(*status_codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for the error codes an operation can answer."""
    return {code: {"model": ErrorBody, "description": _DESCRIPTIONS[code]} for code in status_codes}


_DESCRIPTIONS = {
    400: "Invalid request: malformed JSON, wrong types, unknown fields or values out of range.",
    401: "No API key, or an unknown or revoked one.",
    403: "The API key lacks the scope this operation needs.",
    404: "No such object, or the project does not exist or is not accessible with this key.",
    405: "The method is not allowed on this resource.",
    413: "The request body is larger than the configured limit.",
    415: "The body is neither JSON nor an urlencoded form.",
    503: "The database or Redis is unavailable.",
}


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    for outage in DATABASE_OUTAGES:
        app.add_exception_handler(outage, _database_unavailable)
    app.add_exception_handler(RedisError, _redis_unavailable)
    # The cluster client's "no node serves these slots" is not a RedisError.
    app.add_exception_handler(RedisClusterException, _redis_unavailable)
    app.add_exception_handler(Exception, _unexpected)


async def _api_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return JSONResponse(exc.body.model_dump(), exc.status_code, headers=exc.headers)


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    # Like the reference, report the first problem, naming the field it is in.
    first = exc.errors()[0]
    code, detail = _describe(first)
    return error_response(400, VALIDATION_ERROR, code, detail, _attr(first.get("loc", ())))


def _describe(error: dict[str, Any]) -> tuple[str, str]:
    kind = error.get("type", "")
    if kind == "missing":
        return "required", "This field is required."
    if kind == "extra_forbidden":
        return "unknown_field", "Unknown field."
    if error.get("input", ...) is None:
        return "null", "This field may not be null."
    codes = {
        "greater_than_equal": "min_value",
        "greater_than": "min_value",
        "less_than_equal": "max_value",
        "less_than": "max_value",
        "string_too_short": "blank",
        "string_too_long": "max_length",
        "too_long": "max_length",
        "too_short": "min_length",
    }
    return codes.get(kind, "invalid"), str(error.get("msg", "Invalid value."))


def _attr(loc: tuple[Any, ...] | list[Any]) -> str | None:
    # The location's first element is where the value came from (body, query, path, header).
    parts = [str(part) for part in list(loc)[1:]]
    return ".".join(parts) or None


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 404:
        return error_response(404, INVALID_REQUEST, "not_found", "Not found.")
    if exc.status_code == 405:
        allowed = ", ".join(allowed_methods(request.app, request.scope))
        return error_response(
            405,
            INVALID_REQUEST,
            "method_not_allowed",
            f'Method "{request.method}" not allowed.',
            headers={"Allow": allowed},
        )
    error_type = SERVER_ERROR if exc.status_code >= 500 else INVALID_REQUEST
    return error_response(
        exc.status_code, error_type, "error", str(exc.detail), headers=exc.headers
    )


def allowed_methods(app: Any, scope: Scope) -> list[str]:
    """Every method some route answers on this path (Starlette only names the first route's)."""
    allowed = [
        method
        for method in _METHODS
        if any(
            route.matches({**scope, "method": method})[0] == Match.FULL
            for route in app.router.routes
        )
    ]
    if "GET" in allowed:
        allowed.insert(allowed.index("GET") + 1, "HEAD")
    return allowed


async def _database_unavailable(_request: Request, exc: Exception) -> JSONResponse:
    logger.warning("database unavailable: %r", exc)
    return error_response(
        503, SERVER_ERROR, "database_unavailable", "The database is unavailable; try again later."
    )


async def _redis_unavailable(_request: Request, exc: Exception) -> JSONResponse:
    logger.warning("redis unavailable: %r", exc)
    return error_response(
        503, SERVER_ERROR, "redis_unavailable", "Redis is unavailable; try again later."
    )


async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
    logger.error("unhandled error", exc_info=exc)
    # Starlette answers this one outside every middleware, so it brings its own headers.
    return error_response(
        500, SERVER_ERROR, "error", "A server error occurred.", headers=SECURITY_HEADERS
    )
