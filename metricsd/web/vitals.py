"""GET /v1/vitals/attribution: what makes each page slow (targets, scripts, sub-parts)."""

from __future__ import annotations

import math
import time
from typing import Any

from aiohttp import web

from metricsd.ingest import BEACON_TYPES, STORE
from metricsd.ingest.vitals import ATTRIBUTION_FAMILY, VitalsBeacon
from metricsd.store.series import QUANTILES, Store
from metricsd.vitals import ASSESSMENT_QUANTILE

_P75 = QUANTILES.index(ASSESSMENT_QUANTILE)


def attribution(kind: VitalsBeacon, store: Store, now: float,
                page: str | None = None) -> dict[str, Any]:
    """Per page: ranked targets per vital, LCP resources, INP scripts, sub-part p75s."""
    parts: dict[str, dict[str, dict[str, Any]]] = {}
    family = store.families[ATTRIBUTION_FAMILY]
    stats = store.window_stats(family, now)
    for key, count, p75 in zip(stats.keys, stats.counts.tolist(),
                               stats.quantiles[:, _P75].tolist(), strict=True):
        if count and (page is None or key[0] == page):
            parts.setdefault(key[0], {})[key[1]] = {
                "p75_seconds": None if math.isnan(p75) else p75, "count": count}
    pages = []
    summaries = kind.state.attribution.pages
    for name in sorted(set(summaries) | set(parts)):
        if page is not None and name != page:
            continue
        entry = summaries.get(name)
        pages.append({
            "page": name,
            "targets": {vital: hh.top() for vital, hh in entry.targets.items()} if entry else {},
            "lcp_resources": entry.resources.top() if entry else [],
            "inp_scripts": entry.scripts.top() if entry else [],
            "inp_interaction_types": dict(entry.interactions) if entry else {},
            "parts": parts.get(name, {}),
        })
    return {"generated_at": now, "pages": pages}


async def get_attribution(request: web.Request) -> web.Response:
    store = request.app[STORE]
    kind = request.app[BEACON_TYPES]["vitals"]
    assert isinstance(kind, VitalsBeacon)
    now = time.time()
    await store.refresh(now)
    page = request.query.get("page") or None
    return web.json_response(attribution(kind, store, now, page))


def setup(app: web.Application) -> None:
    app.router.add_get("/v1/vitals/attribution", get_attribution)
