"""Run the application until SIGTERM/SIGINT, letting in-flight requests finish first.

aiohttp's own shutdown marks every connection closing at once, and from then on it drops
request bytes still arriving, so a beacon whose body is in transit is lost. Here the
listening socket closes first, requests already started get most of `shutdown_timeout`
to complete, and only then does aiohttp's cleanup run (idle connections, cleanup
contexts). The whole stop, from the signal to the exit, fits in `shutdown_timeout`:
see `shutdown_budget`. Sockets go through a ConnectionGuard (header timeout, idle
timeout, connections per IP; connguard.py).

SIGHUP reloads the configuration (metricsd.core.reload), as Prometheus and Alertmanager do.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from metricsd import core
from metricsd.app import create_app
from metricsd.config import Config
from metricsd.connguard import ConnectionGuard, GuardedSite

log = logging.getLogger(__name__)

CANCEL_GRACE_S = 0.25  # aiohttp waits up to this (twice) for handlers it cancels


def _event_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:  # uvloop is an optional extra
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def requests_in_progress(runner: web.AppRunner) -> int:
    """Requests whose handler has started and not answered (aiohttp keeps no public count)."""
    server = runner.server
    if server is None:
        return 0
    return sum(
        1 for conn in server.connections if getattr(conn, "_request_in_progress", False)
    )


async def drain(runner: web.AppRunner, grace: float) -> int:
    """Wait until no request is in progress or `grace` seconds pass; return how many remain.

    Polled, because aiohttp signals nothing when a handler finishes.
    """
    deadline = time.monotonic() + grace
    while (left := requests_in_progress(runner)) and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    return left


def shutdown_budget(total: float) -> tuple[float, float, float]:
    """(drain, cancel, cleanup deadline) seconds out of `total`, counted from the signal.

    Requests get `drain`. aiohttp's shutdown then waits `cancel` for a handler to finish
    and `cancel` again after cancelling it; flushing the alert state and closing pools
    must be done by the deadline, which leaves a quarter of the reserve (up to 2 s, at
    most half of `total`) for the interpreter to exit, so the process is gone within
    `total`.
    """
    reserve = min(total / 2, 2.0)
    return max(0.0, total - reserve), min(CANCEL_GRACE_S, reserve / 4), total - reserve / 4


# ---- SIGHUP: reload (kept apart from the serving code above and below) -------------------


def install_reload_signal(loop: asyncio.AbstractEventLoop,
                          app: web.Application) -> Callable[[], None]:
    """SIGHUP reloads the configuration; returns the function that uninstalls it."""
    tasks: set[asyncio.Task[Any]] = set()

    def on_hup() -> None:
        log.info("SIGHUP: reloading the configuration")
        task = loop.create_task(core.reload(app))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    loop.add_signal_handler(signal.SIGHUP, on_hup)

    def uninstall() -> None:
        loop.remove_signal_handler(signal.SIGHUP)

    return uninstall


# ---- serving and SIGTERM ----------------------------------------------------------------


async def run(config: Config, path: str | Path | None = None,
              overrides: dict[str, Any] | None = None) -> None:
    """Serve until a signal; then stop listening, drain, and clean up, all within budget.

    `path` is re-read on reload; `overrides` (command-line values) win over it each time.
    """
    app = create_app(config, path)
    app[core.RUNTIME].overrides.update(overrides or {})
    _, cancel, _ = shutdown_budget(config.shutdown_timeout)
    limits = config.server  # connection limits are read once: a reload keeps the sockets
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=cancel,
                           handle_signals=False, keepalive_timeout=limits.keepalive_timeout)
    await runner.setup()
    guard = ConnectionGuard(limits.header_timeout, limits.keepalive_timeout,
                            limits.max_connections_per_ip,
                            config.ingest.rate_limit.trusted_proxies)
    sweeper = asyncio.create_task(guard.run())
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    uninstall_reload = install_reload_signal(loop, app)
    deadline = None
    try:
        site = GuardedSite(runner, config.host, config.port, guard)
        await site.start()
        # Everything imported and built so far lives as long as the process: keep it out of
        # the collector's full passes, which otherwise trace some 70,000 objects (100+ ms
        # with the loop stopped) whenever enough short-lived objects were promoted.
        gc.freeze()
        log.info("metricsd listening on http://%s:%d", config.host, config.port)
        await stop.wait()
        total = core.current_config(app).shutdown_timeout  # reloadable
        grace, _, cleanup_by = shutdown_budget(total)
        deadline = time.monotonic() + cleanup_by
        log.info("stopping: finishing requests in progress (up to %gs)", grace)
        await site.stop()
        left = await drain(runner, grace)
        if left:
            log.warning("%d request(s) still running after %gs; cancelling them", left, grace)
    finally:
        sweeper.cancel()
        uninstall_reload()
        remaining = None if deadline is None else max(0.1, deadline - time.monotonic())
        try:
            await asyncio.wait_for(runner.cleanup(), remaining)
        except TimeoutError:
            log.error("shutdown_timeout reached during cleanup; exiting anyway")
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


def serve(config: Config, path: str | Path | None = None,
          overrides: dict[str, Any] | None = None) -> int:
    """Blocking entry point used by the CLI; exit status 0 after a graceful stop."""
    loop = _event_loop()
    try:
        loop.run_until_complete(run(config, path, overrides))
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
    return 0
