"""Request-scoped dependencies: the database session, Redis, the caller's API key and the project.

Routes get their project id only through ``ReadableProject``/``WritableProject``, so no route can
skip the key, scope or project checks. Nothing here reads or writes a resource's own rows.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from api.auth import READ_SCOPE, WRITE_SCOPE, has_scope, hash_key, key_matches, may_access_project
from api.errors import AUTHENTICATION_ERROR, ApiError, not_found
from api.request_bodies import INT32_MAX
from schemas.redis_client import RedisClient as AnyRedis
from schemas.tables import PersonalApiKey, Project, utcnow

# Recording every use would turn each read into a write; an hour is precise enough to spot
# keys nobody uses any more.
LAST_USED_PRECISION = timedelta(hours=1)

_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="PersonalApiKey",
    description="A personal API key: `Authorization: Bearer swk_...`.",
)
_CHALLENGE = {"WWW-Authenticate": "Bearer"}


async def db_session(request: Request) -> AsyncIterator[AsyncSession]:
    async with request.app.state.sessionmaker() as session:
        yield session


def redis_client(request: Request) -> AnyRedis:
    return request.app.state.redis


Session = Annotated[AsyncSession, Depends(db_session)]
RedisClient = Annotated[AnyRedis, Depends(redis_client)]


async def api_key(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    session: Session,
) -> PersonalApiKey:
    if credentials is None:
        raise ApiError(
            401,
            AUTHENTICATION_ERROR,
            "not_authenticated",
            "Authentication credentials were not provided.",
            headers=_CHALLENGE,
        )
    plaintext = credentials.credentials
    key = await session.scalar(
        select(PersonalApiKey).where(PersonalApiKey.secure_value == hash_key(plaintext))
    )
    if key is None or key.revoked_at is not None or not key_matches(plaintext, key.secure_value):
        raise ApiError(
            401,
            AUTHENTICATION_ERROR,
            "authentication_failed",
            "Personal API key found in request Authorization header is invalid.",
            headers=_CHALLENGE,
        )
    now = utcnow()
    if key.last_used_at is None or now - key.last_used_at > LAST_USED_PRECISION:
        key.last_used_at = now
        await session.commit()
    return key


def _project_access(scope: str) -> Callable[..., Awaitable[int]]:
    async def project_for_key(
        project_id: int,
        key: Annotated[PersonalApiKey, Depends(api_key)],
        session: Session,
    ) -> int:
        if not has_scope(key.scopes, scope):
            raise ApiError(
                403,
                AUTHENTICATION_ERROR,
                "permission_denied",
                f"API key missing required scope '{scope}'",
            )
        if (
            not 1 <= project_id <= INT32_MAX
            or not may_access_project(key.project_ids, project_id)
            or await session.get(Project, project_id) is None
        ):
            raise not_found()
        return project_id

    return project_for_key


ReadableProject = Annotated[int, Depends(_project_access(READ_SCOPE))]
WritableProject = Annotated[int, Depends(_project_access(WRITE_SCOPE))]
