"""Limit/offset pagination of every list: ``{"count", "next", "previous", "results"}``.

``next`` and ``previous`` are absolute URLs built from the request's own URL (other query
parameters kept), or null, like the reference. It never decides what a page contains or its order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Depends, Query, Request
from pydantic import BaseModel
from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from api.request_bodies import INT32_MAX

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000

ItemT = TypeVar("ItemT")


class Page(BaseModel, Generic[ItemT]):
    count: int
    next: str | None
    previous: str | None
    results: list[ItemT]


@dataclass(frozen=True)
class PageRequest:
    limit: int
    offset: int


def page_request(
    limit: Annotated[
        int, Query(ge=1, description=f"Page size; at most {MAX_LIMIT} (larger values are capped).")
    ] = DEFAULT_LIMIT,
    offset: Annotated[int, Query(ge=0, le=INT32_MAX, description="Results to skip.")] = 0,
) -> PageRequest:
    # The reference caps an oversized limit instead of refusing it; scripts rely on that.
    return PageRequest(limit=min(limit, MAX_LIMIT), offset=offset)


async def paginate(
    session: AsyncSession,
    statement: Select[Any],
    page: PageRequest,
    request: Request,
    serialize: Callable[[Any], ItemT],
) -> Page[ItemT]:
    """One page of ``statement`` (already ordered), its total count and the neighbour links."""
    count = await session.scalar(
        select(func.count()).select_from(statement.order_by(None).subquery())
    )
    rows: Sequence[Any] = (
        await session.scalars(statement.limit(page.limit).offset(page.offset))
    ).all()
    total = count or 0
    return Page[ItemT](
        count=total,
        next=_next_url(request, page, total),
        previous=_previous_url(request, page),
        results=[serialize(row) for row in rows],
    )


def _next_url(request: Request, page: PageRequest, total: int) -> str | None:
    if page.offset + page.limit >= total:
        return None
    return str(request.url.include_query_params(limit=page.limit, offset=page.offset + page.limit))


def _previous_url(request: Request, page: PageRequest) -> str | None:
    if page.offset <= 0:
        return None
    offset = max(page.offset - page.limit, 0)
    url = request.url.include_query_params(limit=page.limit)
    # As in the reference, the first page's link carries no offset at all.
    return str(
        url.remove_query_params("offset")
        if offset == 0
        else url.include_query_params(offset=offset)
    )


Pagination = Annotated[PageRequest, Depends(page_request)]
