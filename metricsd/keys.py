"""Every web.AppKey of the application, and nothing else."""

from __future__ import annotations

from typing import Any

import aiohttp
from aiohttp import web
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from prometheus_client import CollectorRegistry

from metricsd.config import Config
from metricsd.ingest.base import BeaconType
from metricsd.ingest.ratelimit import TokenBuckets
from metricsd.selfmetrics import SelfMetrics
from metricsd.store.series import Store

CONFIG = web.AppKey("config", Config)
REGISTRY = web.AppKey("registry", CollectorRegistry)
STORE = web.AppKey("store", Store)
SELF_METRICS = web.AppKey("self_metrics", SelfMetrics)
SCHEDULER = web.AppKey("scheduler", AsyncIOScheduler)
HTTP = web.AppKey("http", aiohttp.ClientSession)
BEACON_TYPES = web.AppKey("beacon_types", dict[str, BeaconType])
RATE_LIMITER = web.AppKey("rate_limiter", TokenBuckets)
# Subsystems register their readiness here: component name -> callable returning a dict
# with at least {"ok": bool} (and "required": False for parts that only degrade).
READINESS = web.AppKey("readiness", dict[str, Any])
