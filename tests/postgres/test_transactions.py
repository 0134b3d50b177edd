"""transactions: the oldest open transactions, ranked, with pid, state, wait event, query."""

from __future__ import annotations

import asyncio

import asyncpg

from tests.postgres.views import values


async def test_oldest_transactions_ranked_with_details(pg_database, make_pg_state):
    state = await make_pg_state(pg_database, long_transactions=2)
    old = await asyncpg.connect(pg_database, server_settings={"application_name": "old-tx"})
    mid = await asyncpg.connect(pg_database, server_settings={"application_name": "mid-tx"})
    new = await asyncpg.connect(pg_database, server_settings={"application_name": "new-tx"})
    try:
        await old.execute("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1)")
        tx_old = old.transaction()
        await tx_old.start()
        await old.execute("UPDATE t SET id = 1 WHERE id = 1 /* the oldest one */")
        await asyncio.sleep(0.3)
        tx_mid = mid.transaction()
        await tx_mid.start()
        # Blocked on the row `old` updated: active, waiting on a transactionid lock.
        blocked = asyncio.create_task(mid.execute("UPDATE t SET id = 1 WHERE id = 1"))
        await asyncio.sleep(0.3)
        tx_new = new.transaction()
        await tx_new.start()
        await new.fetchval("SELECT 1")
        old_pid, mid_pid = old.get_server_pid(), mid.get_server_pid()
        await asyncio.sleep(0.2)
        assert await state.scrape("main", "transactions") == "ok"
        data = state.latest("main", "transactions").data
        # Only two ranks (long_transactions=2), and the count of all open ones beside.
        assert [t.pid for t in data.transactions] == [old_pid, mid_pid]
        assert data.open >= 3
        first, second = data.transactions
        assert first.state == "idle in transaction" and first.application == "old-tx"
        assert "the oldest one" in first.query
        assert second.state == "active"
        assert (second.wait_event_type, second.wait_event) == ("Lock", "transactionid")
        assert first.age_s > second.age_s >= 0.3
        ages = values(state, "transactions", "metricsd_pg_transactions_age_seconds")
        assert ages == {(("rank", "1"),): first.age_s, (("rank", "2"),): second.age_s}
        info = values(state, "transactions", "metricsd_pg_transactions_info")
        assert len(info) == 2
        labels = dict(next(k for k in info if dict(k)["rank"] == "2"))
        assert labels["pid"] == str(mid_pid) and labels["wait_event"] == "transactionid"
        await tx_old.rollback()
        await blocked
        await tx_mid.rollback()
        await tx_new.rollback()
        assert await state.scrape("main", "transactions") == "ok"
        left = {t.application for t in state.latest("main", "transactions").data.transactions}
        assert not left & {"old-tx", "mid-tx", "new-tx"}
    finally:
        for conn in (old, mid, new):
            await conn.close()


async def test_metricsd_sessions_are_not_counted(pg_database, make_pg_state):
    state = await make_pg_state(pg_database)
    # metricsd's own pool runs other collectors concurrently; none of that shows up.
    statuses = await asyncio.gather(*(state.scrape("main", c) for c in
                                      ("activity", "database", "transactions")))
    assert set(statuses) == {"ok"}
    apps = {t.application for t in state.latest("main", "transactions").data.transactions}
    assert "metricsd" not in apps


def test_oldest_merges_targets_and_filters_by_age():
    from metricsd.postgres.transactions import Transaction, TransactionsData, oldest

    def tx(pid: int, age: float) -> Transaction:
        return Transaction(rank=0, pid=pid, datname="d", user="u", application="a",
                           state="idle in transaction", wait_event_type="", wait_event="",
                           age_s=age, state_s=None, started_at=None, xmin_age=None, query="")

    class Target:
        def __init__(self, name: str, data: TransactionsData | None) -> None:
            self.name, self._data = name, data

        def data(self, collector: str) -> TransactionsData | None:
            assert collector == "transactions"
            return self._data

    targets = [Target("a", TransactionsData((tx(1, 9.0), tx(2, 0.05)), 2)),
               Target("b", TransactionsData((tx(3, 4.0),), 1)), Target("down", None)]
    assert [(r["target"], r["pid"]) for r in oldest(targets, 10)] == [
        ("a", 1), ("b", 3), ("a", 2)]
    assert [r["pid"] for r in oldest(targets, 10, min_age_s=0.5)] == [1, 3]
    assert [r["pid"] for r in oldest(targets, 1)] == [1]
