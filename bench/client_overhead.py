"""Per-request cost of metricsd_client's middlewares: the same app with and without it.

Each framework's full request stack runs in-process (no sockets, so the few microseconds
are not lost in loopback noise): aiohttp's Application._handle on prebuilt requests, the
Starlette app called as ASGI, the Flask app called as WSGI. The sender is live and posts to
a real metricsd process pinned to core 0 (this process runs on core 1), so batching and
sending in the background are part of what is measured. Rounds alternate bare/instrumented.
Run: .venv/bin/python bench/client_overhead.py [--rounds 15] [--requests 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from common import metricsd
from flask import Flask
from metricsd_client import AsyncSender, MetricsdASGIMiddleware, MetricsdWSGIMiddleware
from metricsd_client.aiohttp_middleware import aiohttp_middleware
from metricsd_client.thread_sender import ThreadSender
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from werkzeug.test import EnvironBuilder

TOKEN = "bench-token"
CONFIG = f"ingest: {{tokens: [{TOKEN}], rate_limit: {{enabled: false}}}}\n"
GOAL_US = 50.0


class QueueOnlyAsync(AsyncSender):
    """Records but never sends: isolates what the request path itself pays."""

    running = True  # type: ignore[assignment]

    def start(self) -> None:
        return None


class QueueOnlyThread(ThreadSender):
    """Records but never starts its thread: the request-path share for WSGI."""

    def start(self) -> None:
        return None


def report(name: str, runs: dict[str, list[float]]) -> None:
    bare = statistics.median(runs["bare"])
    path = statistics.median(runs["path"])
    full = statistics.median(runs["full"])
    verdict = "ok" if full - bare < GOAL_US else "MISSED"
    print(f"{name:8s} bare {bare:7.2f} us/req | request path {path - bare:+6.2f} us "
          f"| with background sending {full - bare:+6.2f} us ({full / bare:5.3f}x) "
          f"| goal < {GOAL_US:g} us: {verdict}")


async def alternate(rounds: int, runners: dict[str, Callable[[], Awaitable[float]]],
                    queue_only: QueueOnlyAsync | QueueOnlyThread) -> dict[str, list[float]]:
    """Per-request microseconds of each round; the variants take turns every round."""
    out: dict[str, list[float]] = {name: [] for name in runners}
    for run in runners.values():  # warm-up
        await run()
    for _ in range(rounds):
        for name, run in runners.items():
            out[name].append(await run())
            queue_only._queue.clear()
    return out


async def bench_aiohttp(url: str, rounds: int, n: int) -> None:
    async def item(request: web.Request) -> web.Response:
        return web.json_response({"id": request.match_info["id"]})

    sender = AsyncSender(url, service="bench-aiohttp", token=TOKEN, max_queue=10**7)
    sender.start()
    idle = QueueOnlyAsync(url, service="bench-aiohttp", max_queue=10**7)
    apps = []
    for chosen in (None, idle, sender):
        app = web.Application(middlewares=[aiohttp_middleware(chosen)] if chosen else [])
        app.router.add_get("/items/{id}", item)
        app.freeze()
        apps.append(app)

    def runner(app: web.Application) -> Callable[[], Awaitable[float]]:
        # One mocked request per round: building them is slow, handling one again is not.
        request = make_mocked_request("GET", "/items/42", app=app)

        async def run() -> float:
            started = time.perf_counter()
            for _ in range(n):
                await app._handle(request)
                await asyncio.sleep(0)  # a server yields per request: the sender task runs
            return (time.perf_counter() - started) / n * 1e6

        return run

    runs = await alternate(rounds, {"bare": runner(apps[0]), "path": runner(apps[1]),
                                    "full": runner(apps[2])}, idle)
    await sender.close()
    assert sender.stats().dropped == 0 and sender.stats().sent > 0, sender.stats()
    report("aiohttp", runs)


async def bench_asgi(url: str, rounds: int, n: int) -> None:
    async def item(request: Request) -> JSONResponse:
        return JSONResponse({"id": request.path_params["id"]})

    sender = AsyncSender(url, service="bench-asgi", token=TOKEN, max_queue=10**7)
    sender.start()
    idle = QueueOnlyAsync(url, service="bench-asgi", max_queue=10**7)
    bare_app = Starlette(routes=[Route("/items/{id}", item)])
    path_app = MetricsdASGIMiddleware(Starlette(routes=[Route("/items/{id}", item)]), sender=idle)
    full_app = MetricsdASGIMiddleware(Starlette(routes=[Route("/items/{id}", item)]),
                                      sender=sender)
    template = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
                "method": "GET", "scheme": "http", "path": "/items/42", "raw_path": b"/items/42",
                "query_string": b"", "root_path": "", "headers": [(b"host", b"bench")],
                "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80)}

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        return None

    def runner(app: Any) -> Callable[[], Awaitable[float]]:
        async def run() -> float:
            started = time.perf_counter()
            for _ in range(n):
                await app(dict(template), receive, send)
                await asyncio.sleep(0)  # a server yields per request: the sender task runs
            return (time.perf_counter() - started) / n * 1e6

        return run

    runs = await alternate(rounds, {"bare": runner(bare_app), "path": runner(path_app),
                                    "full": runner(full_app)}, idle)
    await sender.close()
    assert sender.stats().dropped == 0 and sender.stats().sent > 0, sender.stats()
    report("asgi", runs)


async def bench_wsgi(url: str, rounds: int, n: int) -> None:
    def make() -> Flask:
        app = Flask("bench")

        @app.get("/items/<int:item_id>")
        def item(item_id: int) -> dict[str, int]:
            return {"id": item_id}

        return app

    bare_app, path_app, full_app = make(), make(), make()
    sender = ThreadSender(url, service="bench-wsgi", token=TOKEN, max_queue=10**7)
    idle = QueueOnlyThread(url, service="bench-wsgi", max_queue=10**7)
    path_app.wsgi_app = MetricsdWSGIMiddleware(  # type: ignore[method-assign]
        path_app.wsgi_app, sender=idle)
    full_app.wsgi_app = MetricsdWSGIMiddleware(  # type: ignore[method-assign]
        full_app.wsgi_app, sender=sender)
    environ = EnvironBuilder(path="/items/42").get_environ()

    def start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
        return None

    def runner(app: Flask) -> Callable[[], Awaitable[float]]:
        async def run() -> float:
            started = time.perf_counter()
            for _ in range(n):
                body = app(dict(environ), start_response)
                for _chunk in body:
                    pass
                close = getattr(body, "close", None)
                if close is not None:
                    close()
            return (time.perf_counter() - started) / n * 1e6

        return run

    runs = await alternate(rounds, {"bare": runner(bare_app), "path": runner(path_app),
                                    "full": runner(full_app)}, idle)
    await asyncio.to_thread(sender.close)
    assert sender.stats().dropped == 0 and sender.stats().sent > 0, sender.stats()
    report("wsgi", runs)


async def bench_record(rounds: int, n: int) -> None:
    """The request-path share alone: one record() call."""
    sender = AsyncSender("http://127.0.0.1:9", service="bench", max_queue=10**8)
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(n):
            sender.record("/items/{id}", "GET", 200, 0.001)
        times.append((time.perf_counter() - started) / n * 1e6)
        sender._queue.clear()
    print(f"record() alone: {statistics.median(times):.3f} us/call")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {1})  # metricsd is pinned to core 0
    with metricsd(CONFIG) as url:
        print(f"median of {args.rounds} rounds x {args.requests} requests, metricsd at {url}")
        await bench_record(args.rounds, args.requests * 10)
        await bench_aiohttp(url, args.rounds, args.requests)
        await bench_asgi(url, args.rounds, args.requests)
        await bench_wsgi(url, args.rounds, args.requests)


if __name__ == "__main__":
    asyncio.run(main())
