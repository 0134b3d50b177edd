"""APScheduler jobs: one `scrape:<target>:<collector>` job per collector per target."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.base import BaseScheduler

from metricsd.postgres.plans import PlansService
from metricsd.postgres.state import PgState


def job_id(target: str, collector: str) -> str:
    return f"scrape:{target}:{collector}"


def add_pg_jobs(scheduler: BaseScheduler, state: PgState, interval_s: float) -> list[str]:
    """Add every scrape job, first run now; a slow run never stacks up behind itself."""
    ids = []
    first = datetime.now(UTC)
    for target, collector in state.jobs():
        ids.append(job_id(target, collector))
        scheduler.add_job(
            state.scrape, "interval", seconds=interval_s, args=(target, collector),
            id=ids[-1], name=ids[-1], max_instances=1, coalesce=True,
            next_run_time=first, misfire_grace_time=max(1, int(interval_s)),
            replace_existing=True,
        )
    return ids


def add_plan_jobs(scheduler: BaseScheduler, plans: PlansService, interval_s: float) -> list[str]:
    """One `plans:<target>` job per target, offset by half an interval from the scrapes
    so it reads the statements snapshot of the same round."""
    ids = []
    first = datetime.now(UTC) + timedelta(seconds=interval_s / 2)
    for target in plans.jobs():
        ids.append(f"plans:{target}")
        scheduler.add_job(
            plans.run, "interval", seconds=interval_s, args=(target,), id=ids[-1],
            name=ids[-1], max_instances=1, coalesce=True, next_run_time=first,
            misfire_grace_time=max(1, int(interval_s)), replace_existing=True,
        )
    return ids
