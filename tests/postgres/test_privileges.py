"""Privileges made visible: what a role cannot see is a status, and the documented grants
are enough for every collector to report `ok`.
"""

from __future__ import annotations

import logging
import re
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from metricsd.export.registry import Registry
from metricsd.postgres.exporter import PgExporter
from tests.fixtures.pg import run_sql

DOCS = Path(__file__).resolve().parents[2] / "docs" / "postgres.md"
PARTIAL = "insufficient_privilege"


def _as(dsn: str, role: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, f"{role}@{parts.hostname}:{parts.port}", parts.path,
                       "", ""))


def _documented_setup() -> list[str]:
    """The setup SQL block of docs/postgres.md, one statement per item."""
    text = DOCS.read_text(encoding="utf-8")
    block = re.search(r"```sql\n(-- as a superuser.*?)```", text, re.S)
    assert block, "docs/postgres.md lost its setup SQL block"
    lines = [line.split("--")[0].strip() for line in block.group(1).splitlines()]
    return [s.strip() for s in " ".join(lines).split(";") if s.strip()]


async def _table_with_index(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("""
            CREATE TABLE items (id int PRIMARY KEY, v int);
            INSERT INTO items SELECT g, g % 100 FROM generate_series(1, 2000) g;
            CREATE INDEX items_v ON items (v);
            ANALYZE items;
        """)
        await conn.fetchval("SELECT 42")  # a superuser statement the plain role cannot see
    finally:
        await conn.close()


async def test_role_without_pg_monitor_gets_statuses_not_silence(
        pg_database, make_pg_state, caplog):
    await _table_with_index(pg_database)
    role = f"plain_{uuid.uuid4().hex[:8]}"
    run_sql(pg_database, f'CREATE ROLE "{role}" LOGIN')
    caplog.set_level(logging.WARNING, logger="metricsd.postgres")
    state = await make_pg_state(_as(pg_database, role))
    registry = Registry()
    registry.add_source(PgExporter(state))
    try:
        for _ in range(2):
            statuses = await state.scrape_all()
        partial = {c: statuses.pop(("main", c)) for c in ("statements", "activity",
                                                           "replication", "indexes")}
        assert set(partial.values()) == {PARTIAL}, state.health("main")
        assert statuses[("main", "tables")] == statuses[("main", "database")] == "ok"
        assert state.up("main")
        health = state.health("main")
        assert "pg_read_all_stats" in health["statements"]["message"]
        assert "pg_read_all_data" in health["indexes"]["message"]
        # Partial data is still served.
        assert state.statements_meta("main")["hidden"] > 0
        assert state.connections("main") is not None
        assert {i["index"] for i in state.indexes()} >= {"items_v", "items_pkey"}
        ready = state.readiness("main")
        assert ready["ok"] is True and ready["collectors"]["indexes"] == PARTIAL
        get = registry.get_sample_value
        assert get("metricsd_pg_collector_status", {"target": "main", "collector": "indexes",
                                                   "status": PARTIAL}) == 1
        assert get("metricsd_pg_collector_errors_total", {
            "target": "main", "collector": "indexes", "kind": PARTIAL}) == 0
        said = [r.getMessage() for r in caplog.records if PARTIAL in r.getMessage()
                or "incomplete" in r.getMessage()]
        mine = [m for m in said if any(f" collector {c}:" in m for c in partial)]
        assert len(mine) == 4, said  # once per collector, not per round
    finally:
        await state.close()
        run_sql(pg_database, f'DROP OWNED BY "{role}"', f'DROP ROLE "{role}"')


@pytest.mark.pg_versions("14", "15", "16", "17", "18")
async def test_documented_grants_make_every_collector_ok(pg_database, make_pg_state):
    await _table_with_index(pg_database)
    role = f"metricsd_{uuid.uuid4().hex[:8]}"
    database = urlsplit(pg_database).path.lstrip("/")
    setup = [s.replace("metricsd", f'"{role}"').replace("DATABASE app", f'DATABASE "{database}"')
             for s in _documented_setup()]
    assert any("pg_monitor" in s for s in setup) and any("pg_read_all_data" in s for s in setup)
    run_sql(pg_database, *setup)
    state = await make_pg_state(_as(pg_database, role))
    try:
        for _ in range(2):
            statuses = await state.scrape_all()
        assert set(statuses.values()) <= {"ok", "unsupported_version"}, state.health("main")
        # The bloat estimate has its widths now (the plain role above had none).
        collector = state.targets["main"].collectors["indexes"]
        assert collector._widths
    finally:
        await state.close()
        run_sql(pg_database, f'DROP OWNED BY "{role}"', f'DROP ROLE "{role}"')
