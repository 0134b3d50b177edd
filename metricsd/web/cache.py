"""GET /v1/cache: every reported cache with its hit ratio, size and top keys, as JSON."""

from __future__ import annotations

from aiohttp import web

from metricsd.ingest import BEACON_TYPES
from metricsd.ingest.cache import CacheBeacon


async def get_cache(request: web.Request) -> web.Response:
    """Caches busiest first; top keys come from the bounded summary, never from labels."""
    beacon = request.app[BEACON_TYPES].get("cache")
    if not isinstance(beacon, CacheBeacon):
        return web.json_response({"window_seconds": None, "caches": []})
    return web.json_response({"window_seconds": beacon.state.window_seconds,
                              "caches": beacon.state.view()})


def setup(app: web.Application) -> None:
    app.router.add_get("/v1/cache", get_cache)
