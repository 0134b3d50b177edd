"""The overview page's Operations and Caches sections show what was sent."""

from __future__ import annotations

import html
import re

import numpy as np
import pytest

from metricsd.app import create_app


@pytest.fixture
async def client(aiohttp_client, make_config):
    app = create_app(make_config({"ingest": {"operations": {
        "ws.delivery": {"objective_ms": 200}, "export.csv": {"objective_ms": 5000}}}}))
    return await aiohttp_client(app)


def section(page: str, ident: str) -> str:
    match = re.search(rf'<section class="panel" id="{ident}".*?</section>', page, re.S)
    assert match, ident
    return html.unescape(match.group(0))


async def test_empty_sections_say_how_to_send(client):
    page = await (await client.get("/")).text()
    assert "/v1/beacons/operations" in section(page, "operations")
    assert "/v1/beacons/cache" in section(page, "caches")


async def test_operations_against_objective_and_outcomes(client):
    rng = np.random.default_rng(5)
    slow = rng.uniform(250, 400, 100)  # ws.delivery p95 well above 200 ms
    batch = [{"service": "chat", "operation": "ws.delivery", "duration_ms": float(d),
              "outcome": "timeout" if i < 7 else "ok"} for i, d in enumerate(slow)]
    batch += [{"service": "exp", "operation": "export.csv", "duration_ms": 1200.0}] * 3
    assert (await client.post("/v1/beacons/operations", json=batch)).status == 202
    text = section(await (await client.get("/")).text(), "operations")
    rows = re.findall(r"<tr>.*?</tr>", text.split("<tbody>", 1)[1], re.S)
    assert "ws.delivery" in rows[0] and "bad-text" in rows[0]  # over objective: listed first
    p95 = np.percentile(slow / 1000.0, 95)
    assert f"p95 {p95 * 1e3:.3g} ms / 200 ms" in rows[0]
    assert "timeout 7" in rows[0] and "ok 93" in rows[0]
    assert "export.csv" in rows[1] and "bad-text" not in rows[1] and "ok 3" in rows[1]


async def test_caches_hit_ratio_size_entries_and_top_keys(client):
    report = {"service": "cms", "cache": "templates", "hits": 700, "misses": 300,
              "entries": 420, "size_bytes": 3 * 1024 * 1024,
              "top_keys": [{"key": "home.html", "hits": 500}, {"key": "<b>x</b>", "hits": 9}]}
    assert (await client.post("/v1/beacons/cache", json=report)).status == 202
    raw = await (await client.get("/")).text()
    assert "<b>x</b>" not in raw  # escaped
    text = section(raw, "caches")
    assert "70.0 %" in text and "bad-text" in text  # under 80 %
    assert "420" in text and "3 MB" in text
    assert text.index("home.html") < text.index("<b>x</b>")
