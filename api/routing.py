"""The router every resource module uses: each path answers with and without its trailing slash.

Both spellings are real routes (no redirect, which would drop a POST body in many clients); only
the slashed one, the reference's spelling, appears in the OpenAPI document.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from api.request_bodies import BodyRoute


class ApiRouter(APIRouter):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(route_class=BodyRoute, **kwargs)

    def add_api_route(self, path: str, endpoint: Any, **kwargs: Any) -> None:
        bare = path.rstrip("/")
        include_in_schema = kwargs.pop("include_in_schema", True)
        super().add_api_route(f"{bare}/", endpoint, include_in_schema=include_in_schema, **kwargs)
        # Every resource router has a prefix, so even "/" has a bare spelling (the prefix).
        super().add_api_route(bare, endpoint, include_in_schema=False, **kwargs)
