"""The router every resource module uses: each path answers with and without its trailing slash,
and an object id in a path (``{release_id:object_id}``) only matches a UUID.

Both spellings are real routes (no redirect, which would drop a POST body in many clients); only
the slashed one, the reference's spelling, appears in the OpenAPI document.
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter
from starlette.convertors import Convertor, register_url_convertor

from api.request_bodies import BodyRoute

UUID_PATTERN = "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"


class ObjectIdConvertor(Convertor[uuid.UUID]):
    """Ids are UUIDs, so ``stack_frames/batch_get/`` can never be read as the frame "batch_get":
    a GET there is a 405 of the batch route, as in the reference, not a 404 of a frame."""

    regex = UUID_PATTERN

    def convert(self, value: str) -> uuid.UUID:
        return uuid.UUID(value)

    def to_string(self, value: uuid.UUID) -> str:
        return str(value)


register_url_convertor("object_id", ObjectIdConvertor())


class ApiRouter(APIRouter):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(route_class=BodyRoute, **kwargs)

    def add_api_route(self, path: str, endpoint: Any, **kwargs: Any) -> None:
        bare = path.rstrip("/")
        include_in_schema = kwargs.pop("include_in_schema", True)
        super().add_api_route(f"{bare}/", endpoint, include_in_schema=include_in_schema, **kwargs)
        # Every resource router has a prefix, so even "/" has a bare spelling (the prefix).
        super().add_api_route(bare, endpoint, include_in_schema=False, **kwargs)
