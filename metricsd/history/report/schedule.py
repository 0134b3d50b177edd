"""The weekly report's schedule: build last week's report at `report.schedule`, keep it in
the history file, send the digest. The clock is injected; a job calls `tick` every minute."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp

from metricsd.config import Config, parse_schedule
from metricsd.history import writes
from metricsd.history.db import HistoryDB
from metricsd.history.report import digest, make_report
from metricsd.history.report.period import last_full_week

log = logging.getLogger(__name__)


def next_run(schedule: str, timezone: str, after: float) -> float:
    """The first scheduled instant strictly after `after`."""
    weekday, hour, minute = parse_schedule(schedule)
    tz = ZoneInfo(timezone)
    local = datetime.fromtimestamp(after, tz)
    day = local.date() + timedelta(days=(weekday - local.weekday()) % 7)
    for _ in range(3):
        when = datetime(day.year, day.month, day.day, hour, minute, tzinfo=tz).timestamp()
        if when > after:
            return when
        day += timedelta(days=7)
    raise AssertionError("unreachable")  # pragma: no cover


class ReportScheduler:
    """Due time, the last period sent, and the send itself."""

    def __init__(self, config: Config, db: HistoryDB | None, clock: Callable[[], float],
                 advice: Callable[[], list[dict[str, Any]]] | None = None) -> None:
        assert config.report.schedule is not None
        self.config = config
        self.db = db
        self.clock = clock
        self.advice = advice
        self.due = next_run(config.report.schedule, config.report.timezone, clock())
        self.sent: dict[str, bool] = {}
        self.runs = 0

    def link(self, period_id: str) -> str | None:
        base = self.config.report.external_url
        return f"{base.rstrip('/')}/reports/{period_id}" if base else None

    async def tick(self, session: aiohttp.ClientSession) -> bool:
        """Build and send when due; True when a report went out."""
        now = self.clock()
        if now < self.due:
            return False
        report_cfg = self.config.report
        assert report_cfg.schedule is not None
        self.due = next_run(report_cfg.schedule, report_cfg.timezone, now)
        period = last_full_week(now, report_cfg.timezone)
        path = self.db.path if self.db is not None else None
        report = await make_report(period, report_cfg, path, now, session,
                                   self.advice() if self.advice else None)
        if self.db is not None:
            await self.db.write(lambda c: writes.save_report(c, period.id, now, report))
        receivers = {r.name: r for r in self.config.alerting.receivers}
        link = self.link(period.id)
        for name in report_cfg.receivers:
            if name in receivers:
                self.sent[name] = await digest.send(session, receivers[name], report, link)
        self.runs += 1
        log.info("weekly report %s built and sent to %d receiver(s)", period.id,
                 sum(self.sent.values()))
        return True
