"""GET /v1/summary: every beacon series with its window count, rate and exact quantiles."""

from __future__ import annotations

import math
import time
from typing import Any

from aiohttp import web

from metricsd.ingest import STORE
from metricsd.store.series import QUANTILES, STATUS_CLASSES, Store
from metricsd.vitals import RATINGS, VITALS

_Q_NAMES = [f"p{round(q * 100)}" for q in QUANTILES]


def _quantiles(row: list[float]) -> dict[str, float | None]:
    return {name: (None if math.isnan(v) else v) for name, v in zip(_Q_NAMES, row, strict=True)}


def summary(store: Store, now: float) -> dict[str, Any]:
    """The JSON document; values in seconds (CLS unitless), rates per second."""
    out: dict[str, Any] = {
        "generated_at": now,
        "window": {"samples": store.pool.capacity, "seconds": store.window_seconds},
        "series": store.series_count,
        "max_series": store.pool.slots,
        "api": [],
        "web_vitals": [],
    }
    for name, family in store.families.items():
        stats = store.window_stats(family, now)
        rates = stats.rates(now, store.window_seconds, store.pool.capacity,
                            store.started_at).tolist()
        rows = zip(stats.keys, stats.quantiles.tolist(), stats.counts.tolist(), rates,
                   stats.tag_counts.tolist(), strict=True)
        for key, quantiles, count, rate, tags in rows:
            item: dict[str, Any] = dict(zip(family.spec.labels, key, strict=True))
            item.update(count=count, rate=rate, quantiles=_quantiles(quantiles))
            if name == "api":
                item["status"] = dict(zip(STATUS_CLASSES, tags, strict=True))
                errors = item["status"]["5xx"]
                item["error_ratio"] = errors / count if count else None
                out["api"].append(item)
            else:
                spec = VITALS[name]
                item = {"metric": name, "unit": spec.unit or "unitless", **item,
                        "ratings": dict(zip(RATINGS, tags, strict=True))}
                out["web_vitals"].append(item)
    out["api"].sort(key=lambda i: -i["count"])
    out["web_vitals"].sort(key=lambda i: (i["metric"], -i["count"]))
    return out


async def get_summary(request: web.Request) -> web.Response:
    store = request.app[STORE]
    now = time.time()
    await store.refresh(now)
    return web.json_response(summary(store, now))


def setup(app: web.Application) -> None:
    app.router.add_get("/v1/summary", get_summary)
