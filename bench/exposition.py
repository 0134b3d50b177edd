"""GET /metrics cost at 1,000 and 10,000 series: our writer vs prometheus_client, same store.

Every series gets a full default window (2,048 samples). Three scrapes are timed: "few",
after every series received 3 new samples (the sorted tops are merged), "turned over",
after every ring was rewritten completely (every top is rebuilt), and "unchanged" (cached
stats, text only). Issue 12's goals at 10,000 series: < 100 ms, < 400 ms, < 60 ms.
Each is reported as wall time and as CPU time of this process (`*_cpu_ms`: server and the
in-process client together, worker threads included), which a loaded machine distorts less.
Run: .venv/bin/python bench/exposition.py [--repeat 5] [--series 1000,10000]
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


def touch(store, now: float, per_series: int, rng: np.random.Generator) -> None:
    """`per_series` new samples for every series, written like a batch of beacons."""
    family = store.families["api"]
    slots = np.repeat(np.fromiter(family.slot_of.values(), dtype=np.int64), per_series)
    n = len(slots)
    family.record_many(slots, rng.lognormal(-3, 1, n), np.full(n, now),
                       np.ones(n, dtype=np.uint8), np.zeros(n, dtype=np.int64))


async def scrape(client) -> tuple[float, bytes]:
    start = time.perf_counter()
    body = await (await client.get("/metrics")).read()
    return time.perf_counter() - start, body


class Clocks:
    """Wall and process CPU time since creation, in ms."""

    def __init__(self) -> None:
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def lap(self) -> tuple[float, float]:
        return ((time.perf_counter() - self.wall) * 1000, (time.process_time() - self.cpu) * 1000)


async def measure(series: int, repeat: int) -> dict[str, float]:
    # Every slot to API timings (the default gives browser vitals 30 % of max_series).
    env = {"METRICSD_INGEST__MAX_SERIES": str(series + 1),
           "METRICSD_INGEST__BUDGETS__TIMINGS": str(series)}
    app = create_app(load_config(None, env=env))
    store = app[STORE]
    fill(store, series, store.pool.capacity, time.time())
    out: dict[str, float] = {"series": series}
    rng = np.random.default_rng(5)
    slots = np.fromiter(store.families["api"].slot_of.values(), dtype=np.int64)
    async with TestClient(TestServer(app)) as client:
        await scrape(client)  # first read builds every sorted top
        cols: dict[str, list[float]] = {k: [] for k in (
            "few_new_ms", "few_new_quantiles_ms", "turned_over_ms", "turned_over_quantiles_ms",
            "unchanged_ms", "full_sort_baseline_ms", "few_new_cpu_ms", "turned_over_cpu_ms",
            "unchanged_cpu_ms", "full_sort_baseline_cpu_ms")}
        sizes = []
        for _ in range(repeat):
            for per_series, name in ((3, "few_new"), (store.pool.capacity, "turned_over")):
                await asyncio.sleep(1.05)  # stats are reused within a tick
                touch(store, time.time(), per_series, rng)
                clocks = Clocks()
                await store.refresh(time.time())  # the quantiles alone
                cols[f"{name}_quantiles_ms"].append(clocks.lap()[0])
                _, body = await scrape(client)  # then the text (stats are fresh)
                wall, cpu = clocks.lap()
                cols[f"{name}_ms"].append(wall)
                cols[f"{name}_cpu_ms"].append(cpu)
                clocks = Clocks()
                await scrape(client)
                wall, cpu = clocks.lap()
                cols["unchanged_ms"].append(wall)
                cols["unchanged_cpu_ms"].append(cpu)
            sizes.append(len(body))
            # What the previous engine did for every changed ring: sort it (same run).
            clocks = Clocks()
            for i in range(0, len(slots), 512):
                np.sort(store.pool.values[slots[i : i + 512]], axis=1)
            wall, cpu = clocks.lap()
            cols["full_sort_baseline_ms"].append(wall)
            cols["full_sort_baseline_cpu_ms"].append(cpu)
        out.update({k: float(np.median(v)) for k, v in cols.items()})
        out["few_new_quantiles_vs_full_sort"] = (
            out["few_new_quantiles_ms"] / out["full_sort_baseline_ms"])
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
    parser.add_argument("--series", default="1000,10000")
    args = parser.parse_args()
    for series in (int(s) for s in args.series.split(",")):
        print(json.dumps(asyncio.run(measure(series, args.repeat))), flush=True)


if __name__ == "__main__":
    main()
