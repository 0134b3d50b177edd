"""The state file: atomic replacement, tolerance of garbage, coalesced writes."""

from __future__ import annotations

import json

from metricsd.alerting.state import EMPTY, STATE_VERSION, StateFile, read_state, write_atomic
from metricsd.alerting.stats import AlertingStats


def test_atomic_write_leaves_no_temporary_files(tmp_path):
    path = tmp_path / "sub" / "state.json"
    write_atomic(path, {"version": STATE_VERSION, "alerts": [1]})
    write_atomic(path, {"version": STATE_VERSION, "alerts": [2]})
    assert json.loads(path.read_text())["alerts"] == [2]
    assert [p.name for p in path.parent.iterdir()] == ["state.json"]


def test_unreadable_or_foreign_state_is_ignored(tmp_path):
    path = tmp_path / "state.json"
    path.write_text("{not json")
    assert read_state(path) == EMPTY
    path.write_text(json.dumps({"version": 99}))
    assert read_state(path) == EMPTY
    assert read_state(tmp_path / "missing.json") == EMPTY


async def test_bursts_of_changes_coalesce(tmp_path):
    counter = {"n": 0}

    def snapshot():
        counter["n"] += 1
        return {"saved_at": float(counter["n"])}

    stats = AlertingStats()
    state = StateFile(tmp_path / "state.json", snapshot, stats)
    for _ in range(50):
        state.request_save()
    await state.flush()
    assert 1 <= stats.state_writes <= 2
    assert read_state(tmp_path / "state.json").saved_at == counter["n"]


async def test_write_failures_are_counted_not_raised(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    stats = AlertingStats()
    state = StateFile(blocker / "state.json", lambda: {"alerts": []}, stats)
    state.request_save()
    await state.flush()
    assert stats.state_write_failures == 1 and stats.state_writes == 0
