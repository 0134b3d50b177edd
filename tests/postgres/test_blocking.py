"""blocking: a chain a <- b <- c and a pair d <- e, as pg_blocking_pids sees them."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from metricsd.postgres.blocking import chains
from tests.postgres.views import values


async def _waiting(conn: asyncpg.Connection, pid: int) -> bool:
    return bool(await conn.fetchval(
        "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $1", pid))


async def test_chain_and_pair_show_who_blocks_whom(pg_database, make_pg_state):
    state = await make_pg_state(pg_database)
    conns = {n: await asyncpg.connect(pg_database, server_settings={"application_name": n})
             for n in "abcde"}
    admin = await asyncpg.connect(pg_database)
    pid = {n: c.get_server_pid() for n, c in conns.items()}
    waits = []
    try:
        await admin.execute("CREATE TABLE t1 (); CREATE TABLE t2 (); CREATE TABLE t3 ()")
        assert await state.scrape("main", "blocking") == "ok"
        assert state.latest("main", "blocking").data.sessions == ()
        txs = {n: c.transaction() for n, c in conns.items()}
        for tx in txs.values():
            await tx.start()
        await conns["a"].execute("LOCK TABLE t1 IN ACCESS EXCLUSIVE MODE")
        await conns["b"].execute("LOCK TABLE t2 IN ACCESS EXCLUSIVE MODE")
        await conns["d"].execute("LOCK TABLE t3 IN ACCESS EXCLUSIVE MODE")
        for name, table in (("b", "t1"), ("c", "t2"), ("e", "t3")):
            waits.append(asyncio.create_task(
                conns[name].execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE /* {name} */")))
            for _ in range(100):
                if await _waiting(admin, pid[name]):
                    break
                await asyncio.sleep(0.02)
        await asyncio.sleep(0.2)
        assert await state.scrape("main", "blocking") == "ok"
        data = state.latest("main", "blocking").data
        by_pid = {s.pid: s for s in data.sessions}
        assert set(by_pid) == set(pid.values())
        assert by_pid[pid["b"]].blocked_by == (pid["a"],)
        assert by_pid[pid["c"]].blocked_by == (pid["b"],)
        assert by_pid[pid["e"]].blocked_by == (pid["d"],)
        assert by_pid[pid["a"]].blocked_by == () and by_pid[pid["d"]].blocked_by == ()
        assert "/* c */" in by_pid[pid["c"]].query
        assert by_pid[pid["c"]].wait_s >= 0.2
        assert [(r.pid, r.blocked, r.depth) for r in data.roots] == [
            (pid["a"], 2, 2), (pid["d"], 1, 1)]
        get = {k: values(state, "blocking", f"metricsd_pg_blocking_{k}")[()]
               for k in ("blocked_sessions", "roots", "max_depth", "longest_wait_seconds")}
        assert get["blocked_sessions"] == 3 and get["roots"] == 2 and get["max_depth"] == 2
        assert get["longest_wait_seconds"] >= 0.2
        ranked = values(state, "blocking", "metricsd_pg_blocking_root_blocked_sessions")
        assert ranked == {(("rank", "1"),): 2, (("rank", "2"),): 1}
        info = values(state, "blocking", "metricsd_pg_blocking_root_info")
        assert {dict(k)["application"]: dict(k)["rank"] for k in info} == {"a": "1", "d": "2"}
        # Releasing the roots lets b and e through; c still waits on b until b ends.
        await txs["a"].rollback()
        await txs["d"].rollback()
        await asyncio.gather(waits[0], waits[2])
        assert await state.scrape("main", "blocking") == "ok"
        data = state.latest("main", "blocking").data
        assert [(r.pid, r.blocked, r.depth) for r in data.roots] == [(pid["b"], 1, 1)]
        await txs["b"].rollback()
        await waits[1]
        for name in "ce":
            await txs[name].rollback()
        assert await state.scrape("main", "blocking") == "ok"
        assert values(state, "blocking", "metricsd_pg_blocking_blocked_sessions")[()] == 0
    finally:
        for task in waits:
            task.cancel()
        for conn in (*conns.values(), admin):
            conn.terminate()


@pytest.mark.parametrize(("edges", "roots"), [
    ({}, []),
    ({2: (1,)}, [(1, 1, 1)]),
    ({2: (1,), 3: (1,), 4: (3,)}, [(1, 3, 2)]),
    ({2: (1, 5), 3: (2,)}, [(1, 2, 2), (5, 2, 2)]),  # two blockers of one waiter
    ({1: (2,), 2: (1,)}, []),  # a deadlock not yet broken: no root
    ({1: (2,), 2: (1,), 3: (1,)}, []),
])
def test_chains(edges, roots):
    assert [(r.pid, r.blocked, r.depth) for r in chains(edges)] == roots
