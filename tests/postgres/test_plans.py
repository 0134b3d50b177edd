"""Plans of slow statements on a real PostgreSQL: generic plans, hypopg-checked index
advice, plan changes with their effect on the mean, regressions, remembered failures."""

from __future__ import annotations

import uuid

import asyncpg
import pytest

from metricsd.config import PostgresConfig
from metricsd.postgres.plans import PlansService
from metricsd.postgres.plans.shape import shape_hash
from tests.fixtures.binaries import in_ci
from tests.fixtures.pg import run_sql

ROWS = 60_000
# docs/plans.md promises this much server time per plan fetched (advice included) at most.
PLAN_COST_BUDGET_MS = 25.0
OWN_PLAN_WORK_SQL = """
SELECT coalesce(sum(calls), 0) AS calls,
       coalesce(sum(total_exec_time + total_plan_time), 0) AS ms
FROM pg_stat_statements
WHERE query LIKE 'PREPARE metricsd_plan_%' OR query LIKE 'EXPLAIN (FORMAT JSON) EXECUTE%'
   OR query LIKE 'DEALLOCATE metricsd_plan_%' OR query LIKE 'EXPLAIN (GENERIC_PLAN%'
   OR query LIKE '%hypopg%' OR query LIKE 'SET LOCAL plan_cache_mode%'
   OR query LIKE 'SET LOCAL statement_timeout%'
"""


class FakeClock:
    def __init__(self, start: float = 2_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


def _hypopg_available(dsn: str) -> bool:
    rows = run_sql(dsn, "SELECT count(*) AS n FROM pg_available_extensions"
                        " WHERE name = 'hypopg'")[0]
    return bool(rows[0]["n"])


def _orders(pg_database: str) -> str:
    run_sql(
        pg_database,
        "CREATE TABLE orders (id bigserial PRIMARY KEY, customer_id int NOT NULL,"
        " status text NOT NULL, created timestamptz NOT NULL, note text)",
        f"INSERT INTO orders (customer_id, status, created, note) SELECT i % 5000,"
        f" (ARRAY['new','paid','sent'])[1 + i % 3], now() - i * interval '1 minute',"
        f" repeat('x', 40) FROM generate_series(1, {ROWS}) AS i",
        "ANALYZE orders",
    )
    return pg_database


@pytest.fixture
def orders_db(pg_database: str) -> str:
    """A database with hypopg and an unindexed `orders` table large enough for a slow
    seq scan (hypopg comes from Debian's postgresql-15-hypopg: PostgreSQL 15 only)."""
    if not _hypopg_available(pg_database):
        if in_ci():
            pytest.fail("hypopg is not installed (Debian postgresql-15-hypopg; make sysdeps)")
        pytest.skip("hypopg is not installed (Debian postgresql-15-hypopg; make sysdeps)")
    run_sql(pg_database, "CREATE EXTENSION hypopg")
    return _orders(pg_database)


@pytest.fixture
def orders_db_plain(pg_database: str) -> str:
    """The same table without hypopg (any version)."""
    return _orders(pg_database)


async def _state(make_pg_state, dsn: str, clock: FakeClock, **plans: object):
    config = {"slow_query_ms": 0.5, "plans": {"refresh_interval": 0, "per_round": 5,
                                               "regression_min_calls": 5, **plans}}
    state = await make_pg_state(dsn, clock=clock, **config)
    service = PlansService(state, PostgresConfig.model_validate(
        {"targets": [{"name": "main", "dsn": dsn}], **config}), clock=clock)
    return state, service


async def _round(state, service, clock: FakeClock, work) -> None:
    """One interval: run the workload, scrape statements, run the plans job."""
    await work()
    clock.now += 15.0
    assert await state.scrape("main", "statements") == "ok"
    await service.run("main")


async def _lookup(conn: asyncpg.Connection, marker: str, times: int) -> None:
    for i in range(times):
        await conn.fetch(f"SELECT id, status /* {marker} */ FROM orders"
                         f" WHERE customer_id = $1", i % 5000)


def _tracked(service: PlansService, marker: str):
    found = [t for t in service.trackers["main"].tracked.values() if marker in t.query]
    assert len(found) == 1, [t.query for t in service.trackers["main"].tracked.values()]
    return found[0]


@pytest.mark.pg_versions("15")
async def test_missing_index_plan_advice_then_faster_plan_then_regression(
        orders_db, make_pg_state):
    clock = FakeClock()
    state, service = await _state(make_pg_state, orders_db, clock)
    marker = f"m{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(orders_db)
    try:
        assert await state.scrape("main", "statements") == "ok"  # baseline
        await _round(state, service, clock, lambda: _lookup(conn, marker, 20))
        tracked = _tracked(service, marker)
        assert tracked.current is not None, tracked.failure
        nodes = [n["node_type"] for n in tracked.current.as_dict()["nodes"]]
        assert "Seq Scan" in nodes and "Index Scan" not in nodes
        seq_hash = tracked.current.hash
        # Advice: an index on customer_id, verified by hypopg with a lower estimated cost.
        assert tracked.advice, "expected index advice for a seq scan on orders"
        advice = tracked.advice[0]
        assert advice["table"] == "orders" and advice["columns"] == ["customer_id"]
        assert advice["create_sql"] == \
            "CREATE INDEX CONCURRENTLY ON public.orders (customer_id);"
        assert advice["verified"] is True, advice
        assert advice["cost_after"] < advice["cost_before"] / 10
        assert advice["estimated_size_bytes"] > 100_000
        # No index was created by metricsd.
        assert run_sql(orders_db, "SELECT count(*) AS n FROM pg_indexes"
                                  " WHERE tablename = 'orders'")[0][0]["n"] == 1

        # The DBA creates the index: the plan's shape changes and the statement is faster.
        run_sql(orders_db, "CREATE INDEX orders_customer ON orders (customer_id)",
                "ANALYZE orders")
        for _ in range(2):
            await _round(state, service, clock, lambda: _lookup(conn, marker, 30))
        assert tracked.current.hash != seq_hash
        change = tracked.changes[-1]
        assert change.old.hash == seq_hash and change.new.hash == tracked.current.hash
        assert change.mean_after_s is not None and change.mean_before_s is not None
        assert change.mean_after_s < change.mean_before_s
        assert not change.regression
        assert service.trackers["main"].changes_total == 1

        # The index goes away again: a plan change followed by a slowdown is a regression.
        run_sql(orders_db, "DROP INDEX orders_customer", "ANALYZE orders")
        for _ in range(2):
            await _round(state, service, clock, lambda: _lookup(conn, marker, 30))
        assert tracked.current.hash == seq_hash
        change = tracked.changes[-1]
        assert change.regression, change
        assert change.mean_after_s > 1.5 * change.mean_before_s
        gauges = {m.name: m for m in service.collect()}
        samples = gauges["metricsd_pg_statements_plan_regression"].samples
        assert len(samples) == 1 and marker in samples[0].labels["query"]
        assert samples[0].labels["queryid"] == tracked.key[2]

        # The budget: metricsd's own plan statements, as pg_stat_statements saw them.
        own = run_sql(orders_db, OWN_PLAN_WORK_SQL)[0][0]
        fetches = service.trackers["main"].outcomes["ok"]
        assert fetches >= 5 and own["calls"] > 0
        per_fetch_ms = own["ms"] / fetches
        assert per_fetch_ms < PLAN_COST_BUDGET_MS, (own, fetches)
    finally:
        await conn.close()


@pytest.mark.pg_versions("15", "18")  # the PREPARE path and the GENERIC_PLAN path
async def test_unplannable_statement_fails_once_and_is_remembered(pg_database, make_pg_state):
    clock = FakeClock()
    state, service = await _state(make_pg_state, pg_database, clock)
    marker = f"m{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(pg_database)

    async def work() -> None:
        for _ in range(5):  # constants become $n: `extract($1 FROM ..)` no longer parses
            await conn.execute(f"SELECT extract('year' FROM now()), pg_sleep(0.002) /* {marker} */")

    try:
        assert await state.scrape("main", "statements") == "ok"
        for _ in range(4):
            await _round(state, service, clock, work)
        tracked = _tracked(service, marker)
        assert tracked.current is None
        assert tracked.failure is not None and tracked.failure["sqlstate_class"] == "42"
        assert service.trackers["main"].outcomes["failed"] == 1  # not once per round
    finally:
        await conn.close()


@pytest.mark.pg_versions("15")
async def test_utility_statements_are_never_explained(pg_database, make_pg_state):
    clock = FakeClock()
    state, service = await _state(make_pg_state, pg_database, clock)
    marker = f"m{uuid.uuid4().hex[:8]}"
    run_sql(pg_database, f"CREATE TABLE {marker} (a int)",
            f"INSERT INTO {marker} SELECT generate_series(1, 20000)")
    conn = await asyncpg.connect(pg_database)

    async def work() -> None:
        for _ in range(3):
            await conn.execute(f"VACUUM {marker}")
            await conn.execute("SELECT pg_sleep(0.002)")

    try:
        assert await state.scrape("main", "statements") == "ok"
        await _round(state, service, clock, work)
        vacuum = [t for t in service.trackers["main"].tracked.values()
                  if t.query.startswith("VACUUM")]
        assert vacuum and vacuum[0].current is None
        assert service.trackers["main"].outcomes["skipped_utility"] >= 1
    finally:
        await conn.close()


def test_shape_hash_ignores_costs_but_not_node_types():
    plan = [{"Plan": {"Node Type": "Seq Scan", "Relation Name": "t", "Total Cost": 10.0,
                      "Plan Rows": 5}}]
    costlier = [{"Plan": {"Node Type": "Seq Scan", "Relation Name": "t", "Total Cost": 99.0,
                          "Plan Rows": 500}}]
    indexed = [{"Plan": {"Node Type": "Index Scan", "Relation Name": "t",
                         "Index Name": "t_a", "Total Cost": 10.0, "Plan Rows": 5}}]
    assert shape_hash(plan) == shape_hash(costlier)
    assert shape_hash(plan) != shape_hash(indexed)
    nested = [{"Plan": {"Node Type": "Hash Join", "Plans": [plan[0]["Plan"], indexed[0]["Plan"]]}}]
    swapped = [{"Plan": {"Node Type": "Hash Join", "Plans": [indexed[0]["Plan"], plan[0]["Plan"]]}}]
    assert shape_hash(nested) != shape_hash(swapped)


@pytest.mark.pg_versions("13", "16", "18")
async def test_generic_plans_on_every_method_without_hypopg(orders_db_plain, make_pg_state):
    """13: PREPARE + force_generic_plan; 16/18: EXPLAIN (GENERIC_PLAN) through plpgsql.
    The plan is generic (a scan of orders, not a constant-false Result from NULL values),
    the advice is unverified, and creating the index changes the plan's shape."""
    clock = FakeClock()
    state, service = await _state(make_pg_state, orders_db_plain, clock)
    marker = f"m{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(orders_db_plain)
    try:
        assert await state.scrape("main", "statements") == "ok"
        await _round(state, service, clock, lambda: _lookup(conn, marker, 20))
        tracked = _tracked(service, marker)
        assert tracked.current is not None, tracked.failure
        nodes = tracked.current.as_dict()["nodes"]
        assert any(n["node_type"] == "Seq Scan" and n["relation"] == "orders" for n in nodes)
        assert tracked.advice and tracked.advice[0]["columns"] == ["customer_id"]
        assert tracked.advice[0]["verified"] is None  # no hypopg: marked unverified
        before = tracked.current.hash
        run_sql(orders_db_plain, "CREATE INDEX orders_customer ON orders (customer_id)",
                "ANALYZE orders")
        await _round(state, service, clock, lambda: _lookup(conn, marker, 20))
        assert tracked.current.hash != before
        assert "orders_customer" in {n["index"] for n in tracked.current.as_dict()["nodes"]}
    finally:
        await conn.close()


HELPER_SQL = """
CREATE FUNCTION metricsd_generic_plan(statement text) RETURNS json
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE plan json;
BEGIN
  IF statement !~* '^\\s*(select|insert|update|delete|with)\\s' THEN
    RAISE EXCEPTION 'only SELECT/INSERT/UPDATE/DELETE can be explained';
  END IF;
  EXECUTE 'EXPLAIN (GENERIC_PLAN, FORMAT JSON) ' || statement INTO plan;
  RETURN plan;
END $$
"""


@pytest.mark.pg_versions("18")
async def test_security_definer_helper_plans_tables_the_role_cannot_read(
        orders_db_plain, make_pg_state):
    """The documented helper (docs/plans.md) lets a pg_monitor-only role get plans."""
    from urllib.parse import urlsplit, urlunsplit

    role = f"planner_{uuid.uuid4().hex[:6]}"
    run_sql(orders_db_plain, f"CREATE ROLE {role} LOGIN", f"GRANT pg_monitor TO {role}")
    parts = urlsplit(orders_db_plain)
    host = parts.netloc.rsplit("@", 1)[-1]
    limited = urlunsplit((parts.scheme, f"{role}@{host}", parts.path, parts.query, ""))
    marker = f"m{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(orders_db_plain)
    try:
        for with_helper in (False, True):
            if with_helper:
                run_sql(orders_db_plain, HELPER_SQL,
                        f"GRANT EXECUTE ON FUNCTION metricsd_generic_plan(text) TO {role}")
            clock = FakeClock()
            state, service = await _state(make_pg_state, limited, clock)
            assert await state.scrape("main", "statements") == "ok"
            await _round(state, service, clock, lambda: _lookup(conn, marker, 20))
            tracked = _tracked(service, marker)
            if not with_helper:  # no SELECT on orders: remembered as a privilege failure
                assert tracked.current is None and tracked.failure is not None
                assert tracked.failure["sqlstate"] == "42501", tracked.failure
            else:
                assert tracked.failure is None and tracked.current is not None
                assert "Seq Scan" in {n["node_type"] for n in tracked.current.as_dict()["nodes"]}
        assert run_sql(orders_db_plain, f"SELECT has_table_privilege('{role}', 'orders', "
                                        f"'SELECT') AS ok")[0][0]["ok"] is False
    finally:
        await conn.close()
