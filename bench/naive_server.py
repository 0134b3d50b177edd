"""Baseline servers for batches: what a user could write in an afternoon (issue 12).

`rows`: orjson, then a Python loop writing each duration into a per-series numpy ring.
`columnar`: orjson, then one numpy slice write per series object (`duration_ms` arrays).
Neither validates, normalises routes, keeps histograms, counters or timestamps: they are
the ceiling metricsd's batch paths are measured against, in the same run.
Run: python bench/naive_server.py PORT rows|columnar
"""

from __future__ import annotations

import sys

import numpy as np
import orjson
from aiohttp import web

CAPACITY = 2048


class Rings:
    """One float64 ring per (service, route, method), like metricsd's default window."""

    def __init__(self) -> None:
        self.rings: dict[tuple[str, str, str], np.ndarray] = {}
        self.pos: dict[tuple[str, str, str], int] = {}

    def ring(self, key: tuple[str, str, str]) -> np.ndarray:
        ring = self.rings.get(key)
        if ring is None:
            ring = self.rings[key] = np.empty(CAPACITY)
            self.pos[key] = 0
        return ring


def rows_handler(rings: Rings):  # type: ignore[no-untyped-def]
    async def handle(request: web.Request) -> web.Response:
        items = orjson.loads(await request.read())
        if type(items) is not list:
            items = [items]
        pos = rings.pos
        for item in items:
            key = (item["service"], item["route"], item["method"])
            ring = rings.ring(key)
            p = pos[key]
            ring[p] = item["duration_ms"] / 1000.0
            pos[key] = (p + 1) % CAPACITY
        return web.json_response({"accepted": len(items), "rejected": 0, "errors": []},
                                 status=202, dumps=lambda o: orjson.dumps(o).decode())

    return handle


def columnar_handler(rings: Rings):  # type: ignore[no-untyped-def]
    async def handle(request: web.Request) -> web.Response:
        series = orjson.loads(await request.read())
        if type(series) is not list:
            series = [series]
        accepted = 0
        for obj in series:
            key = (obj["service"], obj["route"], obj["method"])
            ring = rings.ring(key)
            values = np.asarray(obj["duration_ms"], dtype=np.float64)[-CAPACITY:] / 1000.0
            p = rings.pos[key]
            n = len(values)
            first = min(n, CAPACITY - p)
            ring[p : p + first] = values[:first]
            ring[: n - first] = values[first:]
            rings.pos[key] = (p + n) % CAPACITY
            accepted += n
        return web.json_response({"accepted": accepted, "rejected": 0, "errors": []},
                                 status=202, dumps=lambda o: orjson.dumps(o).decode())

    return handle


async def ok(request: web.Request) -> web.Response:
    return web.Response(text="ok")


def main() -> None:
    try:
        import uvloop  # same event loop as metricsd uses when the extra is installed
    except ImportError:
        uvloop = None
    rings = Rings()
    handler = columnar_handler(rings) if sys.argv[2] == "columnar" else rows_handler(rings)
    app = web.Application()
    app.router.add_post("/{tail:.*}", handler)
    app.router.add_get("/", ok)
    loop = uvloop.new_event_loop() if uvloop else None
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None,
                loop=loop)


if __name__ == "__main__":
    main()
