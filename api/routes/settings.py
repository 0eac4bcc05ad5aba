"""Error tracking settings: the project's and each issue's rate limits (``retrieve_settings``,
``update_settings``). A null value removes that limit.

Every committed update bumps the project's config version so the worker reloads its limits.
"""

from __future__ import annotations

from pydantic import BaseModel

from api.config_versions import bump_config_version
from api.deps import ReadableProject, RedisClient, Session, WritableProject
from api.errors import error_responses
from api.project_rows import get_or_create
from api.request_bodies import PositiveInt32, RequestModel
from api.routing import ApiRouter
from schemas.tables import ErrorTrackingSettings, utcnow

router = ApiRouter(
    prefix="/api/projects/{project_id}/error_tracking/settings",
    tags=["settings"],
    responses=error_responses(401, 403, 404, 503),
)


class SettingsOut(BaseModel):
    project_rate_limit_value: int | None
    project_rate_limit_bucket_size_minutes: int | None
    per_issue_rate_limit_value: int | None
    per_issue_rate_limit_bucket_size_minutes: int | None

    @classmethod
    def of(cls, row: ErrorTrackingSettings) -> SettingsOut:
        return cls(
            project_rate_limit_value=row.project_rate_limit_value,
            project_rate_limit_bucket_size_minutes=row.project_rate_limit_bucket_size_minutes,
            per_issue_rate_limit_value=row.per_issue_rate_limit_value,
            per_issue_rate_limit_bucket_size_minutes=row.per_issue_rate_limit_bucket_size_minutes,
        )


class SettingsUpdate(RequestModel):
    """Fields left out keep their value; null removes a limit (or, for a bucket size, means
    the default of 60 minutes)."""

    project_rate_limit_value: PositiveInt32 | None = None
    project_rate_limit_bucket_size_minutes: PositiveInt32 | None = None
    per_issue_rate_limit_value: PositiveInt32 | None = None
    per_issue_rate_limit_bucket_size_minutes: PositiveInt32 | None = None


@router.get("/retrieve_settings/", response_model=SettingsOut)
async def retrieve_settings(project_id: ReadableProject, session: Session) -> SettingsOut:
    return SettingsOut.of(await get_or_create(session, ErrorTrackingSettings, project_id))


@router.patch(
    "/update_settings/", response_model=SettingsOut, responses=error_responses(400, 413, 415)
)
async def update_settings(
    project_id: WritableProject, session: Session, redis: RedisClient, body: SettingsUpdate
) -> SettingsOut:
    row = await get_or_create(session, ErrorTrackingSettings, project_id)
    for field, value in body.model_dump(exclude_unset=True).items():
        setattr(row, field, value)
    row.updated_at = utcnow()
    await session.commit()
    await bump_config_version(redis, project_id)
    return SettingsOut.of(row)
