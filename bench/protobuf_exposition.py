"""GET /metrics as protobuf (native histograms) vs as text, same store, same run.

1,000 API series with a full window each. Timed: a text scrape and a protobuf scrape
(what Prometheus sends with --enable-feature=native-histograms) after every series got a
new sample, and, of the protobuf one, the part that holds the event loop (collecting the
families) versus the encoding that runs in a worker thread. The text scrape is the
baseline (ratio = protobuf / text).
Run: .venv/bin/python bench/protobuf_exposition.py [--series 1000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

import numpy as np
from aiohttp.test_utils import TestClient, TestServer
from exposition import fill, touch  # bench/ is sys.path[0] when run as a script

from metricsd.app import create_app
from metricsd.config import load_config
from metricsd.core import REGISTRY
from metricsd.export import protobuf
from metricsd.export.beacons import StoreSource
from metricsd.ingest import STORE

ACCEPT = ("application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;"
          "encoding=delimited;q=0.8,text/plain;version=0.0.4;q=0.3")


class Ticker:
    """Measures the longest time the event loop did not run a 1 ms ticker (a stall)."""

    def __init__(self) -> None:
        self.longest = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        last = time.perf_counter()
        while True:
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            self.longest = max(self.longest, now - last)
            last = now

    async def __aenter__(self) -> Ticker:
        self._task = asyncio.create_task(self._run())
        await asyncio.sleep(0.002)
        self.longest = 0.0
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()


async def measure(series: int, repeat: int) -> dict[str, float]:
    app = create_app(load_config(None, env={"METRICSD_INGEST__MAX_SERIES": str(series)}))
    store = app[STORE]
    fill(store, series, store.pool.capacity, time.time())
    text, proto, on_loop, built, encode, text_stall, proto_stall = [], [], [], [], [], [], []
    source = next(s for s in app[REGISTRY].sources() if isinstance(s, StoreSource))
    async with TestClient(TestServer(app)) as client:
        for _ in range(repeat):
            touch(store, time.time())
            async with Ticker() as ticker:
                start = time.perf_counter()
                await (await client.get("/metrics")).read()
                text.append(time.perf_counter() - start)
            text_stall.append(ticker.longest)
            touch(store, time.time())
            async with Ticker() as ticker:
                start = time.perf_counter()
                body = await (await client.get("/metrics", headers={"Accept": ACCEPT})).read()
                proto.append(time.perf_counter() - start)
            proto_stall.append(ticker.longest)
            await store.refresh(time.time())
            start = time.perf_counter()
            build = source.native_snapshot()  # the only store work left on the loop
            on_loop.append(time.perf_counter() - start)
            start = time.perf_counter()
            families = build()
            built.append(time.perf_counter() - start)
            start = time.perf_counter()
            protobuf.encode(families)
            encode.append(time.perf_counter() - start)
    med = {k: float(np.median(v)) * 1000 for k, v in
           (("text_ms", text), ("protobuf_ms", proto), ("snapshot_on_loop_ms", on_loop),
            ("build_families_thread_ms", built), ("encode_thread_ms", encode),
            ("text_longest_stall_ms", text_stall),
            ("protobuf_longest_stall_ms", proto_stall))}
    return {"series": series, **med, "ratio": med["protobuf_ms"] / med["text_ms"],
            "protobuf_bytes": len(body)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--series", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(measure(args.series, args.repeat)), indent=1))


if __name__ == "__main__":
    main()
