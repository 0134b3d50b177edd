"""The overview page in real headless Chromium: no horizontal overflow at laptop sizes, a PNG.

The page is filled by real beacons (and real PostgreSQL statistics when the throwaway
cluster fixture is available). The history job is run between batches with its clock
injected a minute apart, so the sparklines show an hour of the same real numbers in a
few seconds. The PNG goes under tmp; METRICSD_UPDATE_SCREENSHOT=1 (`make screenshot`)
copies it to docs/img/overview.png for the README.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from metricsd import overview
from metricsd.alerting import ALERTS
from metricsd.app import create_app
from metricsd.overview import HISTORY
from metricsd.postgres import PG_STATE
from tests.fixtures.browser import launch_chromium
from tests.fixtures.pg import run_sql

ROOT = Path(__file__).resolve().parents[2]
DOCS_PNG = ROOT / "docs" / "img" / "overview.png"
RULES = ROOT / "alerts.yml"  # the rules metricsd ships
MINUTES = 45

ROUTES = [  # (service, method, route, median ms, error share)
    ("shop", "GET", "/products/:id", 18, 0.002),
    ("shop", "GET", "/search", 140, 0.004),
    ("shop", "POST", "/cart/items", 35, 0.01),
    ("shop", "POST", "/checkout", 420, 0.03),
    ("accounts", "POST", "/login", 95, 0.0),
    ("accounts", "GET", "/me", 9, 0.0),
]
PAGES = [  # (page, LCP median ms, INP median ms, CLS median)
    ("/", 1500, 90, 0.02), ("/products/:id", 2300, 160, 0.08), ("/checkout", 3400, 420, 0.21),
    ("/search", 2000, 240, 0.05),
]


def timings(rng: np.random.Generator, minute: int) -> list[dict[str, object]]:
    """A quiet shop with a checkout slowdown in the middle of the hour."""
    out: list[dict[str, object]] = []
    bump = 2.2 if MINUTES // 2 <= minute < MINUTES // 2 + 8 else 1.0
    for service, method, route, median, errors in ROUTES:
        factor = bump if route == "/checkout" else 1.0
        n = int(rng.integers(20, 60))
        for value in rng.lognormal(np.log(median * factor), 0.45, n):
            status = 500 if rng.random() < errors * factor else 200
            out.append({"service": service, "route": route, "method": method,
                        "status": status, "duration_ms": float(value)})
    return out


def vitals(rng: np.random.Generator, minute: int) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    for path, lcp, inp, cls in PAGES:
        for i in range(int(rng.integers(3, 8))):
            ident = f"{minute}-{path}-{i}"
            out += [
                {"name": "LCP", "value": float(rng.lognormal(np.log(lcp), 0.3)), "id": "l" + ident,
                 "page": path},
                {"name": "INP", "value": float(rng.lognormal(np.log(inp), 0.4)), "id": "i" + ident,
                 "page": path},
                {"name": "CLS", "value": float(rng.lognormal(np.log(cls), 0.5)), "id": "c" + ident,
                 "page": path},
                {"name": "FCP", "value": float(rng.lognormal(np.log(lcp * 0.6), 0.3)),
                 "id": "f" + ident, "page": path},
                {"name": "TTFB", "value": float(rng.lognormal(np.log(lcp * 0.25), 0.3)),
                 "id": "t" + ident, "page": path},
            ]
    return out


SCHEMA = (
    "CREATE TABLE customers (id bigint PRIMARY KEY, name text, email text)",
    "INSERT INTO customers SELECT i, 'customer ' || (i % 1500), 'c' || i || '@example.com'"
    " FROM generate_series(1, 3000) AS i",
    "CREATE TABLE orders (id bigint PRIMARY KEY, customer_id bigint, status text, note text,"
    " legacy_ref text)",
    "INSERT INTO orders SELECT i, 1 + i % 3000, 'paid', md5(i::text), 'LEG-' || i"
    " FROM generate_series(1, 50000) AS i",
    "CREATE INDEX orders_legacy_ref_idx ON orders (legacy_ref)",
    "CREATE INDEX orders_customer_idx ON orders (customer_id)",
    "ANALYZE",
)
LOAD = (
    *["SELECT * FROM orders WHERE id = 42"] * 20,
    *["SELECT * FROM orders WHERE customer_id = 7"] * 5,
    *["SELECT * FROM customers WHERE email = 'c7@example.com'"] * 5,
    *["SELECT count(*) FROM orders WHERE note LIKE '%ab%'"] * 3,
    "UPDATE orders SET status = 'shipped' WHERE id = 42",
    "SELECT pg_sleep(0.6)",
)


def postgres_dsn(request) -> str | None:
    """A fresh database on the session cluster; None locally without PostgreSQL."""
    try:
        dsn = request.getfixturevalue("pg_database")
    except pytest.skip.Exception:
        return None
    run_sql(dsn, *SCHEMA)
    try:  # a failed CREATE INDEX CONCURRENTLY leaves an INVALID index, as in real life
        run_sql(dsn, "CREATE UNIQUE INDEX CONCURRENTLY customers_name_key ON customers (name)")
    except Exception as exc:
        assert "could not create unique index" in str(exc)
    return dsn


async def test_overview_in_chromium(tmp_path, make_config, aiohttp_client, request):
    overrides: dict[str, object] = {"ingest": {"rate_limit": {"enabled": False},
                                               "window": {"seconds": 3600}}}
    dsn = postgres_dsn(request)
    if dsn is not None:
        overrides["postgres"] = {"scrape_interval": "1h", "slow_query_ms": 250,
                                 "missing_index_min_rows": 1000,
                                 "targets": [{"name": "main", "dsn": dsn}]}
    if RULES.is_file():
        overrides["alerting"] = {"rules": str(RULES), "evaluation_interval": "1h"}
    app = create_app(make_config(overrides))
    client = await aiohttp_client(app)
    if dsn is not None:
        await app[PG_STATE].scrape_all()  # the baseline of the per-interval statements
        run_sql(dsn, *LOAD)
        await app[PG_STATE].scrape_all()
    rng = np.random.default_rng(2026)
    start = time.time() - 60 * (MINUTES - 1)
    app[HISTORY].started_at = start  # rates, like the trends, cover the compressed hour
    for minute in range(MINUTES):
        assert (await client.post("/v1/beacons/timings", json=timings(rng, minute))).status == 202
        assert (await client.post("/v1/beacons/vitals", json=vitals(rng, minute))).status == 202
        if ALERTS in app:  # the engine's `for:` clocks follow the same compressed hour
            await app[ALERTS].evaluate_once(start + 60 * minute)
        await overview.sample_history(app, start + 60 * minute)

    url = str(client.make_url("/"))
    png = tmp_path / "overview.png"
    async with launch_chromium(tmp_path, window=(1366, 900)) as browser:
        tab = await browser.new_page()
        for width, height in ((1920, 1080), (1366, 768)):
            await tab.send("Emulation.setDeviceMetricsOverride", width=width, height=height,
                           deviceScaleFactor=1, mobile=False)
            await tab.navigate(url)
            overflow = await tab.evaluate(
                "document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 0, f"horizontal scrollbar at {width}x{height}: {overflow}px"
        rows = await tab.evaluate("document.querySelectorAll('#routes tbody tr').length")
        assert rows == len(ROUTES)
        colours = await tab.evaluate(
            "[...document.querySelectorAll('#vitals td.rating')]"
            ".map(td => [td.className, getComputedStyle(td).backgroundColor])")
        by_rating = {cls.split()[-1]: bg for cls, bg in colours}
        assert set(by_rating) == {"good", "needs-improvement", "poor"}
        assert len(set(by_rating.values())) == 3  # three distinct colours
        sparks = await tab.evaluate("document.querySelectorAll('svg.spark path').length")
        assert sparks >= 2 + len(ROUTES)
        await tab.screenshot(png, full_page=True)
    data = png.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 20_000
    if os.environ.get("METRICSD_UPDATE_SCREENSHOT") == "1":
        DOCS_PNG.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(png, DOCS_PNG)
