"""PostgreSQL: targets and pools, one module per statistics view, scrape jobs, the exporter.

`setup(app)` owns all of it; web/postgres.py only serves the JSON views of PG_STATE.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from functools import partial

from aiohttp import web

from metricsd.core import CONFIG, READINESS, REGISTRY, SCHEDULER, register_reloader
from metricsd.postgres.exporter import PgExporter
from metricsd.postgres.jobs import add_discovery_jobs, add_pg_jobs, add_plan_jobs
from metricsd.postgres.plans import PlansService
from metricsd.postgres.reload import reload_targets
from metricsd.postgres.state import PgState

# Latest snapshots per target and view, their health and a read API (docs/postgres.md);
# present even with no target configured.
PG_STATE = web.AppKey("pg_state", PgState)
# Plans of slow statements, plan changes and index advice (docs/plans.md).
PLANS = web.AppKey("plans", PlansService)


async def _pools(app: web.Application) -> AsyncIterator[None]:
    """Pools first (no connection needed), then the scrape jobs; pools close last."""
    state = app[PG_STATE]
    await state.open()
    add_pg_jobs(app[SCHEDULER], state, app[CONFIG].postgres.scrape_interval)
    add_discovery_jobs(app[SCHEDULER], state, app[CONFIG].postgres.discovery_interval)
    add_plan_jobs(app[SCHEDULER], app[PLANS], app[CONFIG].postgres.scrape_interval)
    yield
    await state.close()


def setup(app: web.Application) -> None:
    """PG_STATE, its exporter, one /readyz component per target, and the pools."""
    state = app[PG_STATE] = PgState(app[CONFIG].postgres)
    app[REGISTRY].add_source(PgExporter(state))
    plans = app[PLANS] = PlansService(state, app[CONFIG].postgres)
    app[REGISTRY].register(plans)
    for name in state.targets:
        app[READINESS][f"postgres:{name}"] = partial(state.readiness, name)
    app.cleanup_ctx.append(_pools)
    register_reloader(app, "postgres", partial(reload_targets, app, state, plans))
