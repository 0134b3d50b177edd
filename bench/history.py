"""History cost at 10,000 series: bytes per series per week, rollup cost per hour, and the
time to build a week's report, each beside a baseline measured in the same run.

Baselines: the store's own ingestion of the same samples (rollup cost is a ratio to it),
and reading the raw rows without merging (report build is a ratio to it).
Run: .venv/bin/python bench/history.py [--series 10000] [--per-hour 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from metricsd.config import HistoryConfig, ReportConfig
from metricsd.history.report import from_history
from metricsd.history.report.period import week_period
from metricsd.history.service import HistoryService
from metricsd.store.series import LATENCY_BUCKETS, STATUS_CLASSES, FamilySpec, Store

WEEK = week_period("2026-W48")


def make_store(series: int) -> Store:
    spec = FamilySpec("api", ("service", "route", "method"), LATENCY_BUCKETS, STATUS_CLASSES)
    try:
        return Store(max_series=series, window_samples=64, window_seconds=300,
                     idle_timeout=1e12, families=[spec])  # type: ignore[call-arg]
    except TypeError:  # a store that knows its families itself
        return Store(max_series=series, window_samples=64, window_seconds=300,
                     idle_timeout=1e12)


def hour_batch(series: int, per_hour: int, hour: int, rng: np.random.Generator,
               ) -> tuple[list[tuple[str, ...]], list[float], list[float], list[int], list[int]]:
    n = series * per_hour
    keys = [("bench", f"/r{i}", "GET") for i in range(series)] * per_hour
    values = rng.lognormal(np.log(0.05), 0.8, n).tolist()
    stamps = (WEEK.start + hour * 3600 + rng.uniform(0, 3599, n)).tolist()
    tags = np.where(rng.random(n) < 0.02, 4, 1).tolist()
    return keys, values, stamps, tags, [0] * n


async def build_week(path: Path, series: int, per_hour: int) -> dict[str, float]:
    rng = np.random.default_rng(1)
    store = make_store(series)
    service = HistoryService(HistoryConfig(path=str(path)), store, clock=lambda: WEEK.start)
    await service.open()
    ingest_s, rollup_s, write_s = [], [], []
    for hour in range(168):
        keys, values, stamps, tags, extras = hour_batch(series, per_hour, hour, rng)
        chunk = 1000
        started = time.perf_counter()
        store.tap = None  # the baseline: the store alone
        for i in range(0, len(keys), chunk):
            store.observe_columns("api", keys[i:i + chunk], values[i:i + chunk],
                                  stamps[i:i + chunk], tags[i:i + chunk], extras[i:i + chunk])
        ingest_s.append(time.perf_counter() - started)
        # The same samples again, now through the tap: what history adds is the drain and
        # the write (the tap call itself is one append per batch).
        store.tap = service.tap
        for i in range(0, len(keys), chunk):
            store.observe_columns("api", keys[i:i + chunk], values[i:i + chunk],
                                  stamps[i:i + chunk], tags[i:i + chunk], extras[i:i + chunk])
        started = time.perf_counter()
        service.tap.drain(service.rollups, service._keys_of)
        rollup_s.append(time.perf_counter() - started)
        started = time.perf_counter()
        await service.flush(now=WEEK.start + hour * 3600 + 3599)
        write_s.append(time.perf_counter() - started)
    await service.close()
    return {"ingest_s_per_hour": statistics.median(ingest_s),
            "drain_s_per_hour": statistics.median(rollup_s),
            "write_s_per_hour": statistics.median(write_s)}


def tap_overhead(rounds: int = 7) -> dict[str, float]:
    """The store's write path without and with the tap attached, alternating (medians)."""
    from metricsd.history.tap import Tap

    rng = np.random.default_rng(2)
    keys = [("bench", f"/r{i % 500}", "GET") for i in range(20_000)]
    values = rng.lognormal(-3, 1, len(keys)).tolist()
    stamps = [1e9] * len(keys)
    tags = [1] * len(keys)
    extras = [0] * len(keys)
    times: dict[str, list[float]] = {k: [] for k in ("single_off", "single_on", "batch_off",
                                                     "batch_on", "columnar_off", "columnar_on")}
    series = [("bench", f"/c{i}", "GET") for i in range(10)]  # 10 series x 100 per call
    col_values = np.asarray(values[:1000], dtype=np.float64)
    col_stamps = np.full(1000, 1e9)
    col_statuses = np.full(1000, 200, dtype=np.int64)
    for _ in range(rounds):
        for mode in ("off", "on"):
            store = make_store(1000)
            store.tap = Tap(100_000_000) if mode == "on" else None
            started = time.perf_counter()
            for k, v, st, t in zip(keys, values, stamps, tags, strict=True):
                store.observe("api", k, v, st, t)
            times[f"single_{mode}"].append((time.perf_counter() - started) / len(keys))
            started = time.perf_counter()
            for i in range(0, len(keys), 1000):
                store.observe_columns("api", keys[i:i + 1000], values[i:i + 1000],
                                      stamps[i:i + 1000], tags[i:i + 1000], extras[i:i + 1000])
            times[f"batch_{mode}"].append((time.perf_counter() - started) / len(keys))
            started = time.perf_counter()
            for _ in range(0, len(keys), 1000):
                store.observe_series("api", series, [100] * 10, col_values, col_stamps,
                                     col_statuses)
            times[f"columnar_{mode}"].append((time.perf_counter() - started) / len(keys))
    med = {k: statistics.median(v) * 1e9 for k, v in times.items()}
    return {"single_ns_per_sample_without": med["single_off"],
            "single_ns_per_sample_with": med["single_on"],
            "single_ratio": med["single_on"] / med["single_off"],
            "batch_ns_per_sample_without": med["batch_off"],
            "batch_ns_per_sample_with": med["batch_on"],
            "batch_ratio": med["batch_on"] / med["batch_off"],
            "columnar_ns_per_sample_without": med["columnar_off"],
            "columnar_ns_per_sample_with": med["columnar_on"],
            "columnar_ratio": med["columnar_on"] / med["columnar_off"]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tap-only", action="store_true")
    parser.add_argument("--series", type=int, default=10_000)
    parser.add_argument("--per-hour", type=int, default=20, help="samples per series and hour")
    args = parser.parse_args()
    print(json.dumps({"tap": tap_overhead()}, indent=1), flush=True)
    if args.tap_only:
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "history.sqlite"
        cost = asyncio.run(build_week(path, args.series, args.per_hour))
        conn = sqlite3.connect(path)
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.close()
        size = path.stat().st_size
        started = time.perf_counter()
        conn = sqlite3.connect(path)
        rows = sum(1 for _ in conn.execute("SELECT * FROM beacon_hours"))
        conn.close()
        raw_read_s = time.perf_counter() - started
        started = time.perf_counter()
        report = from_history(path, WEEK, ReportConfig(), WEEK.end + 60)
        report_s = time.perf_counter() - started
        assert len(report["routes"]) >= min(args.series, 50)
    out = {
        "series": args.series, "samples_per_series_hour": args.per_hour, "rows": rows,
        "file_bytes": size, "bytes_per_series_week": size / args.series,
        **cost,
        "rollup_over_ingest": (cost["drain_s_per_hour"] + cost["write_s_per_hour"])
        / cost["ingest_s_per_hour"],
        "report_build_s": report_s, "raw_row_read_s": raw_read_s,
        "report_over_raw_read": report_s / raw_read_s,
    }
    print(json.dumps({"history": out}, indent=1))


if __name__ == "__main__":
    main()
