"""PgBouncer: a real pgbouncer with pool_size 2 under six concurrent clients."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import pytest

from metricsd.config import PgBouncerConfig
from metricsd.export.registry import Registry
from metricsd.pgbouncer.state import PgBouncerState
from tests.postgres.views import dbname

CLIENTS = 6
POOL_SIZE = 2
SLEEP_S = 1.5


@pytest.fixture
async def make_state():
    states: list[PgBouncerState] = []

    def factory(**targets: str) -> PgBouncerState:
        config = PgBouncerConfig.model_validate(
            {"targets": [{"name": n, "dsn": d} for n, d in targets.items()],
             "scrape_timeout": "5s"})
        states.append(PgBouncerState(config))
        return states[-1]

    yield factory
    for state in states:
        await state.close()


async def _until(check, limit_s: float = 10.0) -> None:
    deadline = time.monotonic() + limit_s
    while not await check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def test_load_over_pool_size_shows_waiting_clients(pg_database, make_bouncer,
                                                         make_state):
    bouncer = make_bouncer({"app": dbname(pg_database)}, pool_size=POOL_SIZE,
                           max_client_conn=20)
    state = make_state(edge=bouncer.console)
    registry = Registry()
    registry.add_source(state)
    get = registry.get_sample_value
    pool = {"target": "edge", "database": "app", "user": "postgres"}
    assert await state.scrape("edge") == "ok", state.targets["edge"].message
    assert get("metricsd_pgbouncer_up", {"target": "edge"}) == 1
    assert get("metricsd_pgbouncer_max_client_connections", {"target": "edge"}) == 20
    # Transaction pooling: asyncpg must not keep prepared statements across transactions.
    clients = [await asyncpg.connect(bouncer.dsn("app"), statement_cache_size=0)
               for _ in range(CLIENTS)]
    try:
        assert await state.scrape("edge") == "ok"
        assert get("metricsd_pgbouncer_pool_size", pool) == POOL_SIZE
        idle = get("metricsd_pgbouncer_pool_clients", {**pool, "state": "active"})
        assert idle == CLIENTS  # connected, not in a transaction: "active" to PgBouncer
        load = [asyncio.create_task(c.execute(f"SELECT pg_sleep({SLEEP_S})"))
                for c in clients]

        async def all_queued() -> bool:
            await state.scrape("edge")
            return get("metricsd_pgbouncer_pool_clients",
                       {**pool, "state": "waiting"}) == CLIENTS - POOL_SIZE

        await _until(all_queued)
        await asyncio.sleep(0.3)
        assert await state.scrape("edge") == "ok"
        assert get("metricsd_pgbouncer_pool_clients",
                   {**pool, "state": "waiting"}) == CLIENTS - POOL_SIZE
        assert get("metricsd_pgbouncer_pool_servers", {**pool, "state": "active"}) == POOL_SIZE
        assert get("metricsd_pgbouncer_pool_utilization_ratio", pool) == 1.0
        assert get("metricsd_pgbouncer_pool_max_wait_seconds", pool) >= 0.3
        own = 1  # metricsd's own console connection is a client too
        assert get("metricsd_pgbouncer_clients", {"target": "edge"}) == CLIENTS + own
        assert get("metricsd_pgbouncer_client_utilization_ratio",
                   {"target": "edge"}) == pytest.approx((CLIENTS + own) / 20)
        [mine] = [p for p in state.pools("edge") if p["database"] == "app"]
        assert (mine["clients_waiting"], mine["servers_active"]) == (CLIENTS - POOL_SIZE,
                                                                     POOL_SIZE)
        await asyncio.gather(*load)
    finally:
        for c in clients:
            await c.close()
    # Six 1.5 s sleeps through two connections: three rounds, so clients waited for
    # 2 * 1.5 s (two clients) + 2 * 3 s (two more) = 9 s in all; SHOW STATS' totals lag
    # by up to stats_period (1 s).
    database = {"target": "edge", "database": "app"}

    async def stats_settled() -> bool:
        await state.scrape("edge")
        return (get("metricsd_pgbouncer_transactions_total", database) or 0) >= CLIENTS

    await _until(stats_settled)
    waited = get("metricsd_pgbouncer_wait_time_seconds_total", database)
    assert 2 * SLEEP_S * 3 * 0.9 <= waited <= 2 * SLEEP_S * 3 * 1.5
    assert get("metricsd_pgbouncer_query_time_seconds_total", database) >= CLIENTS * SLEEP_S
    assert get("metricsd_pgbouncer_pool_clients", {**pool, "state": "waiting"}) == 0
    assert get("metricsd_pgbouncer_pool_utilization_ratio", pool) == 0.0
    assert get("metricsd_pgbouncer_database_current_connections", database) == POOL_SIZE


async def test_console_down_is_a_status_and_drops_series(make_state, caplog):
    from tests.fixtures.pgcluster import free_port

    state = make_state(gone=f"postgresql://x@127.0.0.1:{free_port()}/pgbouncer")
    registry = Registry()
    registry.add_source(state)
    for _ in range(3):
        assert await state.scrape("gone") == "connection_error"
    assert registry.get_sample_value("metricsd_pgbouncer_up", {"target": "gone"}) == 0
    assert registry.get_sample_value("metricsd_pgbouncer_scrape_errors_total",
                                     {"target": "gone", "kind": "connection_error"}) == 3
    assert registry.get_sample_value("metricsd_pgbouncer_clients", {"target": "gone"}) is None
    assert state.readiness("gone")["ok"] is False
    assert sum("pgbouncer target gone" in r.getMessage() for r in caplog.records) == 1
