"""The Core Web Vitals assessment per page and device, as CrUX judges a origin's pages.

For each (page, device) the window p75 of LCP, INP and CLS is compared with the good
thresholds (metricsd/vitals.py): `metricsd_web_vitals_cwv_pass` is 1 when all are good,
0 when not, and absent while the window holds fewer than `ingest.vitals_min_page_views`
page views (too few to judge).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Any

from metricsd.export.family import Family, Reader, RowList, Rows
from metricsd.store.series import QUANTILES, Store
from metricsd.vitals import ASSESSED, ASSESSMENT_QUANTILE, passes, rating

CWV_PASS = "metricsd_web_vitals_cwv_pass"
_P75 = QUANTILES.index(ASSESSMENT_QUANTILE)
FAMILIES: tuple[Family, ...] = (
    Family(CWV_PASS, "gauge",
           "1 when the window p75 of LCP, INP and CLS are all good, 0 when not; absent below "
           "ingest.vitals_min_page_views page views", ("page", "device")),
)


def assess(store: Store, now: float, min_views: int) -> list[dict[str, Any]]:
    """One entry per (page, device): page views, p75 and rating per vital, and `pass`.

    `pass` is None below `min_views` page views (the window's largest count of the three
    vitals: every view reports LCP and CLS, only views with an interaction report INP).
    """
    groups: dict[tuple[str, str], dict[str, Any]] = {}
    for name in ASSESSED:
        family = store.families.get(name)
        if family is None:
            continue
        stats = store.window_stats(family, now)
        p75s = stats.quantiles[:, _P75].tolist()
        for key, count, p75 in zip(stats.keys, stats.counts.tolist(), p75s, strict=True):
            if count == 0:
                continue
            entry = groups.setdefault((key[0], key[1]), {
                "page": key[0], "device": key[1], "views": 0, "vitals": {}})
            value = None if math.isnan(p75) else p75
            entry["vitals"][name] = {"p75": value, "rating": rating(name, value),
                                     "count": count}
            entry["views"] = max(entry["views"], count)
    out = []
    for entry in groups.values():
        p75 = {name: v["p75"] for name, v in entry["vitals"].items()}
        entry["pass"] = passes(p75) if entry["views"] >= min_views else None
        out.append(entry)
    out.sort(key=lambda e: (-e["views"], e["page"], e["device"]))
    return out


class AssessmentSource:
    """`metricsd_web_vitals_cwv_pass` from the store's window stats at scrape time."""

    def __init__(self, store: Store, min_views: Callable[[], int],
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.min_views = min_views
        self.clock = clock

    @property
    def families(self) -> Sequence[Family]:
        return FAMILIES

    async def prepare(self, now: float) -> None:
        """The store sorts stale rings off the loop (a no-op when the store source did)."""
        await self.store.refresh(now)

    def read(self) -> Reader:
        now = self.clock()

        def rows(family: Family) -> list[Rows]:
            block = RowList()
            for entry in assess(self.store, now, self.min_views()):
                if entry["pass"] is not None:
                    block.add({"page": entry["page"], "device": entry["device"]},
                              int(entry["pass"]))
            return [block] if len(block) else []

        return rows
