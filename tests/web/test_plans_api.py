"""The plans views, the EXPLAIN ANALYZE runner and the plan-regression alert, end to end:
a real PostgreSQL 15 with hypopg, the whole app, a real webhook receiver."""

from __future__ import annotations

import uuid
from pathlib import Path

import asyncpg
import pytest

from metricsd.alerting import ALERTS
from metricsd.app import create_app
from metricsd.postgres import PG_STATE, PLANS
from tests.alerting.conftest import Recorder, receiver_app
from tests.fixtures.pg import run_sql
from tests.postgres.test_plans import ROWS, orders_db  # noqa: F401  (fixture)

ALERTS_YML = Path(__file__).resolve().parents[2] / "alerts.yml"
TOKEN = "admin-secret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
async def plans_app(orders_db, make_config, aiohttp_client, aiohttp_server):  # noqa: F811
    recorder = Recorder()
    server = await aiohttp_server(receiver_app(recorder))
    recorder.url = str(server.make_url("/hook"))

    def build(allow_writes: bool = False):
        config = make_config({
            "admin": {"token": TOKEN},
            "postgres": {
                "scrape_interval": "1h", "slow_query_ms": 0.5,
                "targets": [{"name": "main", "dsn": orders_db}],
                "plans": {"refresh_interval": 0, "regression_min_calls": 5, "per_round": 20,
                          "explain_allow_writes": allow_writes},
            },
            "alerting": {
                "rules": str(ALERTS_YML), "evaluation_interval": "1h", "group_wait": "0s",
                "group_by": ["alertname", "queryid"],
                "receivers": [{"name": "oncall", "url": recorder.url}],
                "default_receiver": "oncall",
            },
        })
        return create_app(config)

    return build, recorder


async def _cycle(app, conn: asyncpg.Connection, marker: str, times: int = 30) -> None:
    for i in range(times):
        await conn.fetch(f"SELECT id /* {marker} */ FROM orders WHERE customer_id = $1", i)
    await app[PG_STATE].scrape("main", "statements")
    await app[PLANS].run("main")


async def test_views_runner_and_regression_alert(plans_app, orders_db, aiohttp_client):  # noqa: F811
    build, recorder = plans_app
    app = build()
    client = await aiohttp_client(app)
    marker = f"m{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(orders_db)
    try:
        await app[PG_STATE].scrape("main", "statements")
        await _cycle(app, conn, marker)
        tracked = next(t for t in app[PLANS].trackers["main"].tracked.values()
                   if marker in t.query)
        queryid = tracked.key[2]

        # JSON and page need admin auth; with it they show plan, advice and links.
        assert (await client.get("/v1/postgres/plans")).status == 401
        assert (await client.get(f"/plans?target=main&queryid={queryid}")).status == 401
        resp = await client.get(f"/v1/postgres/plans?target=main&queryid={queryid}",
                                headers=AUTH)
        assert resp.status == 200
        detail = (await resp.json())["statements"][0]
        assert detail["plan"]["nodes"][0]["node_type"] in ("Seq Scan", "Gather")
        assert detail["advice"][0]["verified"] is True
        # Without a statement the page lists what is tracked, each linked to its plan.
        index = await client.get(f"/plans?token={TOKEN}")
        index_text = await index.text()
        assert index.status == 200 and marker in index_text
        assert f"queryid={queryid}" in index_text
        page = await client.get(f"/plans?target=main&queryid={queryid}&token={TOKEN}")
        text = await page.text()
        assert page.status == 200 and "CREATE INDEX CONCURRENTLY ON public.orders" in text
        assert "Seq Scan on orders" in text and "<script" not in text
        listing = await (await client.get("/v1/postgres/statements?slow=true",
                                          headers=AUTH)).json()
        mine = [s for s in listing["statements"] if s["queryid"] == queryid]
        assert mine and mine[0]["plan_url"].endswith(f"queryid={queryid}")

        # The runner: admins only, reads run; writes refused unless allowed.
        body = {"target": "main", "queryid": queryid, "params": [7]}
        assert (await client.post("/v1/postgres/explain", json=body)).status == 401
        resp = await client.post("/v1/postgres/explain", json=body, headers=AUTH)
        assert resp.status == 200, await resp.text()
        result = await resp.json()
        assert result["rolled_back"] and result["nodes"][0]["actual_rows"] is not None
        update = {"target": "main", "query": "UPDATE orders SET note = 'changed' WHERE id < $1",
                  "params": [100]}
        resp = await client.post("/v1/postgres/explain", json=update, headers=AUTH)
        assert resp.status == 403 and (await resp.json())["reason"] == "writes_not_allowed"

        # Regression: index created (faster), then dropped (slower again) -> alert with text.
        run_sql(orders_db, "CREATE INDEX orders_customer ON orders (customer_id)",
                "ANALYZE orders")
        await _cycle(app, conn, marker)
        await _cycle(app, conn, marker)
        run_sql(orders_db, "DROP INDEX orders_customer", "ANALYZE orders")
        for _ in range(4):  # the change, then enough calls to judge it
            await _cycle(app, conn, marker)
            if tracked.changes and tracked.changes[-1].regression:
                break
        assert tracked.changes, app[PLANS].trackers["main"].outcomes
        assert tracked.changes[-1].regression, tracked.changes[-1]
        await app[ALERTS].evaluate_once()
        await recorder.wait_for(1, timeout=10)
        alerts = [a for body in recorder.bodies for a in body["alerts"]
                  if a["labels"]["alertname"] == "PostgresPlanRegression"]
        assert alerts, recorder.bodies
        assert marker in alerts[0]["labels"]["query"]
        assert marker in alerts[0]["annotations"]["summary"]
    finally:
        await conn.close()


async def test_runner_with_writes_allowed_always_rolls_back(plans_app, orders_db,  # noqa: F811
                                                            aiohttp_client):
    build, _ = plans_app
    client = await aiohttp_client(build(allow_writes=True))
    before = run_sql(orders_db, "SELECT count(*) AS n, sum(length(note)) AS s FROM orders")[0][0]
    update = {"target": "main", "query": "UPDATE orders SET note = 'changed' WHERE id < $1",
              "params": [1000]}
    resp = await client.post("/v1/postgres/explain", json=update, headers=AUTH)
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["nodes"][0]["node_type"] == "ModifyTable"
    after = run_sql(orders_db, "SELECT count(*) AS n, sum(length(note)) AS s FROM orders")[0][0]
    assert dict(after) == dict(before) and after["n"] == ROWS
    # Utility statements and garbage are refused with a reason, never run.
    for query in ("DROP TABLE orders", "VACUUM orders", "not sql at all"):
        resp = await client.post("/v1/postgres/explain", headers=AUTH,
                                 json={"target": "main", "query": query})
        assert resp.status == 400 and (await resp.json())["reason"] == "not_plannable"
    assert run_sql(orders_db, "SELECT count(*) AS n FROM orders")[0][0]["n"] == ROWS


async def test_plans_without_targets_say_so(make_config, aiohttp_client):
    """A new install has no target: the page explains, the API answers 404 with the reason."""
    client = await aiohttp_client(create_app(make_config({"admin": {"token": TOKEN}})))
    page = await client.get("/plans", headers=AUTH)
    assert page.status == 200 and "No PostgreSQL target is configured" in await page.text()
    resp = await client.get("/plans?queryid=1", headers=AUTH)
    assert resp.status == 404 and "no PostgreSQL target" in await resp.text()
    resp = await client.post("/v1/postgres/explain", json={"query": "SELECT 1"}, headers=AUTH)
    assert resp.status == 404 and (await resp.json())["reason"] == "bad_target"
    assert (await client.get("/v1/postgres/plans?target=x", headers=AUTH)).status == 404
