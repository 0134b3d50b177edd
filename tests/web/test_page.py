"""GET /: real numbers from beacons the test sent, empty states, escaping, sparklines."""

from __future__ import annotations

import re
import time
from html.parser import HTMLParser

import numpy as np
import pytest

from metricsd import overview
from metricsd.alerting import ALERTS
from metricsd.app import create_app
from metricsd.core import SCHEDULER
from metricsd.ingest import STORE
from metricsd.overview import HISTORY, VIEWS, model
from metricsd.postgres import PG_STATE
from metricsd.web import page

UNITS = {"µs": 1e-6, "ms": 1e-3, "s": 1.0}


class Tables(HTMLParser):
    """Every table row of a section as [(cell text, cell class)], keyed by section id."""

    def __init__(self) -> None:
        super().__init__()
        self.sections: dict[str, list[list[tuple[str, str]]]] = {}
        self._section = ""
        self._row: list[tuple[str, str]] | None = None
        self._cell: list[str] | None = None
        self._cls = ""
        self._hidden = 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "section" and attrs.get("id"):
            self._section = attrs["id"]
        elif tag == "tr":
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell, self._cls = [], attrs.get("class") or ""
        elif tag == "br" and self._cell is not None:
            self._cell.append(" ")
        elif tag == "span" and attrs.get("aria-hidden") == "true":
            self._hidden += 1
        elif tag == "span" and self._hidden:
            self._hidden += 1

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append((" ".join("".join(self._cell).split()), self._cls))
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.sections.setdefault(self._section, []).append(self._row)
            self._row = None
        elif tag == "span" and self._hidden:
            self._hidden -= 1

    def handle_data(self, data):
        if self._cell is not None and not self._hidden:
            self._cell.append(data)


def tables(text: str) -> dict[str, list[list[tuple[str, str]]]]:
    parser = Tables()
    parser.feed(text)
    return parser.sections


def seconds(shown: str) -> float:
    """'153 ms' -> 0.153; the page rounds to 3 significant digits."""
    match = re.fullmatch(r"([\d.,]+) (µs|ms|s)", shown.split(" (")[0].strip())
    assert match, f"not a duration: {shown!r}"
    return float(match.group(1).replace(",", "")) * UNITS[match.group(2)]


def card_value(text: str, title: str) -> str:
    match = re.search(rf"<h2>{re.escape(title)}</h2>\s*<p class=\"value\">([^<]*)</p>", text)
    assert match, f"card {title!r} not found"
    return match.group(1).strip()


@pytest.fixture
async def client(aiohttp_client, make_config):
    app = create_app(make_config({"ingest": {"rate_limit": {"enabled": False}}}))
    return await aiohttp_client(app)


def timings(service, route, durations_ms, statuses):
    return [{"service": service, "route": route, "method": "GET", "status": int(s),
             "duration_ms": float(d)} for d, s in zip(durations_ms, statuses, strict=True)]


async def test_empty_page_says_what_to_do(client):
    resp = await client.get("/")
    assert resp.status == 200
    assert resp.content_type == "text/html"
    text = await resp.text()
    assert "No API timings yet:</strong> POST to <code>/v1/beacons/timings</code>" in text
    assert "No beacons yet:</strong> POST to <code>/v1/beacons/vitals</code>" in text
    assert "No PostgreSQL target configured" in text
    assert "Alerting not configured" in text
    assert card_value(text, "API p95") == "—"
    assert '<meta http-equiv="refresh" content="30">' in text
    assert "no history yet" in text  # sparklines say so rather than draw a flat line
    assert "http://" not in text.split("<body>")[0].replace("http-equiv", "")  # no CDN


async def test_routes_show_exact_window_percentiles_and_error_ratio(client):
    rng = np.random.default_rng(42)
    fast = rng.lognormal(np.log(20), 0.6, 600)
    slow = rng.lognormal(np.log(300), 0.4, 400)
    fast_status = np.where(rng.random(600) < 0.05, 503, 200)
    slow_status = np.full(400, 200)
    for batch in (timings("shop", "/orders/{id}", fast, fast_status),
                  timings("shop", "/search", slow, slow_status)):
        resp = await client.post("/v1/beacons/timings", json=batch)
        assert resp.status == 202, await resp.text()

    text = await (await client.get("/")).text()
    rows = [r for r in tables(text)["routes"] if r and r[0][1] != "num" and r[0][0] == "shop"]
    assert [r[2][0] for r in rows] == ["/search", "/orders/{id}"]  # slowest p95 first
    for row, samples, status in ((rows[0], slow, slow_status), (rows[1], fast, fast_status)):
        shown = {"p50": row[4][0], "p95": row[5][0], "p99": row[6][0]}
        for name, q in (("p50", 50), ("p95", 95), ("p99", 99)):
            expected = np.percentile(samples, q) / 1000.0
            assert seconds(shown[name]) == pytest.approx(expected, rel=5e-3), name
        errors = float(np.mean(status >= 500)) * 100
        assert float(row[7][0].rstrip(" %")) == pytest.approx(errors, abs=0.05)
    overall = np.percentile(np.concatenate([fast, slow]), 95) / 1000.0
    assert seconds(card_value(text, "API p95")) == pytest.approx(overall, rel=5e-3)
    ratio = float(np.sum(fast_status >= 500)) / 1000 * 100
    assert float(card_value(text, "API error ratio").rstrip(" %")) == pytest.approx(ratio, abs=5e-3)


async def test_vitals_p75_coloured_by_google_rating(client):
    rng = np.random.default_rng(3)
    lcp_fast = rng.uniform(800, 2000, 50)  # all good: p75 < 2.5 s
    lcp_mid = rng.uniform(2600, 3900, 50)  # needs improvement
    inp_poor = rng.uniform(600, 900, 30)  # poor: > 500 ms
    cls_good = rng.uniform(0.0, 0.05, 30)
    beacons = []
    for page_path, name, values in (("/home", "LCP", lcp_fast), ("/checkout", "LCP", lcp_mid),
                                    ("/checkout", "INP", inp_poor), ("/home", "CLS", cls_good)):
        beacons += [{"name": name, "value": float(v), "id": f"{name}-{page_path}-{i}",
                     "page": page_path} for i, v in enumerate(values)]
    resp = await client.post("/v1/beacons/vitals", json=beacons)
    assert resp.status == 202, await resp.text()

    text = await (await client.get("/")).text()
    section = tables(text)["vitals"]
    header = [cell for cell, _ in section[0]]
    rows = {r[0][0]: dict(zip(header, r, strict=True)) for r in section[1:]}
    home, checkout = rows["/home"], rows["/checkout"]

    assert "good" in home["LCP"][1].split()
    assert seconds(home["LCP"][0]) == pytest.approx(np.percentile(lcp_fast, 75) / 1000, abs=5e-3)
    assert "needs-improvement" in checkout["LCP"][1].split()
    assert seconds(checkout["LCP"][0]) == pytest.approx(np.percentile(lcp_mid, 75) / 1000,
                                                        abs=5e-3)
    assert "poor" in checkout["INP"][1].split()
    assert seconds(checkout["INP"][0]) == pytest.approx(np.percentile(inp_poor, 75) / 1000,
                                                        abs=5e-4)
    assert "good" in home["CLS"][1].split()
    assert float(home["CLS"][0].split(" (")[0]) == pytest.approx(np.percentile(cls_good, 75),
                                                                  abs=5e-4)
    assert home["INP"][0] == "—" and checkout["CLS"][0] == "—"
    assert rows["/checkout"]["Reports"][0] == "80"  # busiest page first
    assert list(rows) == ["/checkout", "/home"]


async def test_user_strings_are_escaped(client):
    evil = "/x/<script>alert(1)</script>"
    resp = await client.post("/v1/beacons/timings",
                             json=timings("<b>svc</b>", evil, [10.0], [200]))
    assert resp.status == 202
    text = await (await client.get("/")).text()
    assert "<script>alert" not in text and "<b>svc</b>" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text


async def test_history_job_feeds_sparklines(client):
    app = client.server.app
    samples = np.arange(1.0, 101.0)  # 1..100 ms
    resp = await client.post("/v1/beacons/timings",
                             json=timings("api", "/items", samples, [200] * 100))
    assert resp.status == 202
    now = time.time()
    await overview.sample_history(app, now - 60)
    await overview.sample_history(app, now)
    history = app[HISTORY]
    expected = np.percentile(samples, 95) / 1000.0
    series = history.values(model.CARD_SERIES["api_p95"], now)
    assert series[-1] == pytest.approx(expected) and series[-2] == pytest.approx(expected)
    assert np.isnan(series[:-2]).all()
    route = history.values(f"{model.ROUTE_SERIES_PREFIX}api GET /items", now)
    assert route[-1] == pytest.approx(expected)
    text = await (await client.get("/")).text()
    # p95 and error-ratio cards and the route row; the PostgreSQL and alert cards have none.
    assert text.count('<svg class="spark"') == 3
    assert history.values(model.CARD_SERIES["api_error_ratio"], now)[-1] == 0.0
    assert re.search(r'<svg class="spark"[^>]*aria-label="p95 of GET /items"', text)


async def test_refresh_can_be_paused_and_is_clamped(client):
    paused = await (await client.get("/?refresh=0")).text()
    assert 'http-equiv="refresh"' not in paused
    fast = await (await client.get("/?refresh=1")).text()
    assert '<meta http-equiv="refresh" content="5">' in fast
    junk = await client.get("/?refresh=abc")
    assert junk.status == 200


async def test_static_files_are_served(client):
    resp = await client.get("/static/overview.css")
    assert resp.status == 200
    assert ".cards" in await resp.text()


def path_points(svg):
    path = re.search(r'd="([^"]+)"', str(svg)).group(1)
    return [(m[0], float(m[1]), float(m[2])) for m in re.findall(r"([ML])([\d.]+) ([\d.]+)", path)]


def test_sparkline_breaks_at_gaps_and_scales_to_range():
    points = path_points(page.sparkline([1.0, 2.0, float("nan"), 3.0, 1.0], "x", 40, 20))
    assert [p[0] for p in points] == ["M", "L", "M", "L"]  # a new stroke after the gap
    assert [p[1] for p in points] == [0.0, 10.0, 30.0, 40.0]
    ys = [p[2] for p in points]
    assert ys == [17.0, 10.0, 3.0, 17.0]  # 3.0 is the top of the box, 1.0 the bottom


def test_sparkline_skips_leading_gaps_and_draws_lone_points():
    nan = float("nan")
    points = path_points(page.sparkline([nan, nan, nan, 5.0, nan, 7.0], "x", 40, 20))
    assert [p[1] for p in points] == [0.0, 40.0]  # drawn across the whole box
    svg = str(page.sparkline([nan, 4.0, nan, 6.0], "x", 40, 20))
    assert svg.count("h0.01") == 2  # each isolated minute is still visible as a dot
    flat = str(page.sparkline([nan, 2.0], "only one minute", 40, 20))
    assert "M0 10.0H40" in flat
    empty = str(page.sparkline([nan, nan], "x", 40, 20))
    assert "no history yet" in empty and "<path" not in empty


async def test_history_is_sampled_by_a_scheduler_job_not_by_requests(client, make_config):
    app = client.server.app
    job = app[SCHEDULER].get_job("history:sample")
    assert job is not None and job.trigger.interval.total_seconds() == 60
    assert job.func is overview.sample_history
    assert job.next_run_time.timestamp() > time.time() + 50  # a minute after start
    history = app[HISTORY]
    before = {name: history.values(name, time.time()).copy() for name in history.names()}
    for _ in range(3):
        await client.post("/v1/beacons/timings", json=timings("s", "/r", [5.0], [200]))
        assert (await client.get("/")).status == 200
    after = {name: history.values(name, time.time()) for name in history.names()}
    assert before.keys() == after.keys()  # page views add no series and no points
    for name, values in before.items():
        np.testing.assert_array_equal(values, after[name])
    assert app[HISTORY].minutes == 180
    custom = create_app(make_config({"admin": {"history_minutes": 30}}))
    assert custom[HISTORY].minutes == 30


async def test_many_routes_table_and_history_stay_bounded(client):
    app = client.server.app
    routes = 70
    batch = []
    for i in range(routes):
        batch += timings("svc", f"/r{i}", [float(i + 1)] * 3, [200] * 3)
    assert (await client.post("/v1/beacons/timings", json=batch)).status == 202
    now = time.time()
    for minute in range(3):
        await overview.sample_history(app, now - 60 * (2 - minute))
    history = app[HISTORY]
    route_series = [n for n in history.names() if n.startswith(model.ROUTE_SERIES_PREFIX)]
    assert len(route_series) == model.MAX_ROUTES
    # The slowest routes are the ones shown and tracked: /r69 .. /r30.
    assert f"{model.ROUTE_SERIES_PREFIX}svc GET /r69" in route_series
    assert f"{model.ROUTE_SERIES_PREFIX}svc GET /r29" not in route_series
    assert history.refused == 0
    text = await (await client.get("/")).text()
    body_rows = [r for r in tables(text)["routes"] if r and r[0][0] == "svc"]
    assert len(body_rows) == model.MAX_ROUTES
    assert f"{routes - model.MAX_ROUTES} more routes" in text


RULES = """
groups:
  - name: api
    rules:
      - alert: SlowApi
        expr: metricsd_api_request_window_seconds{quantile="0.95"} > 0.1
        labels: {severity: page}
        annotations: {summary: "p95 of {{ $labels.route }} is slow"}
      - alert: SlowApiForAWhile
        expr: metricsd_api_request_window_seconds{quantile="0.95"} > 0.1
        for: 10m
        labels: {severity: ticket}
      - alert: NeverFires
        expr: metricsd_api_request_window_seconds{quantile="0.95"} > 1000
"""


async def test_alerts_section_and_card_from_the_alert_engine(aiohttp_client, make_config,
                                                             tmp_path):
    rules = tmp_path / "alerts.yml"
    rules.write_text(RULES)
    app = create_app(make_config({"alerting": {"rules": str(rules)}}))
    client = await aiohttp_client(app)
    text = await (await client.get("/")).text()
    assert "Nothing firing or pending (3 rules evaluated)" in text

    slow = timings("shop", "/reports", [250.0] * 20, [200] * 20)
    assert (await client.post("/v1/beacons/timings", json=slow)).status == 202
    await app[ALERTS].evaluate_once()
    app[VIEWS].invalidate()  # the page is recomputed at most once a second: skip the wait
    text = await (await client.get("/")).text()
    assert card_value(text, "Alerts firing") == "1"
    assert "1 pending" in text
    rows = {r[0][0].split(" ")[0]: r for r in tables(text)["alerts"][1:]}
    assert set(rows) == {"SlowApi", "SlowApiForAWhile"}
    firing = rows["SlowApi"]
    assert firing[1][0] == "firing" and firing[2][0] == "page"
    assert firing[4][0] == "p95 of /reports is slow"
    assert 'route="/reports"' in firing[0][0]
    assert rows["SlowApiForAWhile"][1][0] == "pending"


async def test_route_rate_counts_only_the_time_the_process_was_up(client):
    app = client.server.app
    app[STORE].started_at = time.time() - 60  # as if metricsd started a minute ago
    batch = timings("shop", "/a", [5.0] * 120, [200] * 120)
    assert (await client.post("/v1/beacons/timings", json=batch)).status == 202
    text = await (await client.get("/")).text()
    row = next(r for r in tables(text)["routes"] if r[0][0] == "shop")
    rate = float(row[3][0].removesuffix("/s"))
    assert rate == pytest.approx(120 / 60, rel=0.02)  # not 120 / the 300 s window
    app[STORE].started_at = time.time() - 3600  # up for longer than the window
    app[VIEWS].invalidate()  # the page is recomputed at most once a second: skip the wait
    text = await (await client.get("/")).text()
    row = next(r for r in tables(text)["routes"] if r[0][0] == "shop")
    assert float(row[3][0].removesuffix("/s")) == pytest.approx(120 / 300, rel=0.02)


async def test_postgres_section_from_a_real_server(aiohttp_client, make_config, pg_database):
    from tests.fixtures.pg import run_sql

    run_sql(
        pg_database,
        "CREATE TABLE items (id bigint PRIMARY KEY, sku text, note text)",
        "INSERT INTO items SELECT i, 'sku-' || (i % 500), md5(i::text)"
        " FROM generate_series(1, 20000) AS i",
        "CREATE INDEX items_note_idx ON items (note)",
        "ANALYZE items",
    )
    try:  # a failed CREATE INDEX CONCURRENTLY leaves an INVALID index behind
        run_sql(pg_database, "CREATE UNIQUE INDEX CONCURRENTLY items_sku_key ON items (sku)")
    except Exception as exc:
        assert "could not create unique index" in str(exc)
    app = create_app(make_config({"postgres": {
        "scrape_interval": "1h", "slow_query_ms": 100, "missing_index_min_rows": 1000,
        "targets": [{"name": "main", "dsn": pg_database}]}}))
    client = await aiohttp_client(app)
    state = app[PG_STATE]
    await state.scrape_all()  # the baseline: statements are per interval
    run_sql(pg_database, *["SELECT pg_sleep(0.15)"] * 2,
            *["SELECT count(*) FROM items WHERE sku = 'sku-7'"] * 3)
    await state.scrape_all()

    text = await (await client.get("/")).text()
    assert "No PostgreSQL target configured" not in text
    assert 'class="target up">main up' in text
    sections = tables(text)["postgres"]
    link = " plan, changes, advice"  # slow statements link to their plan page
    statements = {r[0][0].removesuffix(link): r for r in sections
                  if r and r[0][0].startswith("SELECT")}
    sleep = statements["SELECT pg_sleep($1)"]
    assert sleep[0][0].endswith(link) and "/plans?target=main&amp;queryid=" in text
    assert 0.15 <= seconds(sleep[1][0]) < 0.3 and sleep[2][0] == "2"
    assert 'class="slow"' in text  # over postgres.slow_query_ms
    scan = statements["SELECT count(*) FROM items WHERE sku = $1"]
    assert scan[2][0] == "3"
    problems = {r[0][0].split(" ")[0]: r[1][0] for r in sections if "on public.items" in r[0][0]}
    assert problems["items_note_idx"].startswith("unused")
    assert problems["items_sku_key"].startswith("invalid")
    assert any(r[0][0] == "public.items" and r[1][0].startswith("seq scans") for r in sections)
    assert card_value(text, "Mean statement time") != "—"
    used, _, limit = card_value(text, "Connections").partition(" / ")
    assert int(used) >= 1 and int(limit) > int(used)
