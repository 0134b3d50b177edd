"""Every web.AppKey of the application, and nothing else."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from prometheus_client import CollectorRegistry

from metricsd.config import Config
from metricsd.store.series import Store

if TYPE_CHECKING:
    from metricsd.selfmetrics import SelfMetrics

CONFIG = web.AppKey("CONFIG", Config)
REGISTRY = web.AppKey("REGISTRY", CollectorRegistry)
STORE = web.AppKey("STORE", Store)
SELF_METRICS = web.AppKey("SELF_METRICS", "SelfMetrics")
SCHEDULER = web.AppKey("SCHEDULER", AsyncIOScheduler)
HTTP = web.AppKey("HTTP", aiohttp.ClientSession)
# Subsystems register their readiness here: component name -> callable returning a dict
# with at least {"ok": bool}. /readyz reports them all.
READINESS = web.AppKey("READINESS", dict[str, Any])
