"""GET /metrics: Prometheus text exposition, or OpenMetrics when the scraper asks for it."""

from __future__ import annotations

import time

from aiohttp import web

from metricsd.export.text import (
    OPENMETRICS_CONTENT_TYPE,
    TEXT_CONTENT_TYPE,
    render,
    wants_openmetrics,
)
from metricsd.keys import REGISTRY, STORE


async def metrics(request: web.Request) -> web.Response:
    """Refresh stale window stats off the loop, then render the whole registry."""
    store = request.app[STORE]
    await store.refresh(time.time())
    openmetrics = wants_openmetrics(request.headers.get("Accept", ""))
    async with store.reading:
        body = await render(request.app[REGISTRY], openmetrics)
    response = web.Response(body=body)
    response.headers["Content-Type"] = (
        OPENMETRICS_CONTENT_TYPE if openmetrics else TEXT_CONTENT_TYPE
    )
    return response


def setup(app: web.Application) -> None:
    app.router.add_get("/metrics", metrics)
