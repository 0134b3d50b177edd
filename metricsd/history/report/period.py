"""Report periods: ISO weeks (2026-W48) or explicit ranges, in the report's time zone."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

_WEEK_RE = re.compile(r"^(\d{4})-W(\d{2})$")


@dataclass(frozen=True)
class Period:
    """[start, end) in epoch seconds, its id (for /reports/<id>) and its time zone."""

    id: str
    start: float
    end: float
    timezone: str

    @property
    def seconds(self) -> float:
        return self.end - self.start

    def previous(self) -> Period:
        """The period of the same length just before (week over week)."""
        length = self.end - self.start
        tz = ZoneInfo(self.timezone)
        start = datetime.fromtimestamp(self.start, tz)
        if _WEEK_RE.match(self.id):
            year, week, _ = (start - timedelta(days=7)).isocalendar()
            return week_period(f"{year}-W{week:02d}", self.timezone)
        return Period(f"{_day(self.start - length, tz)}..{_day(self.start, tz)}",
                      self.start - length, self.start, self.timezone)

    def days(self) -> list[tuple[str, float, float]]:
        """(YYYY-MM-DD, start, end) of each local day in the period."""
        tz = ZoneInfo(self.timezone)
        out: list[tuple[str, float, float]] = []
        day = datetime.fromtimestamp(self.start, tz).date()
        while True:
            start = datetime.combine(day, datetime.min.time(), tz).timestamp()
            if start >= self.end:
                return out
            end = datetime.combine(day + timedelta(days=1), datetime.min.time(), tz).timestamp()
            out.append((day.isoformat(), max(start, self.start), min(end, self.end)))
            day += timedelta(days=1)


def _day(stamp: float, tz: ZoneInfo) -> str:
    return datetime.fromtimestamp(stamp, tz).date().isoformat()


def week_period(week: str, timezone: str = "UTC") -> Period:
    """`2026-W48`: Monday 00:00 to the next Monday 00:00, local time."""
    match = _WEEK_RE.match(week)
    if not match:
        raise ValueError(f"week must look like 2026-W48, got {week!r}")
    try:
        monday = date.fromisocalendar(int(match.group(1)), int(match.group(2)), 1)
    except ValueError as exc:
        raise ValueError(f"no such week {week!r}") from exc
    tz = ZoneInfo(timezone)
    start = datetime.combine(monday, datetime.min.time(), tz)
    end = datetime.combine(monday + timedelta(days=7), datetime.min.time(), tz)
    return Period(week, start.timestamp(), end.timestamp(), timezone)


def last_full_week(now: float, timezone: str = "UTC") -> Period:
    """The most recent Monday-to-Monday week that has ended."""
    tz = ZoneInfo(timezone)
    year, week, _ = (datetime.fromtimestamp(now, tz) - timedelta(days=7)).isocalendar()
    return week_period(f"{year}-W{week:02d}", timezone)


def range_period(start: str, end: str, timezone: str = "UTC") -> Period:
    """`--from 2026-11-23 --to 2026-11-30` (dates or ISO date-times, local time)."""
    tz = ZoneInfo(timezone)

    def parse(text: str) -> datetime:
        value = datetime.fromisoformat(text)
        return value if value.tzinfo else value.replace(tzinfo=tz)

    a, b = parse(start), parse(end)
    if b <= a:
        raise ValueError("--to must be after --from")
    return Period(f"{start}..{end}", a.timestamp(), b.timestamp(), timezone)


# Reports cover years 1971 to 9000: outside, the week before or the day after cannot be
# represented by datetime, and no history holds such times anyway.
EARLIEST, LATEST = 31_536_000.0, 221_845_392_000.0


def parse_period(text: str, timezone: str = "UTC") -> Period:
    """A period id as /reports/<period> names it: 2026-W48 or FROM..TO."""
    if ".." in text:
        start, _, end = text.partition("..")
        period = range_period(start, end, timezone)
    else:
        period = week_period(text, timezone)
    if period.start - period.seconds < EARLIEST or period.end > LATEST:
        raise ValueError("periods must lie between 1971 and 9000")
    return period
