"""Beacon ingestion over loopback: throughput vs a bare aiohttp handler, batches, p99 latency.

Server pinned to core 0, wrk to core 1; every comparison is measured in the same run.
Run: .venv/bin/python bench/ingest.py [--seconds 8] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import threading
import time
import urllib.request

from common import bare_server, median, metric_value, metricsd, naive_server, post_lua, wrk

SINGLE = json.dumps({"service": "bench", "route": "/orders/123", "method": "GET",
                     "status": 200, "duration_ms": 12.5})
CONFIG = "ingest: {rate_limit: {enabled: false}}\n"


def batch(n: int, routes: int = 50, seed: int = 1) -> str:
    rng = random.Random(seed)
    return json.dumps([{"service": "bench", "route": f"/r{rng.randrange(routes)}/{i}",
                        "method": "GET", "status": 200 if rng.random() > 0.02 else 503,
                        "duration_ms": round(rng.lognormvariate(3, 1), 3)} for i in range(n)])


def single_ratio(seconds: int, rounds: int) -> dict[str, float]:
    bare, ours = [], []
    for _ in range(rounds):  # alternate, so drift on a shared machine hits both
        with bare_server() as url:
            bare.append(wrk(url, post_lua("/v1/beacons/timings", SINGLE), seconds)["rps"])
        with metricsd(CONFIG) as url:
            ours.append(wrk(url, post_lua("/v1/beacons/timings", SINGLE), seconds)["rps"])
    return {"bare_rps": median(bare), "metricsd_rps": median(ours),
            "ratio": median(ours) / median(bare)}


def columnar(series: int, per_series: int, seed: int = 2) -> str:
    """The columnar shape: one object per series with `per_series` durations and statuses."""
    rng = random.Random(seed)
    return json.dumps([{"service": "bench", "route": f"/c{k}", "method": "GET",
                        "status": [200 if rng.random() > 0.02 else 503
                                   for _ in range(per_series)],
                        "duration_ms": [round(rng.lognormvariate(3, 1), 3)
                                        for _ in range(per_series)]}
                       for k in range(series)])


def _run(url: str, body: str, samples: int, seconds: int) -> tuple[float, float]:
    """(samples/s, samples lost) of one wrk run against `url`."""
    r = wrk(url, post_lua("/v1/beacons/timings", body), seconds, connections=16)
    return r["rps"] * samples, r["requests"] - r["non2xx"]


def _lost(url: str, answered: float, samples: int) -> float:
    """Samples wrk saw accepted that metricsd did not count (or counted as rejected)."""
    accepted = metric_value(url, "metricsd_ingest_accepted_total")
    rejected = metric_value(url, "metricsd_ingest_rejected_total")
    # wrk counts answered requests; the server may have finished a few more.
    return max(0.0, answered * samples - accepted) + rejected


def batches(seconds: int, rounds: int) -> dict[str, dict[str, float]]:
    """Row batches against the naive row server, columnar ones against the naive columnar
    server: alternating rounds, medians, ratios."""
    cases = [("batch_100", batch(100), 100, "rows"), ("batch_1000", batch(1000), 1000, "rows"),
             ("columnar_1x100", columnar(1, 100), 100, "columnar"),
             ("columnar_10x100", columnar(10, 100), 1000, "columnar")]
    out = {}
    for name, body, samples, mode in cases:
        ours, naive, lost = [], [], 0.0
        for _ in range(rounds):
            with naive_server(mode) as url:
                naive.append(_run(url, body, samples, seconds)[0])
            with metricsd(CONFIG) as url:
                rate, answered = _run(url, body, samples, seconds)
                ours.append(rate)
                lost += _lost(url, answered, samples)
        out[name] = {"samples_per_s": median(ours), "naive_samples_per_s": median(naive),
                     "ratio": median(ours) / median(naive), "lost_samples": lost}
    return out


def scraper(url: str, stop: threading.Event, times: list[float]) -> None:
    while not stop.is_set():
        start = time.perf_counter()
        with urllib.request.urlopen(f"{url}/metrics", timeout=30) as resp:
            resp.read()
        times.append(time.perf_counter() - start)
        stop.wait(max(0.0, 1.0 - (time.perf_counter() - start)))


def latency(seconds: int, max_rps: float, series: int = 1000) -> dict[str, float]:
    """p99 at 80% of the maximum single-beacon rate, without and with a scrape per second."""
    connections = 16
    target = 0.8 * max_rps
    delay_ms = connections * 1000.0 / target
    out: dict[str, float] = {"target_rps": target, "series": series}
    for scrape in (False, True):
        with metricsd(CONFIG) as url:
            # A realistic store: `series` API series with 256 samples each.
            for start in [s for s in range(0, series, 100) for _ in range(4)]:
                body = json.dumps([{"service": "bench", "route": f"/s{start + i}",
                                    "method": "GET", "status": 200, "duration_ms": d}
                                   for i in range(100) for d in (5.0, 20.0, 80.0, 300.0)] * 16)
                req = urllib.request.Request(f"{url}/v1/beacons/timings", data=body.encode(),
                                             headers={"Content-Type": "application/json"})
                urllib.request.urlopen(req, timeout=30).read()
            stop, times = threading.Event(), []
            thread = threading.Thread(target=scraper, args=(url, stop, times))
            if scrape:
                thread.start()
            r = wrk(url, post_lua("/v1/beacons/timings", SINGLE, delay_ms=delay_ms), seconds,
                    connections=connections, latency=True)
            stop.set()
            if scrape:
                thread.join()
                out["scrape_median_ms"] = median(times) * 1000
            key = "with_scrape" if scrape else "no_scrape"
            out[f"{key}_rps"] = r["rps"]
            out[f"{key}_p50_ms"] = r.get("p50_ms", float("nan"))
            out[f"{key}_p99_ms"] = r.get("p99_ms", float("nan"))
    out["p99_ratio"] = out["with_scrape_p99_ms"] / out["no_scrape_p99_ms"]
    return out


def history_cost(seconds: int, rounds: int) -> dict[str, float]:
    """The history's tap on the hot path: the same loads without and with history.path,
    alternating in one run (single beacons, batches of 1000 rows, columnar 10x100)."""
    out: dict[str, float] = {}
    loads = (("single", SINGLE, 32, 1), ("batch_1000", batch(1000), 16, 1000),
             ("columnar_10x100", columnar(10, 100), 16, 1000))
    with tempfile.TemporaryDirectory() as tmp:
        with_history = CONFIG + f"history: {{path: {tmp}/history.sqlite}}\n"
        for name, body, connections, size in loads:
            rates: dict[str, list[float]] = {"off": [], "on": []}
            for _ in range(rounds):
                for mode, config in (("off", CONFIG), ("on", with_history)):
                    with metricsd(config) as url:
                        r = wrk(url, post_lua("/v1/beacons/timings", body), seconds,
                                connections=connections)
                        rates[mode].append(r["rps"] * size)
            off, on = median(rates["off"]), median(rates["on"])
            out[f"{name}_samples_per_s_without"] = off
            out[f"{name}_samples_per_s_with"] = on
            out[f"{name}_ratio"] = on / off
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--history-only", action="store_true",
                        help="only the with/without history comparison")
    args = parser.parse_args()
    print(json.dumps({"history_tap": history_cost(args.seconds, args.rounds)}, indent=1),
          flush=True)
    if args.history_only:
        return
    single = single_ratio(args.seconds, args.rounds)
    print(json.dumps({"single": single}, indent=1), flush=True)
    print(json.dumps(batches(args.seconds, args.rounds), indent=1), flush=True)
    print(json.dumps({"latency": latency(args.seconds, single["metricsd_rps"])}, indent=1))


if __name__ == "__main__":
    main()
