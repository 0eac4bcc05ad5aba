"""Suppression rules: list (by ``order_key``), create, retrieve, update, delete and reorder.

Filters are checked by the grammar the worker compiles (``schemas.property_filters``), so a rule
the API accepts is a rule the worker can run, regexes bounded in cost included.
Every committed write bumps the config version.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import Request, Response
from pydantic import BaseModel, BeforeValidator, Field, Strict
from sqlalchemy import case, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from api.config_versions import bump_config_version
from api.deps import ReadableProject, RedisClient, Session, WritableProject
from api.errors import error_responses, invalid, not_found
from api.pagination import Page, Pagination, paginate
from api.request_bodies import RequestModel, integral, omittable
from api.routing import ApiRouter
from schemas.property_filters import FilterValidationError, validate_filters
from schemas.tables import DEFAULT_SAMPLING_RATE, Project, SuppressionRule, utcnow

RULE_READ_ONLY_FIELDS = frozenset({"id", "order_key", "disabled_data", "created_at", "updated_at"})
# What a rule created without filters stores, as the reference does: the empty group, which
# matches every event.
MATCH_EVERY_EVENT: dict[str, Any] = {"type": "AND", "values": []}
# Far below the 32-bit column's limit, so that creating a rule (highest order_key + 1) after a
# reorder still fits; and a bound on one reorder's IN (...) list, as for batch_get.
MAX_ORDER_KEY = 1_000_000_000
MAX_REORDER_RULES = 1000

router = ApiRouter(
    prefix="/api/projects/{project_id}/error_tracking/suppression_rules",
    tags=["suppression rules"],
    responses=error_responses(401, 403, 404, 503),
)

SamplingRate = Annotated[float, Field(ge=0.0, le=1.0)]
OrderKey = Annotated[int, Field(ge=0, le=MAX_ORDER_KEY), BeforeValidator(integral)]
# Ids arrive as JSON object keys, which are always text.
RuleId = Annotated[uuid.UUID, Strict(False)]
_FILTERS_DESCRIPTION = (
    'A property-group filter, {"type": "AND"|"OR", "values": [...]}; an empty group, null or {} '
    "matches every event."
)
_SAMPLING_DESCRIPTION = "The fraction of matching events suppressed, from 0 to 1."


class SuppressionRuleOut(BaseModel):
    id: uuid.UUID
    filters: dict[str, Any] | None
    order_key: int
    disabled_data: dict[str, Any] | None
    sampling_rate: float
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, rule: SuppressionRule) -> SuppressionRuleOut:
        return cls(
            id=rule.id,
            filters=rule.filters,
            order_key=rule.order_key,
            disabled_data=rule.disabled_data,
            sampling_rate=rule.sampling_rate,
            created_at=rule.created_at,
            updated_at=rule.updated_at,
        )


class SuppressionRuleCreate(RequestModel):
    read_only_fields = RULE_READ_ONLY_FIELDS

    filters: dict[str, Any] | None = Field(
        default=MATCH_EVERY_EVENT, description=_FILTERS_DESCRIPTION
    )
    sampling_rate: SamplingRate = Field(
        default=DEFAULT_SAMPLING_RATE, description=_SAMPLING_DESCRIPTION
    )


class SuppressionRuleUpdate(RequestModel):
    """Any update, even an empty one, re-enables a rule the worker disabled."""

    read_only_fields = RULE_READ_ONLY_FIELDS

    filters: dict[str, Any] | None = Field(default=None, description=_FILTERS_DESCRIPTION)
    sampling_rate: SamplingRate = omittable(_SAMPLING_DESCRIPTION)


class SuppressionRuleReorder(RequestModel):
    orders: dict[RuleId, OrderKey] = Field(
        default={},
        max_length=MAX_REORDER_RULES,
        description="The new order_key of each rule, by rule id; rules not named keep theirs.",
    )


@router.get("/", response_model=Page[SuppressionRuleOut], responses=error_responses(400))
async def list_suppression_rules(
    project_id: ReadableProject, session: Session, page: Pagination, request: Request
) -> Page[SuppressionRuleOut]:
    statement = (
        select(SuppressionRule)
        .where(SuppressionRule.project_id == project_id)
        .order_by(SuppressionRule.order_key, SuppressionRule.created_at, SuppressionRule.id)
    )
    return await paginate(session, statement, page, request, SuppressionRuleOut.of)


@router.post(
    "/",
    status_code=201,
    response_model=SuppressionRuleOut,
    responses=error_responses(400, 413, 415),
)
async def create_suppression_rule(
    project_id: WritableProject,
    session: Session,
    redis: RedisClient,
    body: SuppressionRuleCreate,
) -> SuppressionRuleOut:
    filters = _checked_filters(body.filters)
    # Lock the project row (PostgreSQL) so concurrent creates cannot take the same order_key.
    await session.execute(select(Project.id).where(Project.id == project_id).with_for_update())
    highest = await session.scalar(
        select(func.max(SuppressionRule.order_key)).where(SuppressionRule.project_id == project_id)
    )
    rule = SuppressionRule(
        project_id=project_id,
        filters=filters,
        sampling_rate=body.sampling_rate,
        order_key=0 if highest is None else highest + 1,
    )
    session.add(rule)
    await session.commit()
    await bump_config_version(redis, project_id)
    return SuppressionRuleOut.of(rule)


@router.patch(
    "/reorder/",
    status_code=204,
    response_class=Response,
    responses=error_responses(400, 413, 415),
)
async def reorder_suppression_rules(
    project_id: WritableProject,
    session: Session,
    redis: RedisClient,
    body: SuppressionRuleReorder,
) -> Response:
    """Set the order_key of each rule named: of all of them, or of none when any id is not a
    rule of the project."""
    if not body.orders:
        return Response(status_code=204)
    rule_ids = set(body.orders)
    # Locked (PostgreSQL) so that no rule is deleted between this check and the update.
    found = await session.scalars(
        select(SuppressionRule.id)
        .where(SuppressionRule.project_id == project_id, SuppressionRule.id.in_(rule_ids))
        .with_for_update()
    )
    unknown = rule_ids - set(found)
    if unknown:
        # One message for "does not exist" and "another project's", like not_found().
        listed = ", ".join(sorted(str(rule_id) for rule_id in unknown))
        raise invalid(f"No suppression rule of this project has the id {listed}.", "orders")
    await session.execute(
        update(SuppressionRule)
        .where(SuppressionRule.project_id == project_id, SuppressionRule.id.in_(rule_ids))
        # Not an edit of the rules: updated_at stays their last change, as in the reference.
        .values(
            order_key=case(body.orders, value=SuppressionRule.id),
            updated_at=SuppressionRule.updated_at,
        )
    )
    await session.commit()
    await bump_config_version(redis, project_id)
    return Response(status_code=204)


@router.get("/{rule_id:object_id}/", response_model=SuppressionRuleOut)
async def retrieve_suppression_rule(
    project_id: ReadableProject, session: Session, rule_id: uuid.UUID
) -> SuppressionRuleOut:
    return SuppressionRuleOut.of(await _rule(session, project_id, rule_id))


@router.patch(
    "/{rule_id:object_id}/",
    status_code=204,
    response_class=Response,
    responses=error_responses(400, 413, 415),
)
async def update_suppression_rule(
    project_id: WritableProject,
    session: Session,
    redis: RedisClient,
    rule_id: uuid.UUID,
    body: SuppressionRuleUpdate,
) -> Response:
    rule = await _rule(session, project_id, rule_id)
    changes = body.model_dump(exclude_unset=True)
    if "filters" in changes:
        rule.filters = _checked_filters(changes["filters"])
    if "sampling_rate" in changes:
        rule.sampling_rate = changes["sampling_rate"]
    rule.disabled_data = None
    rule.updated_at = utcnow()
    await session.commit()
    await bump_config_version(redis, project_id)
    return Response(status_code=204)


@router.delete("/{rule_id:object_id}/", status_code=204, response_class=Response)
async def delete_suppression_rule(
    project_id: WritableProject, session: Session, redis: RedisClient, rule_id: uuid.UUID
) -> Response:
    await session.delete(await _rule(session, project_id, rule_id))
    await session.commit()
    await bump_config_version(redis, project_id)
    return Response(status_code=204)


def _checked_filters(filters: dict[str, Any] | None) -> dict[str, Any] | None:
    try:
        checked = validate_filters(filters)
    except FilterValidationError as exc:
        # As in the reference, ``attr`` is the field; the detail names the exact part of it.
        raise invalid(str(exc), "filters") from exc
    return checked


async def _rule(session: AsyncSession, project_id: int, rule_id: uuid.UUID) -> SuppressionRule:
    rule = await session.scalar(
        select(SuppressionRule).where(
            SuppressionRule.project_id == project_id,
            SuppressionRule.id == rule_id,
        )
    )
    if rule is None:
        raise not_found()
    return rule
