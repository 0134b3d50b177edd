"""GET /v1/vitals/attribution: what makes each page slow (targets, scripts, sub-parts).

The document is the overview's shared snapshot (overview/attribution.py, at most one
second old); `?page=` picks one page out of it.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from metricsd.overview import VIEWS


async def get_attribution(request: web.Request) -> web.Response:
    snap = await request.app[VIEWS].attribution.get()
    doc: dict[str, Any] = snap.value
    page = request.query.get("page") or None
    if page is not None:
        doc = {**doc, "pages": [p for p in doc["pages"] if p["page"] == page]}
    return web.json_response(doc, headers={"Cache-Control": "no-store"})


def setup(app: web.Application) -> None:
    app.router.add_get("/v1/vitals/attribution", get_attribution)
