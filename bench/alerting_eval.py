"""Cost of one alert evaluation tick with the shipped alerts.yml, against reading the samples.

Baseline: Samples.current() for the names the rules use (what any in-process reader pays).
Measured: AlertingService.evaluate_once() = store refresh + the same read + every rule.
Run: .venv/bin/python bench/alerting_eval.py [routes]
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from metricsd.alerting.rules.load import load_rule_file
from metricsd.alerting.service import AlertingService
from metricsd.config import AlertingConfig
from metricsd.export.beacons import StoreSource
from metricsd.export.read import Samples
from metricsd.export.registry import Registry
from metricsd.ingest import export_views, store_families
from metricsd.ingest.selfmetrics import IngestSource, SelfMetrics
from metricsd.store.series import Store

ROOT = Path(__file__).resolve().parents[1]


def build(routes: int) -> tuple[Store, Registry]:
    store = Store(max_series=routes + 100, window_samples=256, window_seconds=300,
                  idle_timeout=3600, families=store_families())
    now = time.time()
    rng = np.random.default_rng(1)
    for r in range(routes):
        key = ("shop", f"/route/{r}", "GET")
        for value in rng.lognormal(-3, 1, 256):
            store.observe("api", key, float(value), now, 1 if rng.random() < 0.98 else 4)
    registry = Registry()
    registry.add_source(StoreSource(store, export_views(store)))
    registry.add_source(IngestSource(store, SelfMetrics()))
    return store, registry


async def main(routes: int) -> None:
    store, registry = build(routes)
    groups = load_rule_file(ROOT / "alerts.yml")
    service = AlertingService(AlertingConfig(), groups, registry=registry,
                              session=lambda: None)  # type: ignore[arg-type,return-value]
    names = service.engine.names
    reader = Samples(registry)
    read, tick = [], []
    for _ in range(15):
        now = time.time()
        await store.refresh(now)
        t0 = time.perf_counter()
        reader.current(names)
        read.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        await service.evaluate_once()
        tick.append(time.perf_counter() - t0)
    r, t = statistics.median(read), statistics.median(tick)
    print(f"routes={routes} rules={service.rule_count} alerts={len(service.alerts())}")
    print(f"median read Samples.current: {r * 1e3:.2f} ms")
    print(f"median evaluate_once:        {t * 1e3:.2f} ms  (ratio to read {t / r:.2f}x)")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 1000))
