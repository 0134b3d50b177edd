"""HTTP routes and rendering only; every object they serve is owned by a subsystem."""

from __future__ import annotations

from aiohttp import web

from metricsd.web import (
    alerts,
    beacons,
    cache,
    metrics,
    openapi,
    page,
    plans,
    postgres,
    reload,
    reports,
    status,
    summary,
    vitals,
)


def setup(app: web.Application) -> None:
    """Register every route; the admin-auth middleware is installed by create_app."""
    status.setup(app)
    metrics.setup(app)
    beacons.setup(app)
    summary.setup(app)
    vitals.setup(app)
    postgres.setup(app)
    plans.setup(app)
    page.setup(app)
    alerts.setup(app)
    cache.setup(app)
    reload.setup(app)
    reports.setup(app)
    openapi.setup(app)
