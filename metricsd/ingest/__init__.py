"""Ingest: beacon kinds, the rate limiter and the series store they write into.

`setup(app)` builds them, exports the store and the ingest counters, and schedules the
expiry of idle series; web/beacons.py only routes requests to them.
"""

from __future__ import annotations

import logging
import time
from functools import partial

from aiohttp import web

from metricsd.config import Config, IngestConfig
from metricsd.core import (
    CONFIG,
    READINESS,
    REGISTRY,
    SCHEDULER,
    Apply,
    current_config,
    register_reloader,
)
from metricsd.export.beacons import StoreSource, View
from metricsd.ingest import cache, operations, timings, vitals  # noqa: F401  (one per kind)
from metricsd.ingest.assessment import AssessmentSource
from metricsd.ingest.base import BEACONS, BeaconType
from metricsd.ingest.ratelimit import TokenBuckets
from metricsd.ingest.selfmetrics import IngestSource, SelfMetrics
from metricsd.store.series import FamilySpec, Store, warm_up

log = logging.getLogger(__name__)

STORE = web.AppKey("store", Store)
SELF_METRICS = web.AppKey("self_metrics", SelfMetrics)
BEACON_TYPES = web.AppKey("beacon_types", dict[str, BeaconType])
RATE_LIMITER = web.AppKey("rate_limiter", TokenBuckets)
EXPIRE_JOB = "store:expire"


async def _expire(store: Store) -> None:
    expired = await store.expire_idle(time.time())
    if expired:
        log.info("expired %d idle series", expired)


def store_families(config: IngestConfig | None = None) -> list[FamilySpec]:
    """Every store family the registered beacon kinds write (default config: defaults)."""
    config = IngestConfig() if config is None else config
    return [spec for kind in BEACONS.values() for spec in kind.store_families(config)]


def export_views(store: Store) -> list[View]:
    """Every family /metrics shows of the beacon store, kind by kind."""
    return [view for kind in BEACONS.values() for view in kind.exports(store)]


def setup(app: web.Application) -> None:
    """Store, counters, beacon kinds and rate limiter; their families and readiness."""
    config = app[CONFIG].ingest
    warm_up(config.window.samples)  # compiled kernels: loaded now, not in the first request
    store = app[STORE] = Store(
        max_series=config.max_series,
        window_samples=config.window.samples,
        window_seconds=config.window.seconds,
        idle_timeout=config.series_idle_timeout,
        families=store_families(config),
        started_at=time.time(),
        budgets={kind: limit for kind, limit in config.series_budgets().items()
                 if kind in BEACONS and BEACONS[kind].store_families(config)},
    )
    counters = app[SELF_METRICS] = SelfMetrics()
    app[BEACON_TYPES] = {name: cls(config, store, counters) for name, cls in BEACONS.items()}
    app[RATE_LIMITER] = TokenBuckets(
        config.rate_limit.requests_per_second, config.rate_limit.burst,
        config.rate_limit.max_clients,
    )
    app[REGISTRY].add_source(StoreSource(store, export_views(store)))
    for beacon in app[BEACON_TYPES].values():
        for source in beacon.sources():
            app[REGISTRY].add_source(source)
    app[REGISTRY].add_source(IngestSource(store, counters))
    app[REGISTRY].add_source(AssessmentSource(
        store, lambda: current_config(app).ingest.vitals_min_page_views))
    app[READINESS]["ingest"] = lambda: {
        "ok": True, "series": store.series_count, "max_series": store.pool.slots,
        "budgets": {**{kind: {"series": store.in_budget[kind], "limit": limit}
                       for kind, limit in store.budgets.items()},
                    **{kind: {"series": beacon.own_series(), "limit": beacon.own_budget()}
                       for kind, beacon in app[BEACON_TYPES].items()
                       if beacon.own_budget() is not None}},
    }
    app[SCHEDULER].add_job(_expire, "interval", args=[store], seconds=60,
                           id=EXPIRE_JOB, max_instances=1, coalesce=True)
    register_reloader(app, "ingest", partial(_reload, app))


# The store's arrays and series budgets are sized at start-up: these keep their start-up
# values on reload (logged). CORS origins are read per request (web/beacons.py).
RESTART_ONLY = ("max_series", "window", "series_idle_timeout", "budgets")


async def _reload(app: web.Application, old: Config, new: Config) -> Apply | None:
    """Tokens, limits and beacon checks from the new config; the store and its data stay."""
    if new.ingest == old.ingest:
        return None
    store, counters = app[STORE], app[SELF_METRICS]
    kinds = {name: cls(new.ingest, store, counters) for name, cls in BEACONS.items()}
    kept = [key for key in RESTART_ONLY
            if getattr(new.ingest, key) != getattr(old.ingest, key)]
    if operations.operation_bounds(new.ingest) != operations.operation_bounds(old.ingest):
        kept.append("operations.*.buckets_ms")

    async def apply() -> None:
        for name, kind in kinds.items():
            kind.reloaded(app[BEACON_TYPES][name])
        app[BEACON_TYPES].update(kinds)
        limiter, limits = app[RATE_LIMITER], new.ingest.rate_limit
        limiter.rate, limiter.burst = limits.requests_per_second, float(limits.burst)
        limiter.max_keys = limits.max_clients
        if kept:
            log.warning("ingest.%s changed: kept at the start-up value until a restart",
                        ", ingest.".join(kept))

    return apply
