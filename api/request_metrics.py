"""Prometheus counters of the API's own traffic: requests and their latency per route and status.

Labels use the route's path template, never the raw path, so ids cannot explode the series count.
"""

from __future__ import annotations

import time

from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUESTS = Counter(
    "spikewatch_api_requests_total",
    "HTTP requests answered by the API.",
    ("method", "route", "status"),
)
REQUEST_SECONDS = Histogram(
    "spikewatch_api_request_duration_seconds",
    "Time to answer an HTTP request.",
    ("method", "route"),
)


class RequestMetricsMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            REQUESTS.labels(scope["method"], route, str(status)).inc()
            REQUEST_SECONDS.labels(scope["method"], route).observe(time.perf_counter() - started)
