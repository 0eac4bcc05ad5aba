"""The interactive docs page (Swagger UI) at ``/api/schema/swagger-ui/``, with its own
Content-Security-Policy: the page's scripts and styles come from the CDN, its one inline script
is allowed by its hash, and it may fetch only the API's own document.

It renders FastAPI's page and never serves the OpenAPI document itself (``api.openapi`` does).
"""

from __future__ import annotations

import base64
import hashlib
import re

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse

DOCS_PATH = "/api/schema/swagger-ui/"
OPENAPI_PATH = "/api/schema/"

_CDN = "https://cdn.jsdelivr.net"
_FAVICON_HOST = "https://fastapi.tiangolo.com"
_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)

router = APIRouter(include_in_schema=False)


@router.get(DOCS_PATH)
async def swagger_ui(request: Request) -> HTMLResponse:
    root_path = request.scope.get("root_path", "")
    page = get_swagger_ui_html(
        openapi_url=root_path + OPENAPI_PATH, title=f"{request.app.title} - Swagger UI"
    )
    html = bytes(page.body).decode()
    page.headers["Content-Security-Policy"] = docs_content_security_policy(html)
    return page


def docs_content_security_policy(html: str) -> str:
    """The policy of the docs page: hashes of its inline scripts, no 'unsafe-inline' script."""
    script_hashes = " ".join(
        f"'sha256-{base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()}'"
        for script in _INLINE_SCRIPT.findall(html)
    )
    return "; ".join(
        (
            "default-src 'none'",
            f"script-src {_CDN} {script_hashes}",
            # Swagger UI sets style attributes from its scripts; styles cannot run code.
            f"style-src {_CDN} 'unsafe-inline'",
            f"img-src 'self' data: {_CDN} {_FAVICON_HOST}",
            "connect-src 'self'",
            "frame-ancestors 'none'",
            "base-uri 'none'",
            "form-action 'none'",
        )
    )
