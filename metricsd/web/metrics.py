"""GET /metrics: Prometheus text exposition, or OpenMetrics when the scraper asks for it."""

from __future__ import annotations

import time

from aiohttp import web
from prometheus_client.exposition import choose_encoder

from metricsd.keys import REGISTRY, STORE


async def metrics(request: web.Request) -> web.Response:
    """Refresh stale window stats off the loop, then render the whole registry."""
    await request.app[STORE].refresh(time.time())
    encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
    body = encoder(request.app[REGISTRY])
    response = web.Response(body=body)
    response.headers["Content-Type"] = content_type
    return response


def setup(app: web.Application) -> None:
    app.router.add_get("/metrics", metrics)
