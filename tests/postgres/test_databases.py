"""Several databases per target: per-database views labelled `datname`, server-wide ones once.

The clusters are real (tests/fixtures/pg.py); every test makes its own databases with a
unique prefix and points `include_databases` at it, so the databases other tests leave
behind on the session's cluster are never in the way.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import asyncpg
import pytest

from metricsd.app import create_app
from metricsd.config import PostgresConfig, TargetConfig
from metricsd.errors import ConfigError
from metricsd.export.registry import Registry, render
from metricsd.postgres.databases import select
from metricsd.postgres.exporter import PgExporter
from metricsd.postgres.state import PgState
from tests.fixtures.pg import PgServer, flush_stats, run_sql
from tests.postgres.test_failures import samples, wait_for

# The server-wide views whose series do not move while a test runs (no other session
# works on the cluster meanwhile): counted in the multi-database and the plain target.
STABLE_SERVER_WIDE = ("wraparound", "database_size", "checkpointer", "bgwriter", "archiver")
PER_DATABASE = ("tables", "indexes")


class Databases:
    """Databases of one test, `<prefix>_<name>`, each with a table and an index of its own."""

    def __init__(self, server: PgServer) -> None:
        self.server = server
        self.prefix = f"mdb_{uuid.uuid4().hex[:10]}"
        self.made: list[str] = []

    def name(self, short: str) -> str:
        return f"{self.prefix}_{short}"

    def dsn(self, short: str) -> str:
        return self.server.dsn_for(self.name(short))

    def create(self, short: str, extension: bool = False) -> str:
        """A database with table `t_<short>` (1000 rows) and index `t_<short>_v`."""
        name = self.name(short)
        run_sql(self.server.dsn, f'CREATE DATABASE "{name}"')
        self.made.append(name)
        statements = [
            f"CREATE TABLE t_{short} (id int PRIMARY KEY, v int)",
            f"CREATE INDEX t_{short}_v ON t_{short} (v)",
            f"INSERT INTO t_{short} SELECT g, g FROM generate_series(1, 1000) g",
            "ANALYZE",
        ]
        if extension:
            statements.insert(0, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        run_sql(self.dsn(short), *statements)
        return name

    def drop(self, short: str) -> None:
        run_sql(self.server.dsn, f'DROP DATABASE IF EXISTS "{self.name(short)}" WITH (FORCE)')

    def target(self, main: str = "a", **extra: Any) -> dict[str, Any]:
        """A target entry on database `main` reading `databases: auto` of this test only."""
        entry: dict[str, Any] = {"name": "main", "dsn": self.dsn(main), "databases": "auto",
                                 "include_databases": [f"{self.prefix}_.*"]}
        return {**entry, **extra}


@pytest.fixture
def databases(pg_cluster: PgServer) -> Iterator[Databases]:
    made = Databases(pg_cluster)
    yield made
    for name in made.made:
        run_sql(pg_cluster.dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def make_state() -> Any:
    """Factory: make_state(*target entries, **postgres settings) -> an opened PgState."""
    states: list[PgState] = []

    async def factory(*targets: dict[str, Any], **settings: Any) -> PgState:
        state = PgState(PostgresConfig.model_validate({"targets": list(targets), **settings}))
        await state.open()
        states.append(state)
        return state

    yield factory
    for state in states:
        await state.close()


Series = dict[tuple[tuple[str, str], ...], float]


async def exposition(state: PgState) -> Callable[[str], Series]:
    """The state's /metrics text through the real writer, parsed back: name -> series."""
    registry = Registry()
    registry.add_source(PgExporter(state))
    text = b"".join(await render(registry, openmetrics=False)).decode()
    return lambda name: samples(text, name)


def labelled(series: Series, **wanted: str) -> Series:
    """The series whose labels include `wanted`."""
    return {k: v for k, v in series.items() if wanted.items() <= dict(k).items()}


def tables_by_database(series: Series) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for key in series:
        labels = dict(key)
        out.setdefault(labels.get("datname", ""), set()).add(labels["table"])
    return out


# --- configuration and selection (no server) ---


def target(**entry: Any) -> TargetConfig:
    return TargetConfig.model_validate({"name": "main", "dsn": "postgresql://x/app", **entry})


@pytest.mark.parametrize("entry, message", [
    ({"databases": []}, "at least one database"),
    ({"databases": ["a", "b", "a"]}, "repeated: a"),
    ({"databases": "all"}, "databases"),
    ({"databases": ["a"], "include_databases": ["a"]}, "filter `databases: auto`"),
    ({"exclude_databases": ["x"]}, "filter `databases: auto`"),
    ({"databases": "auto", "include_databases": ["app_("]}, "not a regular expression"),
    ({"databases": "auto", "max_databases": 0}, "max_databases"),
])
def test_bad_database_settings_are_config_errors(make_config, entry, message):
    with pytest.raises(ConfigError, match=message):
        make_config({"postgres": {"targets": [
            {"name": "main", "dsn": "postgresql://x/app", **entry}]}})


def test_selection_filters_orders_and_caps():
    found = ["zeta", "app", "app_2", "app_10", "tmp_app", "postgres", "reports"]
    auto = target(databases="auto", include_databases=["app.*", "reports"],
                  exclude_databases=["app_1.*"], max_databases=2)
    # Full matches only: "tmp_app" is not "app.*"; app_10 is excluded; the DSN's database
    # comes first, then names in order, and what is beyond the maximum is counted.
    chosen = select(auto, found, current="reports")
    assert chosen.databases == ("reports", "app")
    assert chosen.over_limit == 1
    everything = select(target(databases="auto"), found, current=None)
    assert everything.databases == tuple(sorted(found))
    assert everything.over_limit == 0
    only_excluded = select(target(databases="auto", exclude_databases=["postgres"]), found)
    assert "postgres" not in only_excluded.databases and len(only_excluded.databases) == 6


# --- a real server ---


@pytest.mark.pg_versions("13", "15", "18")
async def test_auto_reads_tables_and_indexes_of_every_database(databases, make_state):
    for short in ("a", "b", "c"):
        databases.create(short, extension=short == "a")
    state = await make_state(databases.target())
    results = await state.scrape_all()
    assert set(results.values()) <= {"ok", "unsupported_version"}, results
    # The DSN's database first, then the others by name.
    assert list(state.targets["main"].databases) == [databases.name(s) for s in "abc"]
    series = await exposition(state)
    sizes = series("metricsd_pg_tables_size_bytes")
    assert tables_by_database(sizes) == {databases.name(s): {f"t_{s}"} for s in "abc"}
    indexes = tables_by_database(series("metricsd_pg_indexes_size_bytes"))
    assert indexes == {databases.name(s): {f"t_{s}"} for s in "abc"}
    for s in "abc":
        index = labelled(series("metricsd_pg_indexes_valid"), datname=databases.name(s),
                         index=f"t_{s}_v")
        assert list(index.values()) == [1.0]
        ok = labelled(series("metricsd_pg_collector_status"), datname=databases.name(s),
                      status="ok")
        assert {dict(k)["collector"] for k in ok} == set(PER_DATABASE)
    assert series("metricsd_pg_databases_monitored") == {(("target", "main"),): 3.0}
    assert series("metricsd_pg_databases_over_limit") == {(("target", "main"),): 0.0}
    # The JSON views name the database of each index and table.
    rows = state.indexes("main")
    assert {(r["datname"], r["index"]) for r in rows if r["index"].endswith("_v")} == {
        (databases.name(s), f"t_{s}_v") for s in "abc"}
    ready = state.readiness("main")
    assert ready["databases"] == {databases.name(s): dict.fromkeys(PER_DATABASE, "ok")
                                  for s in "abc"}


@pytest.mark.pg_versions("15", "18")
async def test_server_wide_views_are_read_once(databases, make_state):
    for short in ("a", "b", "c"):
        databases.create(short, extension=short == "a")
    multi = await make_state(databases.target())
    plain = await make_state({"name": "main", "dsn": databases.dsn("a")})
    # One job per view: the per-database views are one job that visits every database.
    jobs = [c for _, c in multi.jobs()]
    assert sorted(jobs) == sorted(c for _, c in plain.jobs())
    assert len(jobs) == len(set(jobs))
    assert set((await multi.scrape_all()).values()) <= {"ok", "unsupported_version"}
    assert set((await plain.scrape_all()).values()) <= {"ok", "unsupported_version"}
    multi_series, plain_series = await exposition(multi), await exposition(plain)
    owner = PgExporter(multi).owner
    compared = 0
    for family, collector in owner.items():
        if collector not in STABLE_SERVER_WIDE:
            continue
        for suffix in ("", "_total"):
            counted = len(multi_series(family + suffix))
            assert counted == len(plain_series(family + suffix)), family
            compared += counted
    assert compared >= 10  # wraparound and database_size alone have one series per database
    # One up, and one status series per server-wide view: none per database.
    assert multi_series("metricsd_pg_up") == {(("target", "main"),): 1.0}
    statuses = multi_series("metricsd_pg_collector_status")
    for collector in multi.targets["main"].collectors:
        assert len(labelled(statuses, collector=collector)) == 1, collector
    for collector in PER_DATABASE:
        assert len(labelled(statuses, collector=collector)) == 3, collector
    # The target's own database is one of three: its tables come once, labelled.
    assert len(labelled(multi_series("metricsd_pg_tables_size_bytes"), table="t_a")) == 1


@pytest.mark.pg_versions("15", "18")
async def test_databases_come_and_go_with_discovery(databases, make_state, caplog):
    databases.create("a")
    databases.create("b")
    state = await make_state(databases.target())
    assert await state.scrape("main", "tables") == "ok"
    assert set(tables_by_database((await exposition(state))(
        "metricsd_pg_tables_size_bytes"))) == {databases.name("a"), databases.name("b")}
    databases.create("new")
    # Not before the next discovery: the set is what the last one found.
    assert await state.scrape("main", "tables") == "ok"
    assert databases.name("new") not in state.targets["main"].databases
    assert await state.discover("main")
    assert await state.scrape("main", "tables") == "ok"
    series = await exposition(state)
    assert tables_by_database(series("metricsd_pg_tables_size_bytes"))[
        databases.name("new")] == {"t_new"}
    assert series("metricsd_pg_databases_monitored") == {(("target", "main"),): 3.0}
    pool = state.targets["main"].databases[databases.name("b")].pg.pool
    caplog.set_level(logging.INFO, logger="metricsd.postgres.state")
    databases.drop("b")
    assert await state.discover("main")
    assert await state.discover("main")  # leaving is said once, not once per discovery
    series = await exposition(state)
    assert databases.name("b") not in tables_by_database(series("metricsd_pg_tables_size_bytes"))
    assert not labelled(series("metricsd_pg_collector_status"), datname=databases.name("b"))
    assert not labelled(series("metricsd_pg_indexes_size_bytes"), datname=databases.name("b"))
    assert series("metricsd_pg_databases_monitored") == {(("target", "main"),): 2.0}
    left = [r for r in caplog.records if databases.name("b") in r.getMessage()
            and "left" in r.getMessage()]
    assert len(left) == 1
    assert pool is not None and pool.is_closing()
    assert state.readiness("main")["ok"] is True


@pytest.mark.pg_versions("15", "18")
async def test_a_database_dropped_between_discoveries_leaves_at_its_next_scrape(
        databases, make_state, caplog):
    databases.create("a")
    databases.create("b")
    state = await make_state(databases.target(), scrape_interval="1s")
    assert await state.scrape("main", "tables") == "ok"
    caplog.set_level(logging.INFO, logger="metricsd.postgres.state")
    databases.drop("b")  # WITH (FORCE): metricsd's connection to it is terminated

    async def gone() -> bool:
        await state.scrape("main", "tables")
        return databases.name("b") not in state.targets["main"].databases

    # The terminated connection fails one scrape, the reconnect finds no such database.
    await wait_for(gone, limit_s=10, step=0.3)
    assert await state.scrape("main", "tables") == "ok"
    series = await exposition(state)
    assert set(tables_by_database(series("metricsd_pg_tables_size_bytes"))) == {
        databases.name("a")}
    await state.scrape("main", "activity")
    assert state.up("main")


@pytest.mark.pg_versions("15", "18")
async def test_a_database_refusing_connections_has_its_own_status(
        databases, make_state, caplog):
    for short in ("a", "b", "shut"):
        databases.create(short)
    run_sql(databases.server.dsn,
            f'ALTER DATABASE "{databases.name("shut")}" ALLOW_CONNECTIONS false')
    listed = [databases.name(s) for s in ("a", "shut", "b")]
    entry = {"name": "main", "dsn": databases.dsn("a"), "databases": listed}
    state = await make_state(entry, scrape_interval="0.1s")
    caplog.set_level(logging.WARNING, logger="metricsd.postgres.state")
    for _ in range(2):  # past the reconnect backoff: every attempt fails the same way
        assert await state.scrape("main", "tables") == "connection_error"
        assert await state.scrape("main", "indexes") == "connection_error"
        await asyncio.sleep(0.1)
    down = [r.getMessage() for r in caplog.records if "is down" in r.getMessage()]
    assert len(down) == 1 and f"main/{databases.name('shut')} is down" in down[0], down
    for collector in ("activity", "database"):
        assert await state.scrape("main", collector) == "ok"
    series = await exposition(state)
    assert series("metricsd_pg_up") == {(("target", "main"),): 1.0}
    status = series("metricsd_pg_collector_status")
    for collector in PER_DATABASE:
        assert labelled(status, collector=collector, datname=databases.name("shut")) == {
            (("collector", collector), ("datname", databases.name("shut")),
             ("status", "connection_error"), ("target", "main")): 1.0}
        for short in ("a", "b"):  # the database after the refusing one is read as well
            assert list(labelled(status, collector=collector, datname=databases.name(short),
                                 status="ok").values()) == [1.0]
    errors = labelled(series("metricsd_pg_collector_errors_total"),
                      datname=databases.name("shut"), kind="connection_error")
    assert sorted(errors.values()) == [2.0, 2.0]
    assert set(tables_by_database(series("metricsd_pg_tables_size_bytes"))) == {
        databases.name("a"), databases.name("b")}
    ready = state.readiness("main")
    assert ready["ok"] is True
    assert ready["databases"][databases.name("shut")] == dict.fromkeys(
        PER_DATABASE, "connection_error")
    assert ready["error"].startswith(f"{databases.name('shut')}/")
    # With `auto`, a database that does not allow connections is not a candidate at all.
    auto = await make_state(databases.target())
    await auto.scrape("main", "tables")
    assert list(auto.targets["main"].databases) == [databases.name("a"), databases.name("b")]


@pytest.mark.pg_versions("15", "18")
async def test_a_database_without_connect_privilege_has_its_own_status(
        databases, make_state):
    for short in ("a", "b", "private"):
        databases.create(short)
    role = f"{databases.prefix}_mon"
    run_sql(databases.server.dsn, f"CREATE ROLE {role} LOGIN PASSWORD 'pw'",
            f"GRANT pg_monitor TO {role}",
            f'REVOKE CONNECT ON DATABASE "{databases.name("private")}" FROM PUBLIC')
    try:
        dsn = _with_user(databases.dsn("a"), role, "pw")
        state = await make_state(databases.target(dsn=dsn))
        assert await state.scrape("main", "tables") == "connection_error"
        assert await state.scrape("main", "activity") == "ok"
        assert state.up("main")
        ready = state.readiness("main")
        assert ready["databases"][databases.name("private")]["tables"] == "connection_error"
        assert ready["databases"][databases.name("b")]["tables"] == "ok"
        message = state.database_health("main")[databases.name("private")]["tables"]["message"]
        assert "permission denied" in message
    finally:
        await _close_all(databases.server.dsn, role)
        run_sql(databases.server.dsn, *(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'
                                        for name in databases.made),
                f"DROP ROLE IF EXISTS {role}")
        databases.made.clear()


def _with_user(dsn: str, user: str, password: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(dsn)
    host = parts.hostname or "127.0.0.1"
    netloc = f"{user}:{password}@{host}:{parts.port or 5432}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))


async def _close_all(dsn: str, role: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                           " WHERE usename = $1", role)
    finally:
        await conn.close()


@pytest.mark.pg_versions("15", "18")
async def test_statements_of_two_databases_carry_their_own_label(databases, make_state):
    databases.create("a", extension=True)
    databases.create("b")
    state = await make_state(databases.target(), top_statements=1000)
    assert await state.scrape("main", "statements") == "ok"  # the baseline
    marker = uuid.uuid4().hex[:8]
    for short in ("a", "b"):
        conn = await asyncpg.connect(databases.dsn(short))
        try:
            for _ in range(3):
                await conn.fetch(f"SELECT count(*) AS seen_{marker} FROM t_{short}")
            await flush_stats(conn)
        finally:
            await conn.close()
    assert await state.scrape("main", "statements") == "ok"
    rows = [r for r in state.statements("main", limit=10_000) if marker in (r["query"] or "")]
    assert {(r["datname"], r["query"].split("FROM ")[1], r["calls"]) for r in rows} == {
        (databases.name("a"), "t_a", 3), (databases.name("b"), "t_b", 3)}
    series = await exposition(state)
    calls = series("metricsd_pg_statements_calls")
    for short in ("a", "b"):
        assert sum(labelled(calls, datname=databases.name(short)).values()) >= 3
    # pg_stat_statements is read once, from the target's own connection.
    assert len(labelled(series("metricsd_pg_collector_status"), collector="statements")) == 1


async def test_a_target_without_databases_keeps_its_series(pg_database, make_state):
    """No `databases:`: no datname on tables and indexes, no database families."""
    conn = await asyncpg.connect(pg_database)
    await conn.execute("CREATE TABLE plain (id int PRIMARY KEY)")
    await conn.close()
    state = await make_state({"name": "main", "dsn": pg_database})
    assert await state.scrape("main", "tables") == "ok"
    assert await state.scrape("main", "indexes") == "ok"
    series = await exposition(state)
    assert list(series("metricsd_pg_tables_size_bytes")) == [
        (("schema", "public"), ("table", "plain"), ("target", "main"))]
    assert all("datname" not in dict(k) for k in series("metricsd_pg_indexes_size_bytes"))
    assert all("datname" not in dict(k) for k in series("metricsd_pg_collector_status"))
    assert series("metricsd_pg_databases_monitored") == {}
    assert "databases" not in state.readiness("main")
    assert state.databases("main") is None


@pytest.mark.pg_versions("15", "18")
async def test_over_the_maximum_is_counted(databases, make_state, caplog):
    for short in ("a", "b", "c"):
        databases.create(short)
    caplog.set_level(logging.WARNING, logger="metricsd.postgres.state")
    state = await make_state(databases.target(main="b", max_databases=2))
    assert await state.scrape("main", "tables") == "ok"
    assert list(state.targets["main"].databases) == [databases.name("b"), databases.name("a")]
    series = await exposition(state)
    assert series("metricsd_pg_databases_over_limit") == {(("target", "main"),): 1.0}
    assert series("metricsd_pg_databases_monitored") == {(("target", "main"),): 2.0}
    assert [r for r in caplog.records if "max_databases" in r.getMessage()]


@pytest.mark.pg_versions("15")
async def test_the_app_discovers_on_its_schedule(databases, make_config, aiohttp_client):
    databases.create("a")
    config = make_config({"postgres": {
        "scrape_interval": "1s", "discovery_interval": "1s",
        "targets": [databases.target()]}})
    client = await aiohttp_client(create_app(config))

    async def tables() -> dict[str, set[str]]:
        text = await (await client.get("/metrics")).text()
        return tables_by_database(samples(text, "metricsd_pg_tables_size_bytes"))

    async def seen(*shorts: str) -> bool:
        return set(await tables()) == {databases.name(s) for s in shorts}

    await wait_for(lambda: seen("a"), limit_s=15, step=0.2)
    databases.create("later")
    await wait_for(lambda: seen("a", "later"), limit_s=15, step=0.2)
    body = await (await client.get("/v1/postgres/indexes?target=main")).json()
    assert {i["datname"] for i in body["indexes"]} == {databases.name("a"),
                                                       databases.name("later")}
    page = await (await client.get("/")).text()  # t_<db>_v has no scans: unused
    for short in ("a", "later"):
        assert f"t_{short}_v</code> <small>on public.t_{short} in {databases.name(short)}" in page
    summary = body["targets"]["main"]["databases"]
    assert summary["mode"] == "auto" and summary["over_limit"] == 0
    assert set(summary["collectors"]) == {databases.name("a"), databases.name("later")}
    databases.drop("later")
    await wait_for(lambda: seen("a"), limit_s=15, step=0.2)


@pytest.mark.pg_versions("15", "18")
async def test_plans_of_another_database_use_its_connection(databases, make_state):
    from metricsd.postgres.plans import PlansService
    from tests.postgres.test_plans import FakeClock, _orders

    databases.create("a", extension=True)
    databases.create("b")
    _orders(databases.dsn("b"))
    settings = {"slow_query_ms": 0.5, "plans": {"refresh_interval": 0, "per_round": 5}}
    entries = {"multi": databases.target(), "plain": {"name": "main", "dsn": databases.dsn("a")}}
    marker = f"m{uuid.uuid4().hex[:8]}"
    columns = {"multi": "id, status", "plain": "id, note"}
    outcomes = {}
    for kind, entry in entries.items():
        clock = FakeClock()
        state = await make_state(entry, **settings)
        state.clock = clock
        service = PlansService(state, state.config, clock=clock)
        assert await state.scrape("main", "statements") == "ok"
        await state.scrape("main", "tables")  # `auto`: the first scrape discovers
        conn = await asyncpg.connect(databases.dsn("b"))
        try:
            for _ in range(3):
                for i in range(5):
                    # Other columns per kind: pg_stat_statements keeps one text per
                    # queryid, and comments do not change the queryid.
                    await conn.fetch(f"SELECT {columns[kind]} /* {marker}{kind} */ FROM orders"
                                     f" WHERE customer_id = $1", i)
                await flush_stats(conn)
                clock.now += 15.0
                assert await state.scrape("main", "statements") == "ok"
                await service.run("main")
        finally:
            await conn.close()
        tracker = service.trackers["main"]
        [tracked] = [t for t in tracker.tracked.values() if f"{marker}{kind}" in t.query]
        assert tracked.key[0] == databases.name("b")
        outcomes[kind] = (tracked.current is not None, dict(tracker.outcomes))
    planned, counts = outcomes["multi"]
    assert planned and counts["ok"] >= 1 and counts["failed"] == 0, counts
    # Without `databases:` the target cannot reach database b: skipped, as before.
    planned, counts = outcomes["plain"]
    assert not planned and counts["skipped_other_database"] >= 1, counts


@pytest.mark.pg_versions("15")
async def test_reload_adds_and_removes_discovery_and_database_pools(
        databases, aiohttp_client, tmp_path):
    import yaml

    from metricsd.config import load_config
    from metricsd.core import SCHEDULER
    from metricsd.postgres import PG_STATE

    databases.create("a")
    databases.create("b")
    path = tmp_path / "metricsd.yml"
    plain = {"postgres": {"targets": [{"name": "main", "dsn": databases.dsn("a")}]}}
    path.write_text(yaml.safe_dump(plain))
    client = await aiohttp_client(create_app(load_config(str(path), env={}), str(path)))
    app = client.server.app
    state = app[PG_STATE]

    def jobs() -> set[str]:
        return {job.id for job in app[SCHEDULER].get_jobs()}

    assert "discover:main" not in jobs()
    path.write_text(yaml.safe_dump({"postgres": {"targets": [databases.target()]}}))
    assert (await client.post("/-/reload")).status == 200
    assert {"discover:main", "scrape:main:tables", "scrape:main:indexes"} <= jobs()
    assert await state.scrape("main", "tables") == "ok"
    pools = [db.pg.pool for db in state.targets["main"].databases.values()]
    assert len(pools) == 2
    path.write_text(yaml.safe_dump(plain))
    assert (await client.post("/-/reload")).status == 200
    assert "discover:main" not in jobs()
    assert all(pool is not None and pool.is_closing() for pool in pools)
    assert not state.targets["main"].databases
    assert await state.scrape("main", "tables") == "ok"
    text = await (await client.get("/metrics")).text()
    assert all("datname" not in dict(k) for k in samples(text, "metricsd_pg_tables_size_bytes"))
