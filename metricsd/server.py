"""Run the aiohttp application until SIGTERM/SIGINT, letting in-flight requests finish."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from metricsd.app import create_app
from metricsd.config import Config

log = logging.getLogger(__name__)


def _event_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:  # uvloop is an optional extra
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def serve(config: Config) -> int:
    """Serve on config.listen; aiohttp turns SIGTERM and SIGINT into a graceful exit."""
    loop = _event_loop()
    asyncio.set_event_loop(loop)
    log.info("metricsd listening on http://%s:%d", config.host, config.port)
    web.run_app(
        create_app(config),
        host=config.host,
        port=config.port,
        shutdown_timeout=config.shutdown_timeout,
        access_log=None,
        print=None,
        loop=loop,
        handle_signals=True,
    )
    return 0
