"""Memory soak: RSS of metricsd over minutes at 80% of its maximum batched rate, with a
/metrics scrape every second. Reports the RSS slope (least squares over the second half,
after the rings have filled) and checks that nothing was lost.

Run: .venv/bin/python bench/soak.py [--minutes 10] [--batch 100]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import threading
import time

from common import (
    PY,
    ROOT,
    SERVER_CPU,
    free_port,
    metric_value,
    pinned,
    post_lua,
    wait_http,
    wrk,
)
from ingest import CONFIG, batch, scraper


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, KiB): KiB per second."""
    n = len(points)
    mx = sum(p[0] for p in points) / n
    my = sum(p[1] for p in points) / n
    sxx = sum((p[0] - mx) ** 2 for p in points)
    return sum((p[0] - mx) * (p[1] - my) for p in points) / sxx if sxx else 0.0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--batch", type=int, default=100)
    args = parser.parse_args()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as f:
        f.write(CONFIG)
    proc = subprocess.Popen(
        pinned(SERVER_CPU, [PY, "-m", "metricsd", "--config", f.name, "--listen",
                            f"127.0.0.1:{port}"]),
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_http(f"{url}/healthz")
        body = batch(args.batch)
        top = wrk(url, post_lua("/v1/beacons/timings", body), 5, connections=16)
        target = 0.8 * top["rps"]
        connections = 16
        delay_ms = connections * 1000.0 / target
        stop, scrapes = threading.Event(), []
        scrape = threading.Thread(target=scraper, args=(url, stop, scrapes))
        samples: list[tuple[float, float]] = []

        def sample() -> None:
            start = time.monotonic()
            while not stop.wait(5.0):
                samples.append((time.monotonic() - start, rss_kib(proc.pid)))

        sampler = threading.Thread(target=sample)
        accepted_before = metric_value(url, "metricsd_ingest_accepted_total")
        scrape.start()
        sampler.start()
        seconds = int(args.minutes * 60)
        r = wrk(url, post_lua("/v1/beacons/timings", body, delay_ms=delay_ms), seconds,
                connections=connections)
        stop.set()
        scrape.join()
        sampler.join()
        accepted = metric_value(url, "metricsd_ingest_accepted_total") - accepted_before
        rejected = metric_value(url, "metricsd_ingest_rejected_total")
        half = [p for p in samples if p[0] >= seconds / 2]
        print(json.dumps({
            "minutes": args.minutes, "batch": args.batch,
            "max_batches_per_s": top["rps"], "target_batches_per_s": target,
            "achieved_samples_per_s": r["rps"] * args.batch,
            "scrapes": len(scrapes),
            "scrape_median_ms": sorted(scrapes)[len(scrapes) // 2] * 1000 if scrapes else None,
            "rss_first_mib": samples[0][1] / 1024 if samples else None,
            "rss_last_mib": samples[-1][1] / 1024 if samples else None,
            "rss_slope_kib_per_min_second_half": slope(half) * 60 if len(half) > 2 else None,
            "rss_slope_kib_per_min_all": slope(samples) * 60 if len(samples) > 2 else None,
            "lost_samples": max(0.0, (r["requests"] - r["non2xx"]) * args.batch - accepted)
            + rejected,
        }, indent=1))
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
        os.unlink(f.name)


if __name__ == "__main__":
    main()
