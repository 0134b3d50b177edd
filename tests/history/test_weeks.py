"""Two synthetic weeks through the store, its tap and the history file, with a restart
between them; the report's figures are checked against values computed here from the same
samples (p95 within the sketch's 1%, counts exact, regressions in order)."""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from metricsd.alerting.notify.dispatch import LogEntry
from metricsd.config import HistoryConfig, ReportConfig
from metricsd.history.report import from_history, render
from metricsd.history.report.period import week_period
from metricsd.history.service import HistoryService
from metricsd.history.sketch import RELATIVE_ERROR
from tests.history.stores import make_store

W47 = week_period("2026-W47")
W48 = week_period("2026-W48")
RATINGS = ("good", "needs-improvement", "poor")
# Route -> (median seconds in W47, factor in W48): /b regresses most, /c improves.
ROUTES = {"/a": (0.05, 1.0), "/b": (0.12, 2.5), "/c": (0.3, 0.5), "/d": (0.02, 1.3)}
PAGES = {"/home": (1.8, 1.6), "/cart": (2.2, 0.9)}


def nearest_rank(values: np.ndarray, q: float) -> float:
    ordered = np.sort(values)
    return float(ordered[max(1, math.ceil(q * len(ordered))) - 1])


@dataclass
class Truth:
    """What was sent, per week, computed without the history."""

    api: dict[str, list[np.ndarray]] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    lcp: dict[str, list[np.ndarray]] = field(default_factory=dict)
    ratings: dict[str, list[int]] = field(default_factory=dict)


@dataclass
class FakeStatements:
    interval_s: float | None
    statements: tuple[Any, ...]
    dealloc_in_interval: int = 0


@dataclass
class FakeStatement:
    queryid: str
    query: str
    calls: int
    time_s: float
    rows: int

    @property
    def mean_s(self) -> float:
        return self.time_s / self.calls


@dataclass
class Snap:
    taken_at: float
    data: FakeStatements


class FakePg:
    """Snapshots as PgState hands them out (the sampler's whole view of PostgreSQL)."""

    def __init__(self) -> None:
        self.snap: Snap | None = None
        self.util = 0.5

    def target_names(self) -> list[str]:
        return ["main"]

    def latest(self, target: str, collector: str) -> Snap | None:
        return self.snap

    def indexes(self, target: str | None = None) -> list[dict[str, Any]]:
        return [{"schema": "public", "index": "orders_old_idx", "table": "orders", "scans": 7,
                 "unused": True, "valid": True},
                {"schema": "public", "index": "orders_broken_idx", "table": "orders",
                 "scans": 0, "unused": False, "valid": False}]

    def connections(self, target: str) -> dict[str, Any]:
        return {"connections": int(self.util * 100), "max_connections": 100}

    def cache_hit_ratio(self, target: str) -> float:
        return 0.95

    def replication(self, target: str) -> None:
        return None


class FakeAlerts:
    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []
        self.dispatcher = SimpleNamespace(log={})  # group|receiver -> the last notification

    def alerts(self) -> list[dict[str, Any]]:
        return self.items


async def drive_week(path: Path, period: Any, scale: bool, truth: Truth,
                     rng: np.random.Generator) -> None:
    """One week of beacons (batches and singles), statements and alerts; then stop."""
    store = make_store(100)
    service = HistoryService(HistoryConfig(path=str(path)), store, clock=lambda: period.start)
    await service.open()
    pg, alerts = FakePg(), FakeAlerts()
    hours = int(period.seconds // 3600)
    for h in range(hours):
        start = period.start + h * 3600
        for route, (median, factor) in ROUTES.items():
            n = int(rng.integers(20, 60))
            values = rng.lognormal(math.log(median * (factor if scale else 1.0)), 0.5, n)
            stamps = start + rng.uniform(0, 3600, n)
            tags = np.where(rng.random(n) < 0.02, 4, 1)
            truth.api.setdefault(route, []).append(values)
            truth.errors[route] = truth.errors.get(route, 0) + int((tags == 4).sum())
            keys = [("shop", route, "GET")] * n
            if h % 2:  # singles: the store's scalar path
                for k, v, s, t in zip(keys, values, stamps, tags, strict=True):
                    store.observe("api", k, float(v), float(s), int(t))
            else:  # a large batch: the vectorised path
                values, stamps, tags = (np.concatenate([x] * 2) for x in (values, stamps, tags))
                truth.api[route].append(values[n:])
                truth.errors[route] += int((tags[n:] == 4).sum())
                store.observe_columns("api", keys * 2, values.tolist(), stamps.tolist(),
                                      tags.tolist(), [0] * (2 * n))
        for page, (median, factor) in PAGES.items():
            values = rng.lognormal(math.log(median * (factor if scale else 1.0)), 0.3, 10)
            for v in values:
                rating = 0 if v <= 2.5 else 1 if v <= 4.0 else 2
                store.observe("LCP", (page,), float(v), start + 60, rating)
                truth.ratings.setdefault(page, [0, 0, 0])[rating] += 1
            truth.lcp.setdefault(page, []).append(values)
        # Statements: q1 steady, q2 slows down in W48, q3 only in W48 (new).
        stmts = [FakeStatement("1", "SELECT 1 FROM orders", 100, 1.0, 100),
                 FakeStatement("2", "SELECT * FROM carts WHERE id = $1", 50,
                               (40.0 if scale else 5.0), 50)]
        if scale:
            stmts.append(FakeStatement("3", "UPDATE stock SET n = n - 1", 10, 0.2, 10))
        pg.snap = Snap(start + 30, FakeStatements(15.0, tuple(stmts), dealloc_in_interval=1))
        pg.util = 0.9 if (scale and h == 5) else 0.5
        if h == 10:
            alerts.items = [{"fingerprint": "f1", "state": "firing", "name": "ApiSlow",
                             "started_at": start, "resolved_at": None, "labels": {}}]
            alerts.dispatcher.log["g|oncall"] = LogEntry(frozenset({"f1"}), frozenset(), start)
        if h == 12:
            alerts.items = [{"fingerprint": "f1", "state": "resolved", "name": "ApiSlow",
                             "started_at": start - 7200, "resolved_at": start, "labels": {}}]
            alerts.dispatcher.log["g|oncall"] = LogEntry(frozenset(), frozenset({"f1"}), start)
        await service.sample(pg, None, alerts, now=start + 40)
        if h % 24 == 23:
            await service.flush(now=start + 3599)
    await service.close()  # the restart: a new store and service read the same file


@pytest.fixture(scope="module")
def two_weeks(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Truth, Truth]:
    """Built once per module (a few seconds); the tests only read the file."""
    rng = np.random.default_rng(48)
    path = tmp_path_factory.mktemp("weeks") / "history.sqlite"
    first, second = Truth(), Truth()

    async def both() -> None:
        await drive_week(path, W47, False, first, rng)
        await drive_week(path, W48, True, second, rng)

    asyncio.run(both())
    return path, first, second


def close(value: float | None, exact: float) -> bool:
    return value is not None and abs(value - exact) <= RELATIVE_ERROR * exact * 1.0001


async def test_report_figures_match_what_was_sent(two_weeks: tuple[Path, Truth, Truth]) -> None:
    path, first, second = two_weeks
    report = from_history(path, W48, ReportConfig(), now=W48.end + 3600)
    routes = {r["route"]: r for r in report["routes"]}
    assert set(routes) == set(ROUTES)
    for route in ROUTES:
        now = np.concatenate(second.api[route])
        before = np.concatenate(first.api[route])
        row = routes[route]
        assert row["requests"] == len(now)  # exact
        assert row["previous_requests"] == len(before)
        assert row["errors_5xx"] == second.errors[route]
        assert close(row["p95_ms"] / 1000, nearest_rank(now, 0.95)), route
        assert close(row["p99_ms"] / 1000, nearest_rank(now, 0.99)), route
        assert close(row["previous_p95_ms"] / 1000, nearest_rank(before, 0.95)), route
    every = np.concatenate([np.concatenate(v) for v in second.api.values()])
    api95 = next(t for t in report["targets"] if t["name"] == "API p95")
    assert close(api95["value"] / 1000, nearest_rank(every, 0.95))
    # Regressions in the right order: by p95 change, computed from the raw samples.
    expected = sorted(ROUTES, key=lambda r: -(nearest_rank(np.concatenate(second.api[r]), .95)
                                              - nearest_rank(np.concatenate(first.api[r]), .95)))
    worse = [r for r in expected if nearest_rank(np.concatenate(second.api[r]), .95)
             > nearest_rank(np.concatenate(first.api[r]), .95)]
    assert [r["route"] for r in report["regressions"]["routes"]] == worse
    assert report["regressions"]["routes"][0]["route"] == "/b"
    assert report["improvements"]["routes"][0]["route"] == "/c"
    pages = {p["page"]: p for p in report["pages"] if p["metric"] == "LCP"}
    for page in PAGES:
        assert pages[page]["samples"] == sum(len(v) for v in second.lcp[page])
        assert close(pages[page]["p75"], nearest_rank(np.concatenate(second.lcp[page]), 0.75))
        assert list(pages[page]["ratings"].values()) == second.ratings[page]
    assert report["regressions"]["pages"][0]["page"] == "/home"


async def test_statements_alerts_quality(two_weeks: tuple[Path, Truth, Truth]) -> None:
    path, _, _ = two_weeks
    report = from_history(path, W48, ReportConfig(), now=W48.end + 3600)
    top = report["top_statements"]
    hours = 168
    assert [s["queryid"] for s in top] == ["2", "1", "3"]
    assert top[0]["calls"] == 50 * hours and top[0]["total_seconds"] == pytest.approx(40 * hours)
    assert top[0]["share"] == pytest.approx(40 / 41.2)
    assert top[0]["mean_ms"] == pytest.approx(800.0)
    assert [s["queryid"] for s in report["new_statements"]] == ["3"]
    assert report["regressions"]["statements_mean"][0]["queryid"] == "2"
    slow = next(t for t in report["targets"] if t["name"].startswith("Statements"))
    assert slow["value"] == 1 and slow["previous"] == 0 and slow["met"] is False
    util = next(t for t in report["targets"] if t["name"].startswith("Pool"))
    assert util["value"] == pytest.approx(0.9) and util["met"] is False
    assert util["previous"] == pytest.approx(0.5) and util["previous_met"] is True
    assert {i["index"] for i in report["indexes"]["invalid"]} == {"public.orders_broken_idx"}
    assert "public.orders_old_idx" in {i["index"] for i in report["indexes"]["unused"]}
    alerts = report["alerts"]
    assert alerts["fired"] == 1 and alerts["resolved"] == 1 and alerts["notified"] == 2
    assert alerts["firing_seconds"] == pytest.approx(7200)
    assert alerts["mean_time_to_resolve_seconds"] == pytest.approx(7200)
    assert alerts["noisiest"][0]["name"] == "ApiSlow"
    assert report["quality"]["statements_evicted"] == hours
    # Seven daily flushes and the one at stop (clock at the week's start) mark eight
    # minutes as recorded; the rest of the week shows as gaps.
    assert report["quality"]["recorded_minutes"] == 8
    assert report["quality"]["down_minutes"] > 0


async def test_renderings(two_weeks: tuple[Path, Truth, Truth]) -> None:
    path, _, _ = two_weeks
    report = from_history(path, W48, ReportConfig(), now=W48.end + 3600)
    html = render.render(report, "html", ReportConfig().targets.model_dump())
    assert "<script" not in html and "<svg" in html and "src=" not in html
    assert html.count("<rect") == 14  # daily API p95 and LCP p75: 7 bars each
    md = render.render(report, "markdown")
    assert "## Biggest regressions: routes" in md and "| GET /b (shop) |" in md
    assert render.render(report, "json").startswith("{")
    with pytest.raises(ValueError):
        render.render(report, "pdf")
