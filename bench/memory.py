"""Resident memory per series at the default window (2,048 samples), measured from RSS.

Run: .venv/bin/python bench/memory.py
"""

from __future__ import annotations

import json
import time

import numpy as np

from metricsd.config import load_config
from metricsd.ingest import store_families
from metricsd.store.series import Store


def rss_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def main() -> None:
    config = load_config(None, env={}).ingest
    store = Store(max_series=config.max_series, window_samples=config.window.samples,
                  window_seconds=config.window.seconds, idle_timeout=3600,
                  families=store_families())
    family = store.families["api"]
    now = time.time()
    results = []
    # Load the compiled kernels first (numba's runtime is a fixed cost, not a per-series one).
    warm = store.slot(family, ("svc", "warm-up", "GET"))
    store.pool.push(warm, 1.0, now)
    store.window_stats(family, now)
    base = rss_bytes()
    filled = 0
    for target in (1000, 2000, 4000):
        while filled < target:
            slot = store.slot(family, ("svc", f"/route/{filled}", "GET"))
            n = store.pool.capacity
            family.record_many(np.full(n, slot), np.random.default_rng(filled).random(n),
                               np.full(n, now), np.ones(n, dtype=np.uint8),
                               np.zeros(n, dtype=np.int64))
            filled += 1
        store.window_stats(family, now)  # caches and label data included
        rss = rss_bytes()
        step = {"series": target, "rss_delta_mib": (rss - base) / 2**20,
                "bytes_per_series": (rss - base) / target}
        if results:  # the slope between two sizes: what one more series costs
            prev = results[-1]
            step["marginal_bytes_per_series"] = (
                (rss - base - prev["rss_delta_mib"] * 2**20) / (target - prev["series"]))
        results.append(step)
    print(json.dumps({"window_samples": store.pool.capacity, "max_series": store.pool.slots,
                      "preallocated_virtual_mib": (store.pool.values.nbytes
                                                   + store.pool.stamps.nbytes
                                                   + store.pool.tags.nbytes
                                                   + store.pool.top.nbytes) / 2**20,
                      "measured": results}, indent=1))


if __name__ == "__main__":
    main()
