"""GET /metrics: Prometheus text exposition, or OpenMetrics or protobuf (with native
histograms) when the scraper asks for it."""

from __future__ import annotations

import asyncio
import time

from aiohttp import web

from metricsd.core import REGISTRY
from metricsd.export import protobuf
from metricsd.export.registry import render
from metricsd.export.text import OPENMETRICS_CONTENT_TYPE, TEXT_CONTENT_TYPE, wants_openmetrics
from metricsd.ingest import STORE

# The body goes out in pieces of about this size, with a yield to the event loop between
# them: joining or sending 40 MB at once would stall beacons for tens of milliseconds.
WRITE_CHUNK = 256 * 1024


async def metrics(request: web.Request) -> web.StreamResponse:
    """Prepare every source, render under the store's read lock, stream the text out."""
    store = request.app[STORE]
    registry = request.app[REGISTRY]
    await registry.prepare(time.time())  # sources catch up (the store sorts off the loop)
    accept = request.headers.get("Accept", "")
    if protobuf.wants_protobuf(accept):
        async with store.reading:
            families = await protobuf.collect(registry)
        # Encoding is pure Python over immutable families: off the loop, beacons keep flowing.
        body = await asyncio.to_thread(protobuf.encode, families)
        return web.Response(body=body, headers={"Content-Type": protobuf.PROTOBUF_CONTENT_TYPE})
    openmetrics = wants_openmetrics(accept)
    async with store.reading:
        pieces = await render(registry, openmetrics)
    response = web.StreamResponse(headers={
        "Content-Type": OPENMETRICS_CONTENT_TYPE if openmetrics else TEXT_CONTENT_TYPE})
    await response.prepare(request)
    batch: list[bytes] = []
    size = 0
    for piece in pieces:
        if len(piece) >= WRITE_CHUNK:  # a cached family block (megabytes): sent in slices
            if batch:
                await response.write(b"".join(batch))
                batch, size = [], 0
            view = memoryview(piece)
            for start in range(0, len(piece), WRITE_CHUNK):
                await response.write(view[start : start + WRITE_CHUNK])
                await asyncio.sleep(0)
            continue
        batch.append(piece)
        size += len(piece)
        if size >= WRITE_CHUNK:
            await response.write(b"".join(batch))
            await asyncio.sleep(0)
            batch, size = [], 0
    await response.write(b"".join(batch))
    await response.write_eof()
    return response


def setup(app: web.Application) -> None:
    app.router.add_get("/metrics", metrics)
