"""metricsd.postgres.targets: backoff, session settings on our own connections, version gates."""

from __future__ import annotations

import asyncpg
import pytest

from metricsd.postgres.targets import Backoff


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_backoff_doubles_up_to_the_cap_and_resets():
    clock = Clock()
    backoff = Backoff(1.0, 5.0, clock)
    assert backoff.open()
    delays = []
    for _ in range(5):
        backoff.failed()
        delays.append(backoff.retry_at - clock.now)
    assert delays == [1.0, 2.0, 4.0, 5.0, 5.0]
    assert not backoff.open()
    clock.now += 5.0
    assert backoff.open()
    backoff.succeeded()
    backoff.failed()
    assert backoff.retry_at - clock.now == 1.0


def test_backoff_stays_at_the_cap_after_any_number_of_failures():
    """A target down for an hour fails thousands of times: 2 ** 1024 must not overflow."""
    clock = Clock()
    backoff = Backoff(0.5, 30.0, clock)
    for _ in range(5000):
        backoff.failed()
    assert backoff.retry_at - clock.now == 30.0


async def test_sessions_carry_name_and_timeouts(pg_database, make_pg_state):
    state = await make_pg_state(pg_database, statement_timeout="2500ms", lock_timeout="750ms")
    target = state.targets["main"].pg
    async with target.connection() as conn:
        row = await conn.fetchrow(
            "SELECT current_setting('application_name') AS app,"
            " current_setting('statement_timeout') AS st,"
            " current_setting('lock_timeout') AS lt")
        pid = await conn.fetchval("SELECT pg_backend_pid()")
    assert (row["app"], row["st"], row["lt"]) == ("metricsd", "2500ms", "750ms")
    assert target.connect_seconds is not None and target.connect_seconds > 0
    # Seen by another session: the name is what lets a DBA find metricsd's sessions.
    other = await asyncpg.connect(pg_database)
    try:
        name = await other.fetchval(
            "SELECT application_name FROM pg_stat_activity WHERE pid = $1", pid)
    finally:
        await other.close()
    assert name == "metricsd"


async def test_too_old_server_is_a_skip_not_an_error(pg_database, make_pg_state):
    state = await make_pg_state(pg_database)
    collector = state.targets["main"].collectors["tables"]
    # Fake only the version we lack: pretend the collector needs PostgreSQL 99.
    collector.min_server_version = 990000
    assert await state.scrape("main", "tables") == "unsupported_version"
    assert await state.scrape("main", "activity") == "ok"
    assert state.up("main")
    assert state.latest("main", "tables") is None
    assert sum(state.targets["main"].health["tables"].errors.values()) == 0


async def test_overview_for_the_page(pg_database, make_pg_state):
    state = await make_pg_state(pg_database)
    conn = await asyncpg.connect(pg_database)
    try:
        await conn.execute("CREATE TABLE t (id int PRIMARY KEY, v int); CREATE INDEX t_v ON t (v)")
        await state.scrape_all()
        await conn.fetch("SELECT * FROM t WHERE v = 1")
        await state.scrape_all()
    finally:
        await conn.close()
    page = state.overview()
    assert page["targets"] == [{"name": "main", "up": True, "error": None}]
    assert page["connections"] == state.connections("main")["connections"]
    assert page["max_connections"] == state.connections("main")["max_connections"]
    assert [i["index"] for i in page["unused_indexes"]] == ["t_v"]
    assert page["invalid_indexes"] == []
    assert page["statements"] and all("query" in s and "slow" in s for s in page["statements"])
    means = [s["mean_seconds"] for s in page["statements"]]
    assert means == sorted(means, reverse=True)
    assert page["mean_statement_seconds"] > 0


@pytest.mark.parametrize("bad", [{"collectors": {"nope": True}},
                                 {"targets": [{"name": "a", "dsn": "x",
                                               "collectors": {"statement": False}}]}])
def test_unknown_collector_names_are_rejected(make_config, bad):
    from metricsd.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown collector"):
        make_config({"postgres": bad})


def test_every_family_is_documented_with_its_labels():
    """docs/metrics.md is the contract the alert rules and dashboards are built on."""
    from pathlib import Path

    from metricsd.config import PostgresConfig
    from metricsd.postgres.exporter import PgExporter
    from metricsd.postgres.state import PgState

    docs = Path(__file__).resolve().parents[2].joinpath("docs", "metrics.md").read_text()
    rows = {line.split("|")[1].strip().strip("`"): line.split("|")
            for line in docs.splitlines() if line.startswith("| `metricsd_pg_")}
    exporter = PgExporter(PgState(PostgresConfig()))
    for family in exporter.families:
        (column,) = family.columns
        sample = family.name + column.suffix
        assert sample in rows, sample
        kind, labels = rows[sample][2].strip(), rows[sample][3]
        assert kind == family.type, sample
        documented = {label.strip() for label in labels.split(",")} - {"same", ""}
        if "same" not in labels:
            assert documented == set(family.labels), sample
