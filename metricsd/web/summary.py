"""GET /v1/summary: every beacon series with its window count, rate and exact quantiles.

The document is the overview's shared snapshot (computed at most once a second, see
metricsd/overview/snapshot.py), served as the bytes it was encoded to.
"""

from __future__ import annotations

from aiohttp import web

from metricsd.overview import VIEWS


async def get_summary(request: web.Request) -> web.Response:
    snap = await request.app[VIEWS].series.get()
    return web.Response(body=snap.value, content_type="application/json",
                        headers={"Cache-Control": "no-store"})


def setup(app: web.Application) -> None:
    app.router.add_get("/v1/summary", get_summary)
