"""Serves the API with uvicorn: what `spikewatch api` runs."""

from __future__ import annotations

import uvicorn

from api.main import create_app

# A client (or proxy) reusing an idle connection at the moment the server closes it gets a failed
# request. Clients drop idle connections after a few seconds (httpx: 5) and proxies after about
# a minute (60 on the common load balancers), so the server keeps them open longer than either.
KEEP_ALIVE_TIMEOUT_SECONDS = 65


def run(host: str, port: int) -> None:
    # proxy_headers: behind a reverse proxy, pagination links must carry the public scheme/host.
    uvicorn.run(
        create_app(),
        host=host,
        port=port,
        proxy_headers=True,
        timeout_keep_alive=KEEP_ALIVE_TIMEOUT_SECONDS,
    )
