"""The shared runtime every subsystem plugs into: config, registry, scheduler, readiness.

Only these four keys are shared; each subsystem declares its own keys beside its code.
The scheduler starts last (see `start`), after every other cleanup context has opened
what its jobs use, and stops first.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

from aiohttp import web
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from metricsd.config import Config
from metricsd.export.registry import Registry

# A component's readiness: {"ok": bool, "required": bool (default True), ...details}.
Readiness = Callable[[], dict[str, Any]]

CONFIG = web.AppKey("config", Config)
REGISTRY = web.AppKey("registry", Registry)
SCHEDULER = web.AppKey("scheduler", AsyncIOScheduler)
READINESS = web.AppKey("readiness", dict[str, Readiness])


def setup(app: web.Application, config: Config) -> None:
    """Config, a dedicated registry (never the global one), the scheduler, readiness."""
    app[CONFIG] = config
    app[REGISTRY] = Registry()
    app[SCHEDULER] = AsyncIOScheduler()
    app[READINESS] = {}


async def _scheduler(app: web.Application) -> AsyncIterator[None]:
    app[SCHEDULER].start()
    yield
    app[SCHEDULER].shutdown(wait=False)


def start(app: web.Application) -> None:
    """Append the scheduler's context; call after every subsystem's setup."""
    app.cleanup_ctx.append(_scheduler)
