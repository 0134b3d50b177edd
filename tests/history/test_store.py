"""The history file's own rules: sketch error bound, retention, size bound, merging deltas,
the tap's bound, and config validation."""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from metricsd.config import Config, HistoryConfig
from metricsd.errors import ConfigError
from metricsd.history.rollup import BeaconRollups
from metricsd.history.service import HistoryService
from metricsd.history.sketch import RELATIVE_ERROR, Sketch
from metricsd.history.tap import Tap
from tests.history.stores import make_store, observe


@pytest.mark.parametrize("dist", ["lognormal", "uniform", "pareto", "constant", "zeros"])
@pytest.mark.parametrize("q", [0.5, 0.75, 0.95, 0.99, 0.999])
def test_sketch_quantiles_within_one_percent_and_merge_exactly(dist: str, q: float) -> None:
    rng = np.random.default_rng(hash((dist, q)) % 2**32)
    values = {"lognormal": rng.lognormal(-3, 2, 20000), "uniform": rng.uniform(0, 30, 20000),
              "pareto": rng.pareto(1.2, 20000) + 1e-4, "constant": np.full(20000, 0.123),
              "zeros": np.concatenate([np.zeros(15000), rng.uniform(0, 1, 5000)])}[dist]
    whole = Sketch()
    whole.add_values(values)
    pieces = Sketch()
    for part in np.array_split(values, 168):  # a week of hours
        hour = Sketch()
        hour.add_values(part)
        pieces.merge(Sketch.from_parts(*hour.to_parts()))
    assert pieces.counts == whole.counts
    exact = float(np.sort(values)[max(1, math.ceil(q * len(values))) - 1])
    got = pieces.quantile(q)
    assert got is not None and abs(got - exact) <= RELATIVE_ERROR * exact + 1e-12


def test_empty_sketch() -> None:
    assert Sketch().quantile(0.95) is None and Sketch().fraction_above(1) is None


def test_rollups_group_by_series_hour_and_tag() -> None:
    r = BeaconRollups()
    keys = {7: ("a",), 9: ("b",)}
    r.add("f", np.array([7, 9, 7, 7]), keys, np.array([1.0, 2.0, 1.0, 3.0]),
          np.array([10.0, 20.0, 3700.0, 30.0]), np.array([0, 1, 2, 0]))
    out = r.flush()
    assert {(h, k) for h, _, k in out} == {(0, ("a",)), (0, ("b",)), (3600, ("a",))}
    a0 = out[(0, "f", ("a",))]
    assert (a0.count, a0.total, a0.tags[:3]) == (2, 4.0, [2, 0, 0])
    assert out[(3600, "f", ("a",))].tags[:3] == [0, 0, 1]
    assert r.flush() == {}


def test_tap_is_bounded_and_counts_what_it_drops() -> None:
    tap = Tap(max_pending=5)
    for i in range(4):
        tap.one("f", 3, 1.0, float(i), 0)
    tap.many("f", np.array([3, 3, 4]), np.ones(3), np.zeros(3), np.zeros(3, dtype=np.int64))
    tap.many("f", np.array([3, 3, 3]), np.ones(3), np.zeros(3), np.zeros(3, dtype=np.int64))
    tap.one("f", 3, 1.0, 0.0, 0)
    assert tap.dropped == 4 and tap.pending == 7
    r = BeaconRollups()
    # Slot 4's series expired before the drain: its sample is counted, not misfiled.
    assert tap.drain(r, lambda family: {3: ("k",)}) == 6 and tap.pending == 0
    assert tap.unmapped == 1
    assert sum(a.count for a in r.flush().values()) == 6


async def test_retention_and_size_bound(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite"
    now = 100 * 86400.0
    store = make_store()
    service = HistoryService(HistoryConfig(path=str(path), retention=10 * 86400,
                                           max_bytes=1 << 20), store, lambda: now)
    await service.open()
    rng = np.random.default_rng(3)
    for day in range(30):  # 30 days x 24 hours x 40 series of wide sketches
        stamps = np.repeat(now - (30 - day) * 86400 + np.arange(24) * 3600.0, 40 * 50)
        keys = [("s", f"/r{i}", "GET") for i in range(40)] * (24 * 50)
        observe(store, "api", keys, rng.lognormal(-2, 2, len(keys)), stamps, [1] * len(keys))
        await service.flush(now=now)
    removed = await service.retain()
    assert removed > 0
    await service.close()
    conn = sqlite3.connect(path)
    oldest = conn.execute("SELECT min(hour) FROM beacon_hours").fetchone()[0]
    page = conn.execute("PRAGMA page_size").fetchone()[0]
    used = (conn.execute("PRAGMA page_count").fetchone()[0]
            - conn.execute("PRAGMA freelist_count").fetchone()[0]) * page
    conn.close()
    assert oldest >= now - 10 * 86400
    assert used <= 1 << 20
    assert path.stat().st_size <= 1.5 * (1 << 20)  # incremental vacuum gave pages back


async def test_deltas_add_up_across_restarts(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite"
    for _ in range(3):
        store = make_store()
        service = HistoryService(HistoryConfig(path=str(path)), store, lambda: 7200.0)
        await service.open()
        for _ in range(10):  # the store's scalar path
            store.observe("api", ("s", "/x", "GET"), 0.1, 7300.0, 4)
        await service.close()
    conn = sqlite3.connect(path)
    count, tags = conn.execute("SELECT count, tags FROM beacon_hours").fetchone()
    assert (count, np.frombuffer(tags, dtype="<u4").tolist()) == (30, [0, 0, 0, 0, 30, 0, 0, 0])
    conn.close()


def test_report_receivers_must_exist(make_config: Callable[..., Config]) -> None:
    with pytest.raises(ConfigError, match=r"report\.receivers names unknown receiver"):
        make_config({"report": {"receivers": ["nobody"]}})
    with pytest.raises(ConfigError, match="schedule must look like"):
        make_config({"report": {"schedule": "sometimes"}})
    with pytest.raises(ConfigError, match="unknown time zone"):
        make_config({"report": {"timezone": "Mars/Olympus"}})
    assert make_config({"report": {"schedule": "friday 17:30"}}).report.schedule
