"""GET /v1/postgres/activity and the page's long-transaction table, against a real server."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest

from metricsd.postgres import PG_STATE
from tests.web.test_pg_api import pg_client  # noqa: F401  (fixture)


async def test_activity_json_and_page_show_the_open_transaction_and_blocker(
        pg_client, pg_database):  # noqa: F811
    state = pg_client.app[PG_STATE]
    marker = f"m{uuid.uuid4().hex[:8]}"
    holder = await asyncpg.connect(pg_database, server_settings={"application_name": "holder"})
    waiter = await asyncpg.connect(pg_database)
    try:
        await holder.execute("CREATE TABLE t (id int)")
        tx = holder.transaction()
        await tx.start()
        await holder.execute(f"LOCK TABLE t IN ACCESS EXCLUSIVE MODE /* {marker} <b> */")
        wait = asyncio.create_task(waiter.execute("SELECT * FROM t"))
        await asyncio.sleep(0.3)
        await state.scrape_all()
        response = await pg_client.get("/v1/postgres/activity?limit=5")
        assert response.status == 200
        body = await response.json()
        mine = [t for t in body["long_transactions"] if marker in t["query"]]
        assert len(mine) == 1 and mine[0]["pid"] == holder.get_server_pid()
        assert mine[0]["target"] == "main" and mine[0]["state"] == "idle in transaction"
        chain = body["blocking"]["main"]
        assert chain["blocked_sessions"] == 1
        assert [r["pid"] for r in chain["roots"]] == [holder.get_server_pid()]
        assert body["connections"]["main"]["connections"] >= 2
        page = await (await pg_client.get("/")).text()
        assert "Long-running transactions" in page
        assert f"{marker} &lt;b&gt;" in page  # the query text, escaped
        await tx.rollback()
        await wait
    finally:
        await holder.close()
        await waiter.close()


@pytest.mark.parametrize("query", ["limit=0", "limit=x", "limit=%C2%B2", "limit=10001",
                                   "target=nope"])
async def test_activity_rejects_bad_parameters(pg_client, query):  # noqa: F811
    response = await pg_client.get(f"/v1/postgres/activity?{query}")
    assert response.status in (400, 404)
    assert "limit" in response.reason or "target" in response.reason
