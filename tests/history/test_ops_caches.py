"""Operations and caches in the history and the weekly report, sent through a running app.

Two synthetic weeks of operation timings and cache reports go through POST
/v1/beacons/operations and /v1/beacons/cache of a real app (its beacon clock injected),
with restarts between and inside the weeks; the report's figures are checked against
values computed here from what was sent: p95 within the sketch's 1%, counts and hit
ratios exact, regressions in the right order, objectives met or missed as the raw samples
say.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from metricsd.app import create_app
from metricsd.config import Config, ReportConfig
from metricsd.history import HISTORY_DB
from metricsd.history.caches import CacheDeltas
from metricsd.history.report import from_history, render
from metricsd.history.report.period import week_period
from metricsd.history.sketch import RELATIVE_ERROR

W47 = week_period("2026-W47")
W48 = week_period("2026-W48")
OUTCOMES = ("ok", "error", "timeout", "cancelled")
# (service, operation) -> (median seconds in W47, factor in W48, share not ok).
OPS = {("chat", "ws.delivery"): (0.08, 2.5, 0.01),   # regresses past its 200 ms objective
       ("studio", "ai.generate"): (2.5, 0.6, 0.05),  # improves
       ("web", "export.csv"): (0.8, 1.1, 0.02),
       ("web", "ws.delivery"): (0.05, 1.0, 0.0)}     # same operation, another service
OBJECTIVES = {"ws.delivery": {"objective_ms": 200},
              "ai.generate": {"objective_ms": 5000, "quantile": 0.99}}
# (service, cache) -> (hit probability in W47, in W48, lookups per step).
CACHES = {("studio", "templates"): (0.9, 0.7, 400),   # drops under 80%
          ("studio", "scenarios"): (0.6, 0.85, 150),  # rises over it
          ("web", "sessions"): (0.99, 0.99, 900),
          ("web", "rare"): (0.1, 0.1, 1)}             # under app_cache_min_requests
STEP_HOURS = 5  # one round of beacons every 5 hours: 34 rounds a week
RESTART_AT = 17  # and a restart in the middle of the second week


def nearest_rank(values: np.ndarray, q: float) -> float:
    ordered = np.sort(values)
    return float(ordered[max(1, math.ceil(q * len(ordered))) - 1])


def close(value: float | None, exact: float) -> bool:
    return value is not None and abs(value - exact) <= RELATIVE_ERROR * exact * 1.0001


@dataclass
class Week:
    """What one week sent, computed without metricsd."""

    ops: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    outcomes: dict[tuple[str, str], Counter[str]] = field(default_factory=dict)
    caches: dict[tuple[str, str], list[int]] = field(default_factory=dict)  # hits, misses, ev

    def values(self, key: tuple[str, str]) -> np.ndarray:
        return np.array(self.ops[key])

    def by_operation(self, name: str) -> np.ndarray:
        return np.concatenate([self.values(k) for k in self.ops if k[1] == name])


def operations_body(rng: np.random.Generator, key: tuple[str, str], median: float,
                    bad: float, week: Week) -> Any:
    """Rows or the columnar shape; every accepted sample recorded in `week`."""
    n = int(rng.integers(15, 45))
    values = np.round(rng.lognormal(math.log(median), 0.45, n) * 1000.0, 3)
    outcomes = [OUTCOMES[int(rng.integers(1, 4))] if rng.random() < bad else "ok"
                for _ in range(n)]
    week.ops.setdefault(key, []).extend((values / 1000.0).tolist())
    week.outcomes.setdefault(key, Counter()).update(outcomes)
    service, operation = key
    if rng.random() < 0.3:
        return {"service": service, "operation": operation, "outcome": outcomes,
                "duration_ms": values.tolist()}
    return [{"service": service, "operation": operation, "outcome": o, "duration_ms": v}
            for o, v in zip(outcomes, values.tolist(), strict=True)]


async def drive_week(make: Callable[[], Any], clock: list[float], period: Any,
                     second: bool, week: Week, rng: np.random.Generator) -> None:
    """A week of rounds through a running app; restarts (a new app on the same file)."""
    client = await make()
    rounds = int(period.seconds // 3600) // STEP_HOURS
    for i in range(rounds):
        if second and i == RESTART_AT:
            await client.close()  # stop: writes what is queued, cache counts included
            client = await make()
        clock[0] = period.start + i * STEP_HOURS * 3600 + 120
        for key, (median, factor, bad) in OPS.items():
            body = operations_body(rng, key, median * (factor if second else 1.0), bad, week)
            resp = await client.post("/v1/beacons/operations", json=body)
            assert resp.status == 202, await resp.text()
        reports = []
        for (service, cache), (p1, p2, lookups) in CACHES.items():
            n = int(rng.integers(lookups, 2 * lookups + 1))
            hits = int(rng.binomial(n, p2 if second else p1))
            evictions = int(rng.integers(0, 5))
            total = week.caches.setdefault((service, cache), [0, 0, 0])
            total[0] += hits
            total[1] += n - hits
            total[2] += evictions
            reports.append({"service": service, "cache": cache, "hits": hits,
                            "misses": n - hits, "evictions": evictions, "entries": 10})
        resp = await client.post("/v1/beacons/cache", json=reports)
        assert resp.status == 202, await resp.text()
        if i % 3 == 0:  # a bad report: an error for it, the rest kept
            resp = await client.post("/v1/beacons/cache", json=[
                {"service": "web", "cache": "sessions", "hits": -1, "misses": 0},
                {"service": "web", "cache": "sessions", "hits": 1, "misses": 0}])
            assert resp.status == 202
            answer = await resp.json()
            assert (answer["accepted"], answer["rejected"]) == (1, 1)
            assert answer["errors"][0]["index"] == 0 and answer["errors"][0]["reason"]
            week.caches[("web", "sessions")][0] += 1
        if i % 4 == 1:  # flushed now and then inside the hour, as the job does
            await client.app[HISTORY_DB].flush(now=clock[0] + 60)
    await client.close()


@pytest.fixture
def two_weeks(aiohttp_client: Any, make_config: Callable[..., Config], tmp_path: Path,
              monkeypatch: pytest.MonkeyPatch) -> Callable[[], Any]:
    clock = [W47.start]
    # The beacon routes stamp arrivals with this clock (operations without a timestamp,
    # cache reports), and the history's flushes use it.
    monkeypatch.setattr("metricsd.web.beacons.time", SimpleNamespace(time=lambda: clock[0]))
    path = tmp_path / "history.sqlite"
    config = make_config({"history": {"path": str(path), "flush_interval": 86400},
                          "ingest": {"rate_limit": {"enabled": False},
                                     "series_idle_timeout": 90 * 86400,
                                     "operations": OBJECTIVES}})

    async def make() -> Any:
        app = create_app(config)
        app[HISTORY_DB].clock = lambda: clock[0]  # the flush at stop, too
        return await aiohttp_client(app)

    async def run() -> tuple[Path, Week, Week]:
        rng = np.random.default_rng(1848)
        first, second = Week(), Week()
        await drive_week(make, clock, W47, False, first, rng)
        await drive_week(make, clock, W48, True, second, rng)
        return path, first, second

    return run


async def test_operations_in_the_report(two_weeks: Callable[[], Any]) -> None:
    path, first, second = await two_weeks()
    config = ReportConfig()
    objectives = Config.model_validate({"ingest": {"operations": OBJECTIVES}}).ingest.operations
    report = from_history(path, W48, config, W48.end + 3600, objectives=objectives)
    rows = {(r["service"], r["operation"]): r for r in report["operations"]}
    assert set(rows) == set(OPS)
    for key in OPS:
        row, now, before = rows[key], second.values(key), first.values(key)
        assert row["count"] == len(now) and row["previous_count"] == len(before)
        assert row["outcomes"] == {o: second.outcomes[key][o] for o in OUTCOMES}
        assert row["errors"] == len(now) - second.outcomes[key]["ok"]
        assert close(row["p95_ms"] / 1000, nearest_rank(now, 0.95)), key
        assert close(row["p99_ms"] / 1000, nearest_rank(now, 0.99)), key
        assert close(row["previous_p95_ms"] / 1000, nearest_rank(before, 0.95)), key
        name = key[1]
        if name in OBJECTIVES:
            q = OBJECTIVES[name].get("quantile", 0.95)
            exact = nearest_rank(now, q)
            assert close(row["objective_value_ms"] / 1000, exact)
            assert row["objective_met"] is (exact * 1000 <= OBJECTIVES[name]["objective_ms"])
        else:
            assert row["objective_ms"] is None and row["objective_met"] is None
    assert rows[("chat", "ws.delivery")]["objective_met"] is False  # the seeded regression
    assert rows[("chat", "ws.delivery")]["previous_objective_met"] is True
    # Target rows: one per operation with an objective, over all its services together.
    targets = {t["name"]: t for t in report["targets"]}
    for name, spec in OBJECTIVES.items():
        q = spec.get("quantile", 0.95)
        row = targets[f"{name} p{q * 100:g}"]
        exact, exact_before = nearest_rank(second.by_operation(name), q), nearest_rank(
            first.by_operation(name), q)
        assert close(row["value"] / 1000, exact) and close(row["previous"] / 1000, exact_before)
        assert row["met"] is (exact * 1000 <= spec["objective_ms"])
        assert row["previous_met"] is (exact_before * 1000 <= spec["objective_ms"])
    assert not any(n.startswith("export.csv") for n in targets)  # no objective, no target
    # Regressions and improvements in the order the raw samples give.
    change = {k: nearest_rank(second.values(k), .95) - nearest_rank(first.values(k), .95)
              for k in OPS}
    worse = sorted((k for k in OPS if change[k] > 0), key=lambda k: -change[k])
    better = sorted((k for k in OPS if change[k] < 0), key=lambda k: change[k])
    listed_worse = [(r["service"], r["operation"]) for r in report["regressions"]["operations"]]
    listed_better = [(r["service"], r["operation"])
                     for r in report["improvements"]["operations"]]
    # Only a change inside the sketch's error may land on the other side.
    tiny = {k for k in OPS if abs(change[k]) <= 2.1 * RELATIVE_ERROR
            * nearest_rank(second.values(k), .95)}
    assert [k for k in listed_worse if k not in tiny] == [k for k in worse if k not in tiny]
    assert [k for k in listed_better if k not in tiny] == [k for k in better if k not in tiny]
    assert listed_worse[:2] == [("chat", "ws.delivery"), ("web", "export.csv")]
    assert listed_better[0] == ("studio", "ai.generate")
    # Operations are not pages.
    assert all(p["metric"] != "operation" for p in report["pages"])
    md = render.render(report, "markdown")
    assert "## Operations" in md and "## Biggest regressions: operations" in md
    assert "| ws.delivery (chat) |" in md and "MISSED" in md
    html = render.render(report, "html", config.targets.model_dump())
    assert "Biggest improvements: operations" in html and "<script" not in html


async def test_caches_in_the_report(two_weeks: Callable[[], Any]) -> None:
    path, first, second = await two_weeks()
    report = from_history(path, W48, ReportConfig(), W48.end + 3600)
    rows = {(r["service"], r["cache"]): r for r in report["caches"]}
    assert set(rows) == set(CACHES)
    for key in CACHES:
        hits, misses, evictions = second.caches[key]
        old_hits, old_misses, _ = first.caches[key]
        row = rows[key]
        assert (row["hits"], row["misses"], row["evictions"]) == (hits, misses, evictions)
        assert row["requests"] == hits + misses
        assert row["hit_ratio"] == hits / (hits + misses)  # exact: integer sums
        assert row["previous_hit_ratio"] == old_hits / (old_hits + old_misses)
        judged = hits + misses >= 100
        assert row["target_met"] is ((hits / (hits + misses) >= 0.8) if judged else None)
    # Busiest first, by lookups in the period.
    assert [(r["service"], r["cache"]) for r in report["caches"]] == sorted(
        CACHES, key=lambda k: -(second.caches[k][0] + second.caches[k][1]))
    assert rows[("studio", "templates")]["target_met"] is False
    assert rows[("studio", "scenarios")]["target_met"] is True
    assert rows[("web", "rare")]["target_met"] is None  # too few lookups to judge
    target = next(t for t in report["targets"] if t["name"].startswith("App cache"))

    def lowest(week: Week) -> float:
        return min(h / (h + m) for h, m, _ in week.caches.values() if h + m >= 100)

    assert target["value"] == lowest(second) and target["previous"] == lowest(first)
    assert target["met"] is (lowest(second) >= 0.8)
    assert target["previous_met"] is (lowest(first) >= 0.8)
    strict = ReportConfig.model_validate({"targets": {"app_cache_hit_ratio": 0.5,
                                                      "app_cache_min_requests": 0}})
    other = from_history(path, W48, strict, W48.end + 3600)
    rare = next(r for r in other["caches"] if r["cache"] == "rare")
    assert rare["target_met"] is False  # judged now, and under 50%
    md = render.render(report, "markdown")
    assert "## Caches, busiest first" in md and "| templates (studio) |" in md


def test_cache_deltas_count_each_lookup_once() -> None:
    """Counters only grow per series object; a forgotten cache that comes back (a new object,
    counting from zero again, as after a restart) is not subtracted from its old counts."""
    deltas = CacheDeltas()
    a = SimpleNamespace(hits=5, misses=1, evictions=0)
    state = SimpleNamespace(series={("s", "c"): a})
    assert [(f.hits, f.misses) for f in deltas.take(state)] == [(5, 1)]
    assert deltas.take(state) == []  # nothing new
    a.hits += 3
    a.evictions += 2
    (fact,) = deltas.take(state)
    assert (fact.hits, fact.misses, fact.evictions) == (3, 0, 2)
    state.series = {}  # expired
    assert deltas.take(state) == []
    state.series = {("s", "c"): SimpleNamespace(hits=2, misses=9, evictions=0)}  # back, anew
    assert [(f.hits, f.misses) for f in deltas.take(state)] == [(2, 9)]
    big = SimpleNamespace(hits=100, misses=0, evictions=0)
    state.series = {("s", "c"): big}  # replaced by a new object with more counts
    assert [f.hits for f in deltas.take(state)] == [100]
    assert deltas.take(None) == []
