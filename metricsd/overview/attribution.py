"""The /v1/vitals/attribution document: what makes each page slow, for the shared snapshot.

Per page: the heavy-hitter targets per vital, the LCP resources and INP scripts, the
interaction types and the window p75 of each sub-part. Computed at most once a second
(overview/snapshot.py) like the page and /v1/summary, so a loop on the route cannot stall
ingestion; the route filters the snapshot by page.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

from metricsd.ingest.attribution import AttributionStore
from metricsd.ingest.vitals import ATTRIBUTION_FAMILY
from metricsd.store.series import QUANTILES, Store
from metricsd.vitals import ASSESSMENT_QUANTILE

_P75 = QUANTILES.index(ASSESSMENT_QUANTILE)
PAGES_PER_YIELD = 200  # pages of Python work between two yields to the event loop


async def attribution_document(store: Store, summaries: AttributionStore | None,
                               now: float) -> dict[str, Any]:
    """Per page: ranked targets per vital, LCP resources, INP scripts, sub-part p75s."""
    await store.refresh(now)
    parts: dict[str, dict[str, dict[str, Any]]] = {}
    family = store.families.get(ATTRIBUTION_FAMILY)
    if family is not None:
        stats = store.window_stats(family, now)
        for key, count, p75 in zip(stats.keys, stats.counts.tolist(),
                                   stats.quantiles[:, _P75].tolist(), strict=True):
            if count:
                parts.setdefault(key[0], {})[key[1]] = {
                    "p75_seconds": None if math.isnan(p75) else p75, "count": count}
    by_page = summaries.pages if summaries is not None else {}
    pages = []
    for i, name in enumerate(sorted(set(by_page) | set(parts))):
        if i % PAGES_PER_YIELD == PAGES_PER_YIELD - 1:
            await asyncio.sleep(0)  # thousands of pages: let beacons in between
        entry = by_page.get(name)  # may have left the page budget during a yield
        pages.append({
            "page": name,
            "targets": {vital: hh.top() for vital, hh in entry.targets.items()} if entry else {},
            "lcp_resources": entry.resources.top() if entry else [],
            "inp_scripts": entry.scripts.top() if entry else [],
            "inp_interaction_types": dict(entry.interactions) if entry else {},
            "parts": parts.get(name, {}),
        })
    return {"generated_at": now, "pages": pages}
