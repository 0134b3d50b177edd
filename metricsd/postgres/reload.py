"""Reloading PostgreSQL targets: pools and scrape jobs of added, changed and removed targets.

A target whose entry is unchanged keeps its pool, jobs, latest snapshots and plan tracker. A changed
one (or every one, when a postgres-wide setting such as scrape_interval changed) is
closed and opened again from the new entry; a removed one is closed and its series leave
/metrics with it. Building the new targets does no I/O, so it happens before anything
running is touched.
"""

from __future__ import annotations

import logging
from functools import partial

from aiohttp import web
from apscheduler.jobstores.base import JobLookupError

from metricsd.config import Config
from metricsd.core import READINESS, SCHEDULER, Apply
from metricsd.postgres.jobs import add_discovery_jobs, add_pg_jobs, add_plan_jobs, job_id
from metricsd.postgres.plans import PlansService
from metricsd.postgres.plans.tracker import PlanTracker
from metricsd.postgres.state import PgState

log = logging.getLogger(__name__)


async def reload_targets(app: web.Application, state: PgState, plans: PlansService,
                         old: Config, new: Config) -> Apply | None:
    """Prepare the new targets (no I/O); the returned call swaps them in."""
    if new.postgres == old.postgres:
        return None
    fresh = PgState(new.postgres, clock=state.clock)
    same_settings = old.postgres.model_copy(update={"targets": []}) == \
        new.postgres.model_copy(update={"targets": []})
    before = {t.name: t for t in old.postgres.targets}
    after = {t.name: t for t in new.postgres.targets}
    unchanged = {name for name in before.keys() & after.keys()
                 if same_settings and before[name] == after[name]}
    leaving = set(before) - unchanged
    coming = set(after) - unchanged

    async def apply() -> None:
        scheduler = app[SCHEDULER]
        for name in sorted(leaving):
            ts = state.targets.pop(name, None)
            plans.trackers.pop(name, None)
            if ts is None:
                continue
            for job in [job_id(name, c) for c in ts.job_collectors()] + [
                    f"plans:{name}", f"discover:{name}"]:
                try:
                    scheduler.remove_job(job)
                except JobLookupError:
                    pass
            app[READINESS].pop(f"postgres:{name}", None)
            await ts.close()
        state.config = new.postgres
        plans.config = new.postgres.plans
        for name in sorted(coming):
            ts = state.targets[name] = fresh.targets[name]
            plans.trackers[name] = PlanTracker(name, new.postgres.plans, state.clock)
            for pg in (ts.pg, *(db.pg for db in ts.databases.values())):
                try:
                    await pg.open()
                except Exception as exc:  # a bad DSN leaves that target down, as at start-up
                    log.error("postgres target %s: cannot create a pool: %s", pg.where, exc)
            app[READINESS][f"postgres:{name}"] = partial(state.readiness, name)
        add_pg_jobs(scheduler, state, new.postgres.scrape_interval, only=coming)
        add_plan_jobs(scheduler, plans, new.postgres.scrape_interval, only=coming)
        add_discovery_jobs(scheduler, state, new.postgres.discovery_interval, only=coming)
        log.info("postgres reloaded: %d target(s) kept, %d closed, %d opened",
                 len(unchanged), len(leaving - coming), len(coming))

    return apply
