"""wraparound: XID and multixact ages follow the XIDs the test burns and a VACUUM FREEZE."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from metricsd.postgres.wraparound import WRAP_LIMIT
from tests.postgres.views import dbname, value

AGE_SQL = ("SELECT age(datfrozenxid)::int8 AS xid, mxid_age(datminmxid)::int8 AS mxid"
           " FROM pg_database WHERE datname = $1")


async def test_xid_age_follows_burned_xids_and_freeze(pg_database, make_pg_state):
    db = dbname(pg_database)
    state = await make_pg_state(pg_database)
    conn = await asyncpg.connect(pg_database)
    try:
        before = await conn.fetchrow(AGE_SQL, db)
        for _ in range(300):  # each autocommit txid_current() assigns one new XID
            await conn.fetchval("SELECT txid_current()")
        assert await state.scrape("main", "wraparound") == "ok"
        after = await conn.fetchrow(AGE_SQL, db)
        age = value(state, "wraparound", "metricsd_pg_wraparound_xid_age", datname=db)
        assert before["xid"] + 300 <= age <= after["xid"]
        assert value(state, "wraparound", "metricsd_pg_wraparound_xid_limit_ratio",
                     datname=db) == pytest.approx(age / 2**31)
        # Every database shares the XID counter: the maintenance database aged as well.
        assert value(state, "wraparound", "metricsd_pg_wraparound_xid_age",
                     datname="postgres") >= 300
        assert value(state, "wraparound", "metricsd_pg_wraparound_freeze_max_age") == int(
            await conn.fetchval("SHOW autovacuum_freeze_max_age"))
        # VACUUM FREEZE of every table moves datfrozenxid up to about now: the age drops.
        await conn.execute("VACUUM (FREEZE)")
        assert await state.scrape("main", "wraparound") == "ok"
        frozen = value(state, "wraparound", "metricsd_pg_wraparound_xid_age", datname=db)
        assert frozen < 300 <= age
        assert frozen == (await conn.fetchrow(AGE_SQL, db))["xid"]
    finally:
        await conn.close()


async def test_multixact_age_counts_shared_row_locks(pg_database, make_pg_state):
    db = dbname(pg_database)
    state = await make_pg_state(pg_database)
    a, b = await asyncpg.connect(pg_database), await asyncpg.connect(pg_database)
    try:
        await a.execute("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1)")
        assert await state.scrape("main", "wraparound") == "ok"
        before = value(state, "wraparound", "metricsd_pg_wraparound_multixact_age", datname=db)
        assert before == (await a.fetchrow(AGE_SQL, db))["mxid"]
        rounds = 25
        for _ in range(rounds):
            # Two transactions share-locking one row make a new multixact each round.
            txa, txb = a.transaction(), b.transaction()
            await txa.start()
            await txb.start()
            await asyncio.gather(a.execute("SELECT * FROM t FOR SHARE"),
                                 b.execute("SELECT * FROM t FOR SHARE"))
            await txa.commit()
            await txb.commit()
        assert await state.scrape("main", "wraparound") == "ok"
        after = value(state, "wraparound", "metricsd_pg_wraparound_multixact_age", datname=db)
        assert after - before >= rounds
        assert after == (await a.fetchrow(AGE_SQL, db))["mxid"]
        assert value(state, "wraparound", "metricsd_pg_wraparound_multixact_limit_ratio",
                     datname=db) == pytest.approx(after / WRAP_LIMIT)
    finally:
        await a.close()
        await b.close()
