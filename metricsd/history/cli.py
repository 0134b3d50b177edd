"""`metricsd report`: render a period's report from the history file (or Prometheus)."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

from metricsd.config import Config
from metricsd.history.report import make_report, render
from metricsd.history.report.period import Period, last_full_week, parse_period


def choose_period(config: Config, week: str | None, start: str | None, end: str | None,
                  now: float) -> Period:
    tz = config.report.timezone
    if week:
        return parse_period(week, tz)
    if start or end:
        if not (start and end):
            raise ValueError("--from and --to go together")
        return parse_period(f"{start}..{end}", tz)
    return last_full_week(now, tz)


def run_report(config: Config, week: str | None, start: str | None, end: str | None,
               fmt: str, output: str | None, now: float | None = None) -> int:
    """Exit 0 with the report written; 2 on a bad period or a missing history."""
    now = time.time() if now is None else now
    try:
        period = choose_period(config, week, start, end, now)
    except ValueError as exc:
        print(f"metricsd report: {exc}", file=sys.stderr)
        return 2
    path = config.history.path
    if config.report.source.prometheus_url is None and (path is None or not Path(path).exists()):
        print("metricsd report: no history file (set history.path, or report.source)",
              file=sys.stderr)
        return 2
    report = asyncio.run(make_report(period, config.report, path, now))
    text = render.render(report, fmt, config.report.targets.model_dump())
    if output:
        Path(output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0
