"""Read views vs ingestion: beacon p99 while a client loops on /v1/summary and /, at 10,000
series, against the p99 without that client, on the same server in the same run.

The views come from a snapshot computed at most once a second (metricsd/overview), so a
client looping on them costs the loop one computation a second plus sending bytes.
Server pinned to core 0; wrk and the looping client on core 1. Rounds alternate
without/with, and medians are reported. Goal: p99 ratio <= 2.
Run: .venv/bin/python bench/readviews.py [--seconds 8] [--rounds 3] [--rps 1000]
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
import urllib.request

from common import median, metricsd, post_lua, wrk

SERIES = 10_000
SAMPLES_PER_SERIES = 64
SINGLE = json.dumps({"service": "bench", "route": "/orders/123", "method": "GET",
                     "status": 200, "duration_ms": 12.5})
CONFIG = f"ingest: {{rate_limit: {{enabled: false}}, max_series: {SERIES + 10}}}\n"


def fill(url: str) -> None:
    """SERIES API series with SAMPLES_PER_SERIES samples each, in batches of 1,000."""
    durations = [5.0, 20.0, 80.0, 300.0]
    per_batch = 1000 // SAMPLES_PER_SERIES
    for start in range(0, SERIES, per_batch):
        body = json.dumps([
            {"service": "bench", "route": f"/s{start + i}", "method": "GET",
             "status": 500 if j % 50 == 0 else 200, "duration_ms": durations[j % 4] + i}
            for i in range(min(per_batch, SERIES - start)) for j in range(SAMPLES_PER_SERIES)])
        req = urllib.request.Request(f"{url}/v1/beacons/timings", data=body.encode(),
                                     headers={"Content-Type": "application/json"})
        urllib.request.urlopen(req, timeout=30).read()


def reader(url: str, stop: threading.Event, times: dict[str, list[float]]) -> None:
    """Loop on /v1/summary and / back to back, as fast as answers come."""
    while not stop.is_set():
        for path in ("/v1/summary", "/"):
            start = time.perf_counter()
            with urllib.request.urlopen(f"{url}{path}", timeout=60) as resp:
                resp.read()
            times[path].append(time.perf_counter() - start)


def measure(seconds: int, rounds: int, rps: float) -> dict[str, float]:
    connections = 16
    delay_ms = connections * 1000.0 / rps
    lua = post_lua("/v1/beacons/timings", SINGLE, delay_ms=delay_ms)
    out: dict[str, float] = {"series": SERIES, "target_rps": rps}
    p99 = {False: [], True: []}
    rates = {False: [], True: []}
    times: dict[str, list[float]] = {"/v1/summary": [], "/": []}
    with metricsd(CONFIG) as url:
        fill(url)
        for _ in range(rounds):
            for loop in (False, True):
                stop = threading.Event()
                thread = threading.Thread(target=reader, args=(url, stop, times))
                if loop:
                    thread.start()
                    time.sleep(1.0)  # the first computation is not part of the steady state
                r = wrk(url, lua, seconds, connections=connections, latency=True)
                stop.set()
                if loop:
                    thread.join()
                p99[loop].append(r.get("p99_ms", float("nan")))
                rates[loop].append(r["rps"])
        with urllib.request.urlopen(f"{url}/v1/summary", timeout=60) as resp:
            doc = json.load(resp)
    out["series_in_summary"] = len(doc["api"])
    out["no_reader_p99_ms"] = median(p99[False])
    out["with_reader_p99_ms"] = median(p99[True])
    out["no_reader_rps"] = median(rates[False])
    out["with_reader_rps"] = median(rates[True])
    out["p99_ratio"] = out["with_reader_p99_ms"] / out["no_reader_p99_ms"]
    for path, values in times.items():
        out[f"reader_{path.strip('/').replace('/', '_') or 'page'}_median_ms"] = \
            median(values) * 1000
        out[f"reader_{path.strip('/').replace('/', '_') or 'page'}_requests"] = len(values)
    out["rounds_p99_ms"] = {"without": p99[False], "with": p99[True]}  # type: ignore[assignment]
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rps", type=float, default=1000.0)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        try:  # the looping client shares wrk's core, never the server's
            os.sched_setaffinity(0, {1})
        except OSError:
            pass
    print(json.dumps({"readviews": measure(args.seconds, args.rounds, args.rps)}, indent=1))


if __name__ == "__main__":
    main()
