"""Spike detection config: the multiplier, threshold and snooze of the project's spike rule
(GET, ``update_config``). Created on first read with multiplier 10, threshold 500, snooze 10.
``detector``, beyond the seed, picks the rule: ``mean`` (the seed's, the default) or ``adaptive``.

Every committed update bumps the project's config version so the worker reloads the rule.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from api.config_versions import bump_config_version
from api.deps import ReadableProject, RedisClient, Session, WritableProject
from api.errors import error_responses
from api.project_rows import get_or_create
from api.request_bodies import PositiveInt32, RequestModel, omittable
from api.routing import ApiRouter
from schemas.tables import SpikeDetectionConfig, utcnow

SpikeDetector = Literal["mean", "adaptive"]  # schemas.tables.SPIKE_DETECTORS

router = ApiRouter(
    prefix="/api/projects/{project_id}/error_tracking/spike_detection_config",
    tags=["spike detection config"],
    responses=error_responses(401, 403, 404, 503),
)


class SpikeDetectionConfigOut(BaseModel):
    snooze_duration_minutes: int
    multiplier: int
    threshold: int
    detector: SpikeDetector

    @classmethod
    def of(cls, row: SpikeDetectionConfig) -> SpikeDetectionConfigOut:
        return cls(
            snooze_duration_minutes=row.snooze_duration_minutes,
            multiplier=row.multiplier,
            threshold=row.threshold,
            detector=row.detector,
        )


class SpikeDetectionConfigUpdate(RequestModel):
    """Fields left out keep their value."""

    snooze_duration_minutes: PositiveInt32 = omittable()
    multiplier: PositiveInt32 = omittable()
    threshold: PositiveInt32 = omittable()
    detector: SpikeDetector = omittable(
        "How spikes are decided: mean (the reference rule) or adaptive (DETECTION.md)."
    )


@router.get("/", response_model=SpikeDetectionConfigOut)
async def retrieve_spike_detection_config(
    project_id: ReadableProject, session: Session
) -> SpikeDetectionConfigOut:
    return SpikeDetectionConfigOut.of(
        await get_or_create(session, SpikeDetectionConfig, project_id)
    )


@router.patch(
    "/update_config/",
    response_model=SpikeDetectionConfigOut,
    responses=error_responses(400, 413, 415),
)
async def update_spike_detection_config(
    project_id: WritableProject,
    session: Session,
    redis: RedisClient,
    body: SpikeDetectionConfigUpdate,
) -> SpikeDetectionConfigOut:
    row = await get_or_create(session, SpikeDetectionConfig, project_id)
    for field, value in body.model_dump(exclude_unset=True).items():
        setattr(row, field, value)
    row.updated_at = utcnow()
    await session.commit()
    await bump_config_version(redis, project_id)
    return SpikeDetectionConfigOut.of(row)
