"""replication: a real streaming standby; lag seen from both sides while replay is paused."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest
import yaml

from tests.fixtures.pg import run_sql


@pytest.mark.pg_versions("15", "18")
async def test_primary_and_standby_lag(make_cluster, make_pg_state):
    primary = make_cluster()
    standby = make_cluster(standby_of=primary, settings={"cluster_name": "standby1"})
    on_primary = await make_pg_state(primary.dsn)
    on_standby = await make_pg_state(standby.dsn)
    run_sql(standby.dsn, "SELECT pg_wal_replay_pause()")
    payload = 2_000_000
    run_sql(primary.dsn, "CREATE TABLE filler (pad text)",
            f"INSERT INTO filler SELECT repeat(md5(g::text), 32) FROM generate_series(1, "
            f"{payload // 1024}) g")
    # Wait until the standby has received (not replayed) everything the primary wrote.
    primary_lsn = run_sql(primary.dsn, "SELECT pg_current_wal_lsn()::text")[0][0][0]
    for _ in range(100):
        received = run_sql(standby.dsn, "SELECT pg_wal_lsn_diff(pg_last_wal_receive_lsn(), "
                                        f"'{primary_lsn}') >= 0")[0][0][0]
        if received:
            break
        await asyncio.sleep(0.05)
    assert received
    # The pause takes effect at the next record replayed (14+: "pause requested" until
    # then), so part of the payload may be replayed first: measure what is left.
    for _ in range(100):
        if run_sql(standby.dsn, "SELECT pg_get_wal_replay_pause_state()")[0][0][0] == "paused":
            break
        await asyncio.sleep(0.05)
    behind = run_sql(standby.dsn, f"SELECT pg_wal_lsn_diff('{primary_lsn}', "
                                  "pg_last_wal_replay_lsn())")[0][0][0]
    assert behind > 0
    assert await on_primary.scrape("main", "replication") == "ok"
    assert await on_standby.scrape("main", "replication") == "ok"
    seen_by_primary = on_primary.replication("main")
    seen_by_standby = on_standby.replication("main")
    assert seen_by_primary["is_standby"] is False
    assert [s["standby"] for s in seen_by_primary["standbys"]] == ["standby1"]
    lag = seen_by_primary["standbys"][0]
    # The primary knows the replay position the standby last reported: never ahead.
    assert lag["replay_lag_bytes"] >= behind
    assert lag["replay_lag_bytes"] >= lag["flush_lag_bytes"] >= 0
    assert seen_by_standby["is_standby"] is True
    assert seen_by_standby["replay_lag_bytes"] >= behind
    assert seen_by_standby["replay_delay_seconds"] >= 0
    run_sql(standby.dsn, "SELECT pg_wal_replay_resume()")
    conn = await asyncpg.connect(standby.dsn)
    try:
        for _ in range(100):
            if await conn.fetchval("SELECT pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn()"):
                break
            await asyncio.sleep(0.05)
    finally:
        await conn.close()
    assert await on_standby.scrape("main", "replication") == "ok"
    caught_up = on_standby.replication("main")
    assert caught_up["replay_lag_bytes"] == 0 and caught_up["replay_delay_seconds"] == 0


def _rule_file(tmp_path: Path, alert: str) -> Path:
    """The shipped alert from alerts.yml with `for` cut to 0s (promtool tests the `for`)."""
    groups = yaml.safe_load((Path(__file__).resolve().parents[2] / "alerts.yml").read_text())
    rule = next(r for g in groups["groups"] for r in g["rules"] if r.get("alert") == alert)
    path = tmp_path / "rule.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "t", "rules": [
        {**rule, "for": "0s"}]}]}))
    return path


async def _caught_up(primary_dsn: str, standby_dsn: str) -> None:
    lsn = run_sql(primary_dsn, "SELECT pg_current_wal_lsn()::text")[0][0][0]
    for _ in range(200):
        done = run_sql(standby_dsn, "SELECT pg_wal_lsn_diff(pg_last_wal_replay_lsn(), "
                                    f"'{lsn}') >= 0")[0][0][0]
        if done:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("standby never caught up")


@pytest.mark.pg_versions("15", "18")
async def test_cut_off_standby_shows_growing_delay_and_fires(
        make_cluster, make_pg_state, make_config, serve_metricsd, make_prometheus, tmp_path):
    primary = make_cluster()
    # A slot nobody uses: it must show up inactive, holding the WAL written after it.
    run_sql(primary.dsn, "SELECT pg_create_physical_replication_slot('parked', true)")
    standby = make_cluster(standby_of=primary, settings={"cluster_name": "standby1"})
    run_sql(primary.dsn, "CREATE TABLE filler AS SELECT repeat(md5(g::text), 32) AS pad "
                         "FROM generate_series(1, 2000) g")
    await _caught_up(primary.dsn, standby.dsn)
    on_primary = await make_pg_state(primary.dsn)
    on_standby = await make_pg_state(standby.dsn)
    assert await on_primary.scrape("main", "replication") == "ok"
    assert await on_standby.scrape("main", "replication") == "ok"
    seen = on_primary.replication("main")
    assert [s["standby"] for s in seen["standbys"]] == ["standby1"]
    assert [(s["slot"], s["active"]) for s in seen["slots"]] == [("parked", False)]
    assert seen["slots"][0]["retained_bytes"] >= 2000 * 1024
    streaming = on_standby.replication("main")
    assert streaming["wal_receiver_status"] == "streaming"
    # Caught up: 0, or (when a WAL record arrived a moment ago) well under a second or two.
    assert streaming["replay_delay_seconds"] < 5
    assert streaming["wal_receiver_last_message_age_seconds"] < 30
    config = make_config({"postgres": {"scrape_interval": "1s", "targets": [
        {"name": "replica", "dsn": standby.dsn}]}})
    address = await serve_metricsd(config)
    prometheus = await make_prometheus(
        [address], rule_files=[_rule_file(tmp_path, "PostgresStandbyDisconnected")])
    await prometheus.wait_for('metricsd_pg_replication_wal_receiver_streaming == 1', bool, 30)
    await asyncio.to_thread(primary.stop)
    assert await on_standby.scrape("main", "replication") == "ok"
    # The primary, back without its standby: the standby is reported missing, not forgotten.
    standby.stop()
    await asyncio.to_thread(primary.start)
    assert await on_primary.scrape("main", "replication") == "ok"
    assert on_primary.replication("main")["missing_standbys"] == ["standby1"]
    assert on_primary.replication("main")["standbys"] == []
    primary.stop()
    await asyncio.to_thread(standby.start)
    assert await on_standby.scrape("main", "replication") == "ok"
    first = on_standby.replication("main")
    await asyncio.sleep(1.5)
    assert await on_standby.scrape("main", "replication") == "ok"
    second = on_standby.replication("main")
    assert first["wal_receiver_status"] != "streaming"
    assert on_standby.up("main")  # the standby itself answers
    assert 0 < first["replay_delay_seconds"] < second["replay_delay_seconds"]
    assert second["replay_delay_seconds"] - first["replay_delay_seconds"] >= 1.0
    await prometheus.wait_for(
        'ALERTS{alertname="PostgresStandbyDisconnected", alertstate="firing", '
        'target="replica"}', bool, 30)
