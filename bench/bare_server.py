"""Baseline server: the cheapest aiohttp beacon endpoint (read the body, answer 204)."""

from __future__ import annotations

import sys

from aiohttp import web


async def sink(request: web.Request) -> web.Response:
    await request.read()
    return web.Response(status=204)


async def ok(request: web.Request) -> web.Response:
    return web.Response(text="ok")


def main() -> None:
    try:
        import uvloop  # same event loop as metricsd uses when the extra is installed
    except ImportError:
        uvloop = None
    app = web.Application()
    app.router.add_post("/{tail:.*}", sink)
    app.router.add_get("/", ok)
    loop = uvloop.new_event_loop() if uvloop else None
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None,
                loop=loop)


if __name__ == "__main__":
    main()
