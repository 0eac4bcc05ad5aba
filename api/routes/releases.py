"""Releases: list, create, retrieve (by id or by ``hash_id``), update and delete.

``hash_id`` is unique per project and defaults to the release's own id; ``team_id`` is the
project and is never taken from the request. Releases do not affect the worker's configuration.
Credentials in ``metadata.git.remote_url`` are never stored nor shown.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import Request, Response
from pydantic import BaseModel, Field, model_validator
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from api.deps import ReadableProject, Session, WritableProject
from api.errors import error_responses, invalid, not_found
from api.pagination import Page, Pagination, paginate
from api.request_bodies import RequestModel, omittable
from api.routing import ApiRouter
from schemas.tables import Release

MAX_HASH_ID_LENGTH = 128
RELEASE_READ_ONLY_FIELDS = frozenset({"id", "team_id", "created_at"})

router = ApiRouter(
    prefix="/api/projects/{project_id}/error_tracking/releases",
    tags=["releases"],
    responses=error_responses(401, 403, 404, 503),
)

HashId = Annotated[str, Field(min_length=1, max_length=MAX_HASH_ID_LENGTH)]
Text = Annotated[str, Field(min_length=1)]
# The user information of a URL with a scheme (``https://user:token@host/...``): everything up to
# the last "@" of the authority, which ends at the first "/", "?" or "#".
_URL_CREDENTIALS = re.compile(r"^(\s*[A-Za-z][A-Za-z0-9+.-]*://)[^/?#]*@")


def without_credentials(metadata: dict[str, Any] | None) -> dict[str, Any] | None:
    """The metadata with any user name, password or token taken out of ``git.remote_url``.

    CI systems often hand out remote URLs with an access token in them; the reference strips it.
    """
    git = metadata.get("git") if metadata is not None else None
    if not isinstance(git, dict) or not isinstance(git.get("remote_url"), str):
        return metadata
    remote_url = _URL_CREDENTIALS.sub(r"\1", git["remote_url"], count=1)
    return {**metadata, "git": {**git, "remote_url": remote_url}}


class ReleaseOut(BaseModel):
    id: uuid.UUID
    hash_id: str
    team_id: int
    created_at: datetime
    metadata: dict[str, Any] | None
    version: str
    project: str

    @classmethod
    def of(cls, release: Release) -> ReleaseOut:
        return cls(
            id=release.id,
            hash_id=release.hash_id,
            team_id=release.team_id,
            created_at=release.created_at,
            # Also for rows stored before credentials were stripped on the way in.
            metadata=without_credentials(release.metadata_),
            version=release.version,
            project=release.project,
        )


class ReleaseCreate(RequestModel):
    read_only_fields = RELEASE_READ_ONLY_FIELDS

    version: Text
    project: Text = Field(description="What was released, e.g. the name of a repository.")
    hash_id: HashId | None = Field(
        default=None, description="Unique in the project; defaults to the release's id."
    )
    metadata: dict[str, Any] | None = None

    @model_validator(mode="before")
    @classmethod
    def _version_is_required(cls, data: Any) -> Any:
        # The reference's own words for a release without a version (missing, null or blank).
        if isinstance(data, dict) and data.get("version") in (None, ""):
            raise invalid("Version is required", "version", code="required")
        return data


class ReleaseUpdate(RequestModel):
    read_only_fields = RELEASE_READ_ONLY_FIELDS

    version: Text = omittable()
    project: Text = omittable()
    hash_id: HashId | None = Field(default=None, description="null resets it to the release's id.")
    metadata: dict[str, Any] | None = None


@router.get("/", response_model=Page[ReleaseOut], responses=error_responses(400))
async def list_releases(
    project_id: ReadableProject, session: Session, page: Pagination, request: Request
) -> Page[ReleaseOut]:
    statement = (
        select(Release)
        .where(Release.team_id == project_id)
        .order_by(Release.created_at.desc(), Release.id)
    )
    return await paginate(session, statement, page, request, ReleaseOut.of)


@router.post(
    "/", status_code=201, response_model=ReleaseOut, responses=error_responses(400, 413, 415)
)
async def create_release(
    project_id: WritableProject, session: Session, body: ReleaseCreate
) -> ReleaseOut:
    release_id = uuid.uuid4()
    hash_id = body.hash_id or str(release_id)
    await _require_free_hash_id(session, project_id, hash_id)
    release = Release(
        id=release_id,
        team_id=project_id,
        hash_id=hash_id,
        version=body.version,
        project=body.project,
        metadata_=without_credentials(body.metadata),
    )
    session.add(release)
    await _commit_or_hash_id_taken(session, hash_id)
    return ReleaseOut.of(release)


@router.get("/hash/{hash_id}/", response_model=ReleaseOut)
async def retrieve_release_by_hash(
    project_id: ReadableProject, session: Session, hash_id: str
) -> ReleaseOut:
    # A hash id no release can have is not looked up: PostgreSQL refuses NUL in a query.
    if len(hash_id) > MAX_HASH_ID_LENGTH or "\x00" in hash_id:
        raise not_found()
    release = await session.scalar(
        select(Release).where(Release.team_id == project_id, Release.hash_id == hash_id)
    )
    if release is None:
        raise not_found()
    return ReleaseOut.of(release)


@router.get("/{release_id:object_id}/", response_model=ReleaseOut)
async def retrieve_release(
    project_id: ReadableProject, session: Session, release_id: uuid.UUID
) -> ReleaseOut:
    return ReleaseOut.of(await _release(session, project_id, release_id))


@router.patch(
    "/{release_id:object_id}/",
    status_code=204,
    response_class=Response,
    responses=error_responses(400, 413, 415),
)
async def update_release(
    project_id: WritableProject, session: Session, release_id: uuid.UUID, body: ReleaseUpdate
) -> Response:
    release = await _release(session, project_id, release_id)
    changes = body.model_dump(exclude_unset=True)
    if "hash_id" in changes:
        hash_id = changes.pop("hash_id") or str(release.id)
        if hash_id != release.hash_id:
            await _require_free_hash_id(session, project_id, hash_id)
        release.hash_id = hash_id
    if "metadata" in changes:
        release.metadata_ = without_credentials(changes.pop("metadata"))
    for field, value in changes.items():
        setattr(release, field, value)
    await _commit_or_hash_id_taken(session, release.hash_id)
    return Response(status_code=204)


@router.delete("/{release_id:object_id}/", status_code=204, response_class=Response)
async def delete_release(
    project_id: WritableProject, session: Session, release_id: uuid.UUID
) -> Response:
    await session.delete(await _release(session, project_id, release_id))
    await session.commit()
    return Response(status_code=204)


async def _release(session: AsyncSession, project_id: int, release_id: uuid.UUID) -> Release:
    release = await session.scalar(
        select(Release).where(Release.team_id == project_id, Release.id == release_id)
    )
    if release is None:
        raise not_found()
    return release


async def _require_free_hash_id(session: AsyncSession, project_id: int, hash_id: str) -> None:
    taken = await session.scalar(
        select(Release.id).where(Release.team_id == project_id, Release.hash_id == hash_id)
    )
    if taken is not None:
        raise _hash_id_taken(hash_id)


async def _commit_or_hash_id_taken(session: AsyncSession, hash_id: str) -> None:
    # The check above reads before writing; a concurrent request can still win the race, and
    # then the unique constraint is the one that answers.
    try:
        await session.commit()
    except IntegrityError as exc:
        await session.rollback()
        raise _hash_id_taken(hash_id) from exc


def _hash_id_taken(hash_id: str) -> Exception:
    return invalid(
        f"The hash id '{hash_id}' is already in use by another release of this project.",
        "hash_id",
        code="unique",
    )
