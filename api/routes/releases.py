"""Releases: list, create, retrieve (by id or by ``hash_id``), update and delete.

``hash_id`` is unique per project and defaults to the release's own id; ``team_id`` is the
project and is never taken from the request. Releases do not affect the worker's configuration.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import Request, Response
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from api.deps import ReadableProject, Session, WritableProject
from api.errors import error_responses, invalid, not_found
from api.pagination import Page, PageRequest, page_request, paginate
from api.request_bodies import RequestModel
from api.routing import ApiRouter
from api.routes.identifiers import parse_id
from schemas.tables import Release

MAX_HASH_ID_LENGTH = 128

router = ApiRouter(
    prefix="/api/projects/{project_id}/error_tracking/releases",
    tags=["releases"],
    responses=error_responses(401, 403, 404, 503),
)

HashId = Annotated[str, Field(min_length=1, max_length=MAX_HASH_ID_LENGTH)]
Text = Annotated[str, Field(min_length=1)]


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
            metadata=release.metadata_,
            version=release.version,
            project=release.project,
        )


class ReleaseCreate(RequestModel):
    read_only_fields = frozenset({"id", "team_id", "created_at"})

    version: Text
    project: Text = Field(description="The name of what was released, e.g. a repository.")
    hash_id: HashId | None = Field(
        default=None, description="Unique in the project; defaults to the release's id."
    )
    metadata: dict[str, Any] | None = None


class ReleaseUpdate(RequestModel):
    read_only_fields = frozenset({"id", "team_id", "created_at"})

    version: Text | None = None
    project: Text | None = None
    hash_id: HashId | None = Field(default=None, description="null resets it to the release's id.")
    metadata: dict[str, Any] | None = None


@router.get("/", response_model=Page[ReleaseOut], responses=error_responses(400))
async def list_releases(
    project_id: ReadableProject,
    session: Session,
    request: Request,
    page: Annotated[PageRequest, page_request_dependency := None] = None,  # placeholder
) -> Page[ReleaseOut]:
    raise NotImplementedError
