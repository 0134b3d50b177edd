"""activity: the connections a test opens are counted by state; utilisation matches."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest


async def test_connections_by_state_and_utilization(pg_database, make_pg_state):
    app = f"metricsd-test-{uuid.uuid4().hex[:8]}"
    conns = [await asyncpg.connect(pg_database, server_settings={"application_name": app})
             for _ in range(5)]
    admin = await asyncpg.connect(pg_database)
    state = await make_pg_state(pg_database)
    try:
        open_tx = []
        for conn in conns[:2]:  # two sessions idle inside a transaction
            tx = conn.transaction()
            await tx.start()
            await conn.fetchval("SELECT 1")
            open_tx.append(tx)
        await asyncio.sleep(0.3)
        # What the server says right before the scrape, from the test's own session.
        limit = await admin.fetchval(
            "SELECT current_setting('max_connections')::int"
            " - current_setting('superuser_reserved_connections')::int")
        await state.scrape("main", "replication")  # makes sure metricsd's pool is connected
        clients = await admin.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'")
        assert await state.scrape("main", "activity") == "ok"
        for tx in open_tx:
            await tx.rollback()
    finally:
        for conn in (*conns, admin):
            await conn.close()
    data = state.connections("main")
    mine = {row["state"]: row["count"] for row in data["by_state"] if row["application"] == app}
    assert mine == {"idle": 3, "idle in transaction": 2}
    assert data["idle_in_transaction"] >= 2
    assert data["max_connections"] == limit
    assert data["connections"] == clients
    assert data["utilization"] == pytest.approx(clients / limit)
    assert data["oldest_transaction_seconds"] >= 0.3


def test_rare_application_names_are_folded():
    from metricsd.postgres.activity import fold_applications

    rows = [("db", f"app{i}", "idle", 1) for i in range(5)] + [("db", "web", "idle", 9),
                                                               ("db", "web", "active", 2)]
    folded = fold_applications(rows, limit=2)
    assert sum(n for *_, n in folded) == sum(n for *_, n in rows)
    assert {app for _, app, _, _ in folded} == {"web", "app0", "other"}
    assert ("db", "other", "idle", 4) in folded
