"""Every query of every dashboard panel, run through a real Prometheus scraping metricsd.

metricsd runs with a throwaway PostgreSQL target; the test generates beacons (timings,
Web Vitals, rejects, duplicates, a rate-limited burst, series over the cap) and SQL load,
starts Prometheus (1 s scrapes, alerts.yml loaded) and, after the scrapes have data, runs
each panel's PromQL with Grafana's variables substituted. A query that errors or returns
nothing (or only NaN) fails the test, unless dashboards/allowed-empty.yml lists its panel.
The same Prometheus must have loaded alerts.yml without a rule error.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import random
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import asyncpg
import pytest
from aiohttp import web

from tests.deploy import dashboards as db
from tests.fixtures.prometheus import Prometheus, PrometheusError

RULES = db.ROOT / "alerts.yml"
SERVICES = ("shop", "auth")
ROUTES = ("/orders/:id", "/login", "/cart")
PAGES = ("/", "/checkout")
NAVIGATION = ("navigate", "reload", "back-forward-cache")
# A spread of values per vital (ms, CLS unitless) that covers good, needs-improvement, poor.
VITAL_VALUES = {
    "LCP": (1200, 3100, 5200), "INP": (80, 320, 700), "CLS": (0.02, 0.15, 0.4),
    "FCP": (900, 2200, 3600), "TTFB": (300, 1200, 2400), "FID": (40, 200, 400),
}
DEVICES = {"/": "desktop", "/checkout": "mobile"}
# One sub-part each for INP and LCP: 2 pages x 2 parts = 4 more vitals series.
ATTRIBUTION = {"INP": {"target": "#buy", "processingDuration": 120.0},
               "LCP": {"target": "img.hero", "url": "/hero.jpg", "resourceLoadDuration": 400.0},
               "CLS": {"target": "div.ad"}}
MAX_SERIES = 60  # steady traffic makes ~24 series; the spam burst goes over the cap
FAKE_CLIENT = "198.51.100.7"  # documentation range; sent as X-Forwarded-For by the burst


class Traffic:
    """Beacons like real senders post them, plus the odd malformed one."""

    def __init__(self, session: aiohttp.ClientSession, address: str) -> None:
        self.session = session
        self.base = f"http://{address}/v1/beacons"
        self.rng = random.Random(5)
        self.ids = itertools.count()

    async def post(self, kind: str, items: Any, headers: dict[str, str] | None = None) -> int:
        async with self.session.post(f"{self.base}/{kind}", json=items,
                                     headers=headers) as resp:
            await resp.read()
            return resp.status

    def timings(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        for service, route, method in itertools.product(SERVICES, ROUTES, ("GET", "POST")):
            for _ in range(3):
                status = self.rng.choices((200, 201, 302, 404, 500), (70, 10, 5, 10, 5))[0]
                items.append({"service": service, "route": route, "method": method,
                              "status": status,
                              "duration_ms": self.rng.lognormvariate(math.log(60), 0.8)})
        items.append({"service": "shop", "route": "/cart", "status": 200})  # no duration
        return items

    def vitals(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        for (name, values), page in itertools.product(VITAL_VALUES.items(), PAGES):
            for value, nav in zip(values, NAVIGATION, strict=True):
                # No `rating`: it is optional, and metricsd rates by value anyway.
                item = {"name": name, "value": value * self.rng.uniform(0.9, 1.1),
                        "delta": 0, "id": f"v4-{next(self.ids)}",
                        "navigationType": nav, "page": page,
                        # vitals (issue 17): devices, connections and attribution
                        "device": DEVICES[page], "connection": "4g"}
                if name in ATTRIBUTION:
                    item["attribution"] = ATTRIBUTION[name]
                items.append(item)
        items.append({"name": "LCP", "value": -5, "id": "bad", "page": "/"})  # out of range
        return items

    def operations(self) -> list[dict[str, Any]]:
        """Issue 16: operations with an objective (ws.delivery) and without, every outcome."""
        items: list[dict[str, Any]] = []
        for operation, median_ms in (("ws.delivery", 120), ("export.csv", 2500)):
            for _ in range(10):
                outcome = self.rng.choices(("ok", "error", "timeout", "cancelled"),
                                           (85, 5, 5, 5))[0]
                items.append({"service": "shop", "operation": operation, "outcome": outcome,
                              "duration_ms": self.rng.lognormvariate(math.log(median_ms), 0.5)})
        return items

    def cache_report(self) -> dict[str, Any]:
        """Issue 16: one cache's counts since the last round, like the Python client sends."""
        hits = self.rng.randrange(50, 100)
        return {"service": "shop", "cache": "templates", "hits": hits, "misses": 100 - hits,
                "evictions": self.rng.randrange(0, 5), "entries": self.rng.randrange(100, 200),
                "size_bytes": self.rng.randrange(10**5, 10**6),
                "top_keys": [{"key": "home.html", "hits": hits // 2}]}

    async def steady(self) -> None:
        """One round of normal traffic: timings, vitals, operations and a cache report."""
        assert await self.post("timings", self.timings()) == 202
        assert await self.post("operations", self.operations()) == 202
        assert await self.post("cache", self.cache_report()) == 202
        vitals = self.vitals()
        assert await self.post("vitals", vitals) == 202
        # web-vitals reports CLS again on page hide with the same id: an in-place update.
        again = dict(next(item for item in vitals if item["name"] == "CLS"), value=0.3)
        assert await self.post("vitals", [again, again]) == 202

    async def once(self) -> None:
        """What happens rarely: rejects of whole requests, 429s, series over the cap."""
        async with self.session.post(f"{self.base}/vitals", data=b"{not json") as resp:
            assert resp.status == 400
        statuses = await asyncio.gather(*(
            self.post("timings", self.timings()[:1], {"X-Forwarded-For": FAKE_CLIENT})
            for _ in range(30)))
        assert 429 in statuses, statuses
        spam = [{"service": "spam", "route": f"/spam-{chr(97 + i // 26)}{chr(97 + i % 26)}",
                 "method": "GET", "status": 200, "duration_ms": 5} for i in range(MAX_SERIES)]
        assert await self.post("timings", spam) == 202


# The shapes the PostgreSQL dashboard reports on: a foreign key without an index that
# queries filter on (missing-index candidate), an index nothing uses, an invalid index
# (failed CREATE UNIQUE INDEX CONCURRENTLY), dead tuples.
SCHEMA_SQL = """
CREATE TABLE customers (id serial PRIMARY KEY, region text NOT NULL);
CREATE TABLE orders (id serial PRIMARY KEY, customer_id int NOT NULL, total int NOT NULL,
                     note text NOT NULL);
INSERT INTO customers (region) SELECT (ARRAY['eu', 'us', 'apac'])[1 + g % 3]
  FROM generate_series(1, 3000) g;
INSERT INTO orders (customer_id, total, note) SELECT 1 + g % 3000, g % 997, md5(g::text)
  FROM generate_series(1, 20000) g;
CREATE INDEX customers_region_idx ON customers (region);
CREATE INDEX orders_total_idx ON orders (total);
CREATE INDEX orders_note_idx ON orders (note);
UPDATE orders SET note = md5(note) WHERE id % 2 = 0;
CREATE TABLE dupes (v int);
INSERT INTO dupes VALUES (1), (1);
ANALYZE;
"""


async def prepare_database(dsn: str) -> None:
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        await conn.execute(SCHEMA_SQL)
        with contextlib.suppress(asyncpg.UniqueViolationError):
            # Fails on the duplicate and leaves an INVALID index behind, as in production.
            await conn.execute("CREATE UNIQUE INDEX CONCURRENTLY dupes_v_key ON dupes (v)")
    finally:
        await conn.close()


class SqlLoad:
    """Statements an application would run, including a slow one."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn
        self.round = 0

    async def steady(self) -> None:
        self.round += 1
        await self.conn.fetchval("SELECT count(*) FROM orders WHERE customer_id = $1",
                                 self.round % 3000)
        await self.conn.fetch("SELECT id FROM customers WHERE region = $1 LIMIT 5", "eu")
        await self.conn.execute("INSERT INTO orders (customer_id, total, note) "
                                "VALUES ($1, $2, 'new')", self.round % 3000, self.round)
        await self.conn.execute("SELECT pg_sleep(0.03)")  # over slow_query_ms


@contextlib.asynccontextmanager
async def running(traffic: Traffic, sql: SqlLoad, every_s: float) -> AsyncIterator[None]:
    """Keep steady traffic flowing (rates need increases between scrapes) until exit."""

    async def loop() -> None:
        while True:
            await asyncio.gather(traffic.steady(), sql.steady())
            await asyncio.sleep(every_s)

    task = asyncio.create_task(loop())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _has_data(result: list[dict[str, Any]]) -> bool:
    return any(not math.isnan(float(s["value"][1])) for s in result)


async def _dashboard_failures(
    prometheus: Prometheus, must_have_data: set[tuple[str, str]]
) -> tuple[list[str], int]:
    """Every panel query and variable query that errors or comes back empty."""
    allowed = {(e.dashboard, e.panel) for e in db.allowed_empty()} - must_have_data
    failures: list[str] = []
    count = 0
    for path in db.dashboard_files():
        board = db.load(path)
        for var in db.variables(board).values():
            if var["type"] != "query":
                continue
            selector, label = db.parse_label_values(db.variable_query(var))
            params = {"match[]": db.substitute(selector)} if selector else {}
            values = await prometheus.api(f"label/{label}/values", **params)
            count += 1
            if not values:
                failures.append(f"{board['uid']}: variable ${var['name']} has no values")
        for query in db.queries(board):
            count += 1
            where = f"{board['uid']} / {query.panel} / {query.ref}"
            try:
                result = await prometheus.query(db.substitute(query.expr))
                if not _has_data(result) and (board["uid"], query.panel) in must_have_data:
                    # Replication lag is NULL in pg_stat_replication for a moment whenever
                    # the standby has caught up, so one instant may fall in that gap.
                    result = await prometheus.wait_for(
                        db.substitute(query.expr), _has_data, within_s=15)
            except PrometheusError as exc:
                failures.append(f"{where}: error {exc}")
                continue
            if not _has_data(result) and (board["uid"], query.panel) not in allowed:
                failures.append(f"{where}: no data for {db.substitute(query.expr)}")
    return failures, count


async def _rule_failures(prometheus: Prometheus) -> list[str]:
    """Rules Prometheus loaded with an error, once every rule has been evaluated."""
    groups: list[dict[str, Any]] = []
    for _ in range(40):
        groups = (await prometheus.api("rules"))["groups"]
        rules = [rule for group in groups for rule in group["rules"]]
        if rules and all(rule.get("health") != "unknown" for rule in rules):
            break
        await asyncio.sleep(0.25)
    failures = [f"{group['file']}: {rule['name']}: {rule.get('lastError')}"
                for group in groups for rule in group["rules"] if rule.get("health") != "ok"]
    if not groups:
        failures.append("Prometheus loaded no rule group")
    return failures


# metricsd's own alerting, so the notification panels have data: a rule that fires at
# once and a receiver that records what it gets.
E2E_RULES = """
groups:
  - name: e2e
    rules:
      - alert: E2EAlwaysFiring
        expr: metricsd_series_limit > 0
        labels:
          severity: info
"""


class Webhook:
    """A receiver that records every notification body it gets."""

    def __init__(self) -> None:
        self.received: list[Any] = []
        self.got_one = asyncio.Event()
        self.url = ""

    async def hook(self, request: web.Request) -> web.Response:
        self.received.append(await request.json())
        self.got_one.set()
        return web.Response(text="ok")


@pytest.fixture
async def webhook(aiohttp_server: Any) -> Webhook:
    receiver = Webhook()
    app = web.Application()
    app.router.add_post("/hook", receiver.hook)
    server = await aiohttp_server(app)
    receiver.url = f"http://127.0.0.1:{server.port}/hook"
    return receiver


# Empty without a standby (dashboards/allowed-empty.yml), so they must have data with one.
REPLICATION_PANELS = {("metricsd-postgres", "Replication lag (time)"),
                      ("metricsd-postgres", "Replication lag (bytes)")}


async def test_every_dashboard_query_returns_data(
    pg_cluster, make_cluster, pg_database, make_config, serve_metricsd, make_prometheus,
    webhook, tmp_path
):
    await prepare_database(pg_database)
    targets = [{"name": "main", "dsn": pg_database}]
    if pg_cluster.cluster is not None:  # a standby needs a cluster of ours to stream from
        standby = make_cluster(standby_of=pg_cluster.cluster,
                               settings={"cluster_name": "e2e_standby"})
        database = urlsplit(pg_database).path.lstrip("/")
        targets.append({"name": "standby", "dsn": standby.dsn_for(database)})
    rules = tmp_path / "e2e-alerts.yml"
    rules.write_text(E2E_RULES, encoding="utf-8")
    config = make_config({
        "ingest": {
            "max_series": MAX_SERIES,
            "budgets": {"vitals": 24},  # 12 vitals series + 4 attribution sub-part series
            "vitals_min_page_views": 1,  # the CWV pass panel has data after one round
            "operations": {"ws.delivery": {"objective_ms": 200}},
            "rate_limit": {"enabled": True, "requests_per_second": 20, "burst": 20,
                           "trusted_proxies": ["127.0.0.1/32"]},
        },
        "postgres": {
            "scrape_interval": "1s",
            "slow_query_ms": 10,
            "export_query_text": True,  # the slow-statements table shows query text
            "missing_index_min_rows": 1000,
            "bloat_min_bytes": 0,
            "targets": targets,
        },
        "alerting": {
            "rules": str(rules),
            "evaluation_interval": "500ms",
            "group_wait": "100ms",
            "group_interval": "1s",
            "receivers": [{"name": "e2e", "url": webhook.url, "max_attempts": 1}],
            "default_receiver": "e2e",
        },
    })
    address = await serve_metricsd(config)
    conn = await asyncpg.connect(pg_database, timeout=10)
    try:
        async with aiohttp.ClientSession() as session:
            traffic = Traffic(session, address)
            await traffic.steady()  # the steady series exist before the cap is reached
            await traffic.once()
            async with running(traffic, SqlLoad(conn), every_s=0.25):
                prometheus = await make_prometheus([address], rule_files=[RULES])
                await prometheus.wait_scrapes("metricsd", 3, within_s=30)
                # Statement values are per collector interval: two PostgreSQL scrapes,
                # then two Prometheus scrapes of the result.
                await prometheus.wait_for(
                    "count_over_time(metricsd_pg_statements_slow[1m]) >= 2", bool, 30)
                async with asyncio.timeout(30):
                    await webhook.got_one.wait()
                await prometheus.wait_for(
                    "count_over_time(metricsd_alert_notifications_total[1m]) >= 2", bool, 30)
                if len(targets) > 1:
                    await prometheus.wait_for(
                        "count_over_time(metricsd_pg_replication_lag_seconds[1m]) >= 2",
                        bool, 30)
                failures, count = await _dashboard_failures(
                    prometheus, must_have_data=REPLICATION_PANELS if len(targets) > 1 else set())
                rule_failures = await _rule_failures(prometheus)
    finally:
        await conn.close()
    assert count > 50
    assert webhook.received[0]["alerts"][0]["labels"]["alertname"] == "E2EAlwaysFiring"
    assert failures == [], "\n".join(failures)
    assert rule_failures == [], "\n".join(rule_failures)
