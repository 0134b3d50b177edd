"""The shared runtime every subsystem plugs into: config, registry, scheduler, readiness, reload.

Only these keys are shared; each subsystem declares its own keys beside its code.
The scheduler starts last (see `start`), after every other cleanup context has opened
what its jobs use, and stops first.

Reload (SIGHUP, `POST /-/reload`) works as Prometheus's and Alertmanager's do: the file is
read and validated in full, then every subsystem's reloader *prepares* its part (compiles,
checks; changes nothing) and only when all of them succeeded does each apply its part. An
invalid file, or a part that does not prepare, leaves the running configuration untouched
and is logged and counted (`metricsd_config_reloads_total{result}`,
`metricsd_config_last_reload_successful`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from apscheduler.events import EVENT_JOB_MAX_INSTANCES, JobEvent
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from prometheus_client.metrics_core import Metric

from metricsd.config import Config, load_config
from metricsd.errors import ConfigError
from metricsd.export.registry import Registry

log = logging.getLogger(__name__)

# A component's readiness: {"ok": bool, "required": bool (default True), ...details}.
Readiness = Callable[[], dict[str, Any]]
# Applies a prepared reload; must not fail for reasons `prepare` could have found.
Apply = Callable[[], Awaitable[None]]
# prepare(old, new): validate and build what the subsystem needs, changing nothing that
# runs; raise ConfigError to refuse the reload; return how to apply it (None: nothing to do).
Reloader = Callable[[Config, Config], Awaitable[Apply | None]]

CONFIG = web.AppKey("config", Config)
REGISTRY = web.AppKey("registry", Registry)
SCHEDULER = web.AppKey("scheduler", AsyncIOScheduler)
READINESS = web.AppKey("readiness", dict[str, Readiness])


@dataclass
class Runtime:
    """What changes while the process runs: the current config, its file, reload outcomes."""

    config: Config
    path: str | None = None
    # Command-line values that win over the file on every reload (e.g. --listen).
    overrides: dict[str, Any] = field(default_factory=dict)
    reloaders: list[tuple[str, Reloader]] = field(default_factory=list)
    reloads: dict[str, int] = field(default_factory=lambda: {"success": 0, "failure": 0})
    last_reload_ok: bool = True
    last_reload_success: float = field(default_factory=time.time)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


# The running configuration lives here (app[CONFIG] is the start-up one: aiohttp does not
# let a started application's keys change). Read it with current_config(app).
RUNTIME = web.AppKey("runtime", Runtime)


def current_config(app: web.Application) -> Config:
    """The configuration in force now (after any reload)."""
    return app[RUNTIME].config


def register_reloader(app: web.Application, name: str, reloader: Reloader) -> None:
    """Called by a subsystem's setup(app); reloaders prepare and apply in this order."""
    app[RUNTIME].reloaders.append((name, reloader))


@dataclass(frozen=True)
class ReloadResult:
    """The outcome of one reload: ok, or the problems that kept the running config."""

    ok: bool
    problems: tuple[str, ...] = ()


async def reload(app: web.Application, config: Config | None = None) -> ReloadResult:
    """Re-read the config file (or take `config`), prepare every part, then apply them all."""
    runtime = app[RUNTIME]
    async with runtime.lock:
        result = await _reload(runtime, config)
        runtime.reloads["success" if result.ok else "failure"] += 1
        runtime.last_reload_ok = result.ok
        if result.ok:
            runtime.last_reload_success = time.time()
            log.info("configuration reloaded from %s", runtime.path or "defaults")
        else:
            log.error("configuration reload failed, keeping the running configuration: %s",
                      "; ".join(result.problems))
        return result


async def _reload(runtime: Runtime, config: Config | None) -> ReloadResult:
    try:
        new = config if config is not None else \
            await asyncio.to_thread(load_config, runtime.path)
    except ConfigError as exc:
        return ReloadResult(False, (exc.args[0], *exc.problems))
    if runtime.overrides:
        new = new.model_copy(update=runtime.overrides)
    old = runtime.config
    if new.listen != old.listen:
        return ReloadResult(False, ("listen: cannot change without a restart",))
    applies: list[tuple[str, Apply]] = []
    for name, reloader in runtime.reloaders:
        try:
            apply = await reloader(old, new)
        except ConfigError as exc:
            return ReloadResult(False, (f"{name}: {exc.args[0]}", *exc.problems))
        except Exception as exc:  # a bug in one part must not take the others down
            log.exception("reloading %s failed while preparing", name)
            return ReloadResult(False, (f"{name}: {type(exc).__name__}: {exc}",))
        if apply is not None:
            applies.append((name, apply))
    runtime.config = new
    if new.log_level != old.log_level:
        logging.getLogger().setLevel(new.log_level.upper())
    failed = []
    for name, apply in applies:
        try:
            await apply()
        except Exception as exc:  # prepared parts are applied whatever one of them does
            log.exception("applying the reloaded configuration of %s failed", name)
            failed.append(f"{name}: {type(exc).__name__}: {exc}")
    return ReloadResult(not failed, tuple(failed))


class ReloadCollector:
    """metricsd_config_* : the outcome of reloads, as Prometheus exports its own."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def describe(self) -> Iterator[Metric]:
        return self.collect()

    def collect(self) -> Iterator[Metric]:
        runtime = self.runtime
        ok = Metric("metricsd_config_last_reload_successful",
                    "1 when the last configuration reload succeeded (or none was tried)",
                    "gauge")
        ok.add_sample("metricsd_config_last_reload_successful", {},
                      float(runtime.last_reload_ok))
        yield ok
        when = Metric("metricsd_config_last_reload_success_timestamp_seconds",
                      "When the configuration was last loaded successfully (Unix time)",
                      "gauge")
        when.add_sample("metricsd_config_last_reload_success_timestamp_seconds", {},
                        runtime.last_reload_success)
        yield when
        total = Metric("metricsd_config_reloads", "Configuration reloads by result", "counter")
        for result, n in sorted(runtime.reloads.items()):
            total.add_sample("metricsd_config_reloads_total", {"result": result}, float(n))
        yield total


def setup(app: web.Application, config: Config, path: str | Path | None = None) -> None:
    """Config, a dedicated registry (never the global one), the scheduler, readiness, reload."""
    app[CONFIG] = config
    app[REGISTRY] = Registry()
    app[SCHEDULER] = AsyncIOScheduler()
    app[READINESS] = {}
    app[RUNTIME] = Runtime(config, str(path) if path is not None else None)
    app[REGISTRY].register(ReloadCollector(app[RUNTIME]))


async def _scheduler(app: web.Application) -> AsyncIterator[None]:
    hygiene = JobHygiene(app[SCHEDULER])
    app[REGISTRY].register(hygiene)
    hygiene.attach()
    app[SCHEDULER].start()
    yield
    hygiene.stopping = True
    app[SCHEDULER].shutdown(wait=False)
    for _ in range(3):  # let cancelled jobs finish and their callbacks log (filtered)
        await asyncio.sleep(0)
    hygiene.detach()


def start(app: web.Application) -> None:
    """Append the scheduler's context; call after every subsystem's setup."""
    app.cleanup_ctx.append(_scheduler)


# APScheduler logs a warning for every run it skips because the previous one still runs
# (a hung PostgreSQL target: several a second), and a traceback for every job cancelled
# at shutdown. Skips are counted per job and logged once per job every SKIP_LOG_EVERY_S;
# a cancellation while stopping is not an error.
SKIP_LOG_EVERY_S = 600.0
_SKIPPED = "skipped: maximum number of running instances reached"
_APSCHEDULER_LOGGERS = ("apscheduler.scheduler", "apscheduler.executors.default")


class JobHygiene(logging.Filter):
    """Counts skipped runs (metricsd_scheduler_skipped_runs_total{job}), rate-limits their
    log line, and drops APScheduler's tracebacks of jobs cancelled by a shutdown."""

    def __init__(self, scheduler: AsyncIOScheduler) -> None:
        super().__init__()
        self.skipped: dict[str, int] = {}
        self.stopping = False
        self._logged: dict[str, float] = {}
        scheduler.add_listener(self._on_skip, EVENT_JOB_MAX_INSTANCES)

    def attach(self) -> None:
        for name in _APSCHEDULER_LOGGERS:
            logging.getLogger(name).addFilter(self)

    def detach(self) -> None:
        for name in _APSCHEDULER_LOGGERS:
            logging.getLogger(name).removeFilter(self)

    def _on_skip(self, event: JobEvent) -> None:
        self.skipped[event.job_id] = self.skipped.get(event.job_id, 0) + 1
        # One line per group of jobs (`scrape:main:activity` -> `scrape:main`): a hung
        # target stalls all of its collectors at once, and that is one event.
        group = event.job_id.rsplit(":", 1)[0] if event.job_id.count(":") >= 2 \
            else event.job_id
        now = time.monotonic()
        if now - self._logged.get(group, -SKIP_LOG_EVERY_S) >= SKIP_LOG_EVERY_S:
            self._logged[group] = now
            log.warning("job %s: a run was skipped because the previous one is still running "
                        "(a slow or hung target?); counted per job in metricsd_scheduler_"
                        "skipped_runs_total, logged at most every %.0f s for the jobs of %s",
                        event.job_id, SKIP_LOG_EVERY_S, group)

    def filter(self, record: logging.LogRecord) -> bool:
        if _SKIPPED in record.getMessage():
            return False  # counted and logged by _on_skip instead
        exc = record.exc_info[1] if record.exc_info else None
        return not (isinstance(exc, asyncio.CancelledError) and self.stopping)

    def describe(self) -> Iterator[Metric]:
        return self.collect()

    def collect(self) -> Iterator[Metric]:
        total = Metric("metricsd_scheduler_skipped_runs",
                       "Scheduled runs skipped because the previous run of the job was still "
                       "running", "counter")
        for job, n in sorted(self.skipped.items()):
            total.add_sample("metricsd_scheduler_skipped_runs_total", {"job": job}, float(n))
        yield total
