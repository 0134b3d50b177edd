"""Every web.AppKey of the application, and nothing else."""

from __future__ import annotations

from typing import Any

import aiohttp
from aiohttp import web
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from prometheus_client import CollectorRegistry

from metricsd.alerting.service import AlertingService
from metricsd.collectors.state import PgState
from metricsd.config import Config
from metricsd.ingest.base import BeaconType
from metricsd.ingest.ratelimit import TokenBuckets
from metricsd.selfmetrics import SelfMetrics
from metricsd.store.history import History
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
# Per-minute history of the overview page's headline numbers (sparklines).
HISTORY = web.AppKey("history", History)
# The alerting service (engine, dispatcher, state); absent when alerting.rules is unset.
ALERTS = web.AppKey("alerts", AlertingService)
# Latest PostgreSQL snapshots per target and collector, health and a read API
# (docs/postgres.md); present even with no target configured.
PG_STATE = web.AppKey("pg_state", PgState)
