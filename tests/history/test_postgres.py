"""Real PostgreSQL into the history: the statements' interval calls add up exactly across
scrapes, indexes, connections and the cache hit ratio reach the report."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg

from metricsd.config import HistoryConfig, ReportConfig
from metricsd.history.report import from_history
from metricsd.history.report.period import range_period
from metricsd.history.service import HistoryService


async def test_statements_from_real_scrapes(pg_database: str, make_pg_state: Any,
                                            tmp_path: Path) -> None:
    marker = f"h{uuid.uuid4().hex[:8]}"
    state = await make_pg_state(pg_database, top_statements=500)
    history = HistoryService(HistoryConfig(path=str(tmp_path / "h.sqlite")), None)
    await history.open()
    conn = await asyncpg.connect(pg_database)
    try:
        await conn.execute(f"CREATE TABLE {marker} (id int PRIMARY KEY, v int)")
        await conn.execute(f"CREATE INDEX {marker}_v ON {marker} (v)")
        await state.scrape_all()  # the baseline: no deltas yet
        await history.sample(state, None, None)
        sent = 0
        for round_calls in (7, 11):
            for i in range(round_calls):
                await conn.fetchval(f"SELECT count(*) AS {marker} FROM {marker} WHERE id = $1",
                                    i)
            sent += round_calls
            await state.scrape_all()
            await history.sample(state, None, None)
            await history.sample(state, None, None)  # the same snapshot counts once
    finally:
        await conn.close()
        await state.close()
    await history.close()
    day = datetime.now(UTC).date()
    period = range_period(str(day - timedelta(days=1)), str(day + timedelta(days=1)))
    report = from_history(tmp_path / "h.sqlite", period, ReportConfig(top=1000), time.time())
    mine = [s for s in report["top_statements"] + report["new_statements"]
            if marker in s["query"] and s["query"].lstrip().upper().startswith("SELECT")]
    assert mine, report["top_statements"]
    assert mine[0]["calls"] == sent
    assert mine[0]["new"] is True
    indexes = {i["index"] for i in report["indexes"]["unused"]}
    assert f"public.{marker}_v" in indexes  # never scanned
    util = next(t for t in report["targets"] if t["name"].startswith("Pool"))
    assert util["value"] is not None and 0 < util["value"] <= 1
    # The cache hit ratio is only shown when an interval read blocks (the target's
    # database view may report none over such short intervals).
    ratio = next((t for t in report["targets"] if t["name"].startswith("Cache hit")), None)
    assert ratio is None or 0 <= ratio["value"] <= 1
