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
from metricsd.ingest import STORE

ACCEPT = ("application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;"
          "encoding=delimited;q=0.8,text/plain;version=0.0.4;q=0.3")


async def measure(series: int, repeat: int) -> dict[str, float]:
    app = create_app(load_config(None, env={"METRICSD_INGEST__MAX_SERIES": str(series)}))
    store = app[STORE]
    fill(store, series, store.pool.capacity, time.time())
    text, proto, on_loop, encode = [], [], [], []
    async with TestClient(TestServer(app)) as client:
        for _ in range(repeat):
            touch(store, time.time())
            start = time.perf_counter()
            await (await client.get("/metrics")).read()
            text.append(time.perf_counter() - start)
            touch(store, time.time())
            start = time.perf_counter()
            body = await (await client.get("/metrics", headers={"Accept": ACCEPT})).read()
            proto.append(time.perf_counter() - start)
            await store.refresh(time.time())
            start = time.perf_counter()
            families = protobuf.collect(app[REGISTRY])
            on_loop.append(time.perf_counter() - start)
            start = time.perf_counter()
            protobuf.encode(families)
            encode.append(time.perf_counter() - start)
    med = {k: float(np.median(v)) * 1000 for k, v in
           (("text_ms", text), ("protobuf_ms", proto), ("protobuf_on_loop_ms", on_loop),
            ("protobuf_encode_ms", encode))}
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
