"""PgBouncer: pools, clients and wait time from each configured admin console.

`pgbouncer.targets` is a list of its own (not a kind of `postgres.targets`): a console
has none of PostgreSQL's views, speaks only the simple query protocol and has its own
client (psycopg), so it shares nothing with the PostgreSQL collectors but the exposition.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from functools import partial

from aiohttp import web

from metricsd.core import CONFIG, READINESS, REGISTRY, SCHEDULER
from metricsd.pgbouncer.state import PgBouncerState

PGBOUNCER_STATE = web.AppKey("pgbouncer_state", PgBouncerState)


async def _consoles(app: web.Application) -> AsyncIterator[None]:
    """One job per console, first run now; connections close on the way out."""
    state = app[PGBOUNCER_STATE]
    interval = app[CONFIG].pgbouncer.scrape_interval
    for name in state.targets:
        job = f"pgbouncer:{name}"
        app[SCHEDULER].add_job(
            state.scrape, "interval", seconds=interval, args=(name,), id=job, name=job,
            max_instances=1, coalesce=True, next_run_time=datetime.now(UTC),
            misfire_grace_time=max(1, int(interval)), replace_existing=True)
    yield
    await state.close()


def setup(app: web.Application) -> None:
    """PGBOUNCER_STATE, its families, one /readyz component per console, the jobs."""
    state = app[PGBOUNCER_STATE] = PgBouncerState(app[CONFIG].pgbouncer)
    app[REGISTRY].add_source(state)
    for name in state.targets:
        app[READINESS][f"pgbouncer:{name}"] = partial(state.readiness, name)
    app.cleanup_ctx.append(_consoles)
