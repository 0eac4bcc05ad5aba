"""Serves the API with uvicorn: what `spikewatch api` runs."""

from __future__ import annotations

import uvicorn

from api.main import create_app


def run(host: str, port: int) -> None:
    # proxy_headers: behind a reverse proxy, pagination links must carry the public scheme/host.
    uvicorn.run(create_app(), host=host, port=port, proxy_headers=True)
