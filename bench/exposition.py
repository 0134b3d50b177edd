"""GET /metrics cost at 1,000 and 10,000 series: our writer vs prometheus_client, same store.

Every series gets a full default window (2,048 samples), the worst case for the quantile
sort. Two scrapes are timed: "changed", after every series received a new sample (each
ring is re-sorted), and "unchanged" (cached stats, text only).
Run: .venv/bin/python bench/exposition.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

import numpy as np
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.exposition import generate_latest

from metricsd.app import create_app
from metricsd.config import load_config
from metricsd.core import REGISTRY
from metricsd.ingest import STORE


def fill(store, series: int, samples: int, now: float) -> None:
    rng = np.random.default_rng(series)
    family = store.families["api"]
    for i in range(series):
        slot = store.slot(family, ("bench", f"/route/{i}", "GET"))
        values = rng.lognormal(-3, 1, samples)
        family.record_many(np.full(samples, slot), values, np.full(samples, now),
                           np.ones(samples, dtype=np.uint8), np.zeros(samples, dtype=np.int64))


def touch(store, now: float) -> None:
    family = store.families["api"]
    slots = np.fromiter(family.slot_of.values(), dtype=np.int64)
    family.record_many(slots, np.full(len(slots), 0.05), np.full(len(slots), now),
                       np.ones(len(slots), dtype=np.uint8), np.zeros(len(slots), dtype=np.int64))


async def measure(series: int, repeat: int) -> dict[str, float]:
    env = {"METRICSD_INGEST__MAX_SERIES": str(series)}
    app = create_app(load_config(None, env=env))
    store = app[STORE]
    fill(store, series, store.pool.capacity, time.time())
    out: dict[str, float] = {"series": series}
    async with TestClient(TestServer(app)) as client:
        changed, unchanged, sizes = [], [], []
        for _ in range(repeat):
            touch(store, time.time())
            start = time.perf_counter()
            body = await (await client.get("/metrics")).read()
            changed.append(time.perf_counter() - start)
            start = time.perf_counter()
            await (await client.get("/metrics")).read()
            unchanged.append(time.perf_counter() - start)
            sizes.append(len(body))
        out["changed_ms"] = float(np.median(changed)) * 1000
        out["unchanged_ms"] = float(np.median(unchanged)) * 1000
        out["bytes"] = float(np.median(sizes))
        out["samples"] = float(body.count(b"\n") - body.count(b"#"))
    # Same store, same instant: prometheus_client's writer over the same collectors.
    library = []
    for _ in range(max(1, repeat // 2)):
        start = time.perf_counter()
        generate_latest(app[REGISTRY])
        library.append(time.perf_counter() - start)
    out["generate_latest_ms"] = float(np.median(library)) * 1000
    out["speedup_vs_generate_latest"] = out["generate_latest_ms"] / out["unchanged_ms"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    for series in (1000, 10000):
        print(json.dumps(asyncio.run(measure(series, args.repeat))), flush=True)


if __name__ == "__main__":
    main()
