"""APScheduler jobs: one `scrape:<target>:<collector>` job per collector per target."""

from __future__ import annotations

from collections.abc import Collection
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.base import BaseScheduler

from metricsd.postgres.plans import PlansService
from metricsd.postgres.state import PgState


def job_id(target: str, collector: str) -> str:
    return f"scrape:{target}:{collector}"


def add_pg_jobs(scheduler: BaseScheduler, state: PgState, interval_s: float,
                only: Collection[str] | None = None) -> list[str]:
    """Add every scrape job (of the `only` targets), first run now; runs never stack up."""
    ids = []
    first = datetime.now(UTC)
    for target, collector in state.jobs():
        if only is not None and target not in only:
            continue
        ids.append(job_id(target, collector))
        scheduler.add_job(
            state.scrape, "interval", seconds=interval_s, args=(target, collector),
            id=ids[-1], name=ids[-1], max_instances=1, coalesce=True,
            next_run_time=first, misfire_grace_time=max(1, int(interval_s)),
            replace_existing=True,
        )
    return ids


def add_plan_jobs(scheduler: BaseScheduler, plans: PlansService, interval_s: float,
                  only: Collection[str] | None = None) -> list[str]:
    """One `plans:<target>` job per target (of the `only` ones), offset by half an interval
    from the scrapes so it reads the statements snapshot of the same round."""
    ids = []
    first = datetime.now(UTC) + timedelta(seconds=interval_s / 2)
    for target in plans.jobs():
        if only is not None and target not in only:
            continue
        ids.append(f"plans:{target}")
        scheduler.add_job(
            plans.run, "interval", seconds=interval_s, args=(target,), id=ids[-1],
            name=ids[-1], max_instances=1, coalesce=True, next_run_time=first,
            misfire_grace_time=max(1, int(interval_s)), replace_existing=True,
        )
    return ids


def add_discovery_jobs(scheduler: BaseScheduler, state: PgState, interval_s: float,
                       only: Collection[str] | None = None) -> list[str]:
    """One `discover:<target>` job per `databases: auto` target: pg_database listed again."""
    ids = []
    first = datetime.now(UTC)
    for target in state.discovery_jobs():
        if only is not None and target not in only:
            continue
        ids.append(f"discover:{target}")
        scheduler.add_job(
            state.discover, "interval", seconds=interval_s, args=(target,), id=ids[-1],
            name=ids[-1], max_instances=1, coalesce=True, next_run_time=first,
            misfire_grace_time=max(1, int(interval_s)), replace_existing=True,
        )
    return ids
