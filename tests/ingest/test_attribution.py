"""Issue 17: attribution fields validated, heavy hitters ranked by weight, sub-part p75s."""

from __future__ import annotations

import asyncio
import itertools
import random

import numpy as np
import pytest

from metricsd.app import create_app
from metricsd.core import REGISTRY
from metricsd.ingest.attribution import HeavyHitters

IDS = itertools.count()


def inp(value: float, page: str = "/cart", **attribution: object) -> dict[str, object]:
    return {"name": "INP", "value": value, "id": f"a-{next(IDS)}", "page": page,
            "attribution": attribution}


@pytest.fixture
async def client(aiohttp_client, make_config):
    app = create_app(make_config({}))
    c = await aiohttp_client(app)
    c.registry = app[REGISTRY]
    return c


async def post(client, items):
    resp = await client.post("/v1/beacons/vitals", json=items)
    assert resp.status == 202
    return await resp.json()


async def test_bad_attribution_rejects_the_item_and_keeps_the_batch(client):
    body = await post(client, [
        inp(300.0, target="#buy"),
        inp(300.0, target=7),
        inp(300.0, target="#buy", processingDuration=-1),
        inp(300.0, target="#buy", processingDuration="12"),
        inp(300.0, target="bad\x00selector"),
        {**inp(300.0), "attribution": ["#buy"]},
    ])
    assert body["accepted"] == 1
    assert [e["reason"] for e in body["errors"]] == ["bad_attribution"] * 3 + [
        "bad_string", "bad_attribution"]


async def test_texts_are_cut_and_urls_lose_their_query(client):
    await post(client, [
        inp(600.0, target="div>" * 200, scriptURL="https://cdn.example/app.js?v=1#x"),
        {"name": "LCP", "value": 3000.0, "id": "lcp-1", "page": "/cart",
         "attribution": {"target": "img.hero", "url": "https://cdn.example/hero.jpg?w=800"}},
    ])
    got = await (await client.get("/v1/vitals/attribution", params={"page": "/cart"})).json()
    (page,) = got["pages"]
    (target,) = page["targets"]["INP"]
    assert len(target["target"]) == 256  # ingest.max_string_length
    assert page["inp_scripts"][0]["target"] == "https://cdn.example/app.js"
    assert page["lcp_resources"][0]["target"] == "/hero.jpg"
    assert page["targets"]["LCP"][0]["target"] == "img.hero"


async def test_targets_behind_poor_experiences_rank_first(client):
    # Many good interactions on #search, fewer but poor ones on #buy.
    items = [inp(50.0, target="#search") for _ in range(30)]
    items += [inp(900.0, target="#buy") for _ in range(5)]
    await post(client, items)
    got = await (await client.get("/v1/vitals/attribution")).json()
    ranked = got["pages"][0]["targets"]["INP"]
    assert [t["target"] for t in ranked] == ["#buy", "#search"]
    assert ranked[0]["poor"] == 5 and ranked[0]["reports"] == 5
    assert ranked[0]["weight"] == pytest.approx(5 * 0.9 / 0.2)
    assert ranked[1]["weight"] == pytest.approx(30 * 0.05 / 0.2)


def test_space_saving_stays_bounded_and_keeps_the_heavy_hitter():
    hh = HeavyHitters(k=10)
    rng = random.Random(5)
    heavy = 0.0
    for _ in range(20_000):
        if rng.random() < 0.1:
            hh.add("#hot", 1.0, False)
            heavy += 1.0
        else:
            hh.add(f"#cold-{rng.randrange(100_000)}", 1.0, False)
    assert len(hh.items) == 10
    top = hh.top()[0]
    assert top["target"] == "#hot"
    # Space-Saving never under-estimates, and over-estimates by at most its error.
    assert top["weight"] - top["error"] <= heavy <= top["weight"]


async def test_sub_part_p75_equals_numpy(client):
    rng = np.random.default_rng(9)
    processing = rng.uniform(10, 400, 200).round(2)
    delay = rng.uniform(1, 50, 200).round(2)
    await post(client, [inp(float(p + d + 16), target="#buy", processingDuration=float(p),
                            inputDelay=float(d), presentationDelay=16.0)
                        for p, d in zip(processing, delay, strict=True)])
    await asyncio.sleep(0)
    got = await (await client.get("/v1/vitals/attribution")).json()
    parts = got["pages"][0]["parts"]
    assert parts["inp_processing_duration"]["p75_seconds"] == pytest.approx(
        np.percentile(processing / 1000, 75), rel=1e-12)
    assert parts["inp_input_delay"]["p75_seconds"] == pytest.approx(
        np.percentile(delay / 1000, 75), rel=1e-12)
    assert parts["inp_presentation_delay"]["count"] == 200
    assert client.registry.get_sample_value(
        "metricsd_web_vitals_attribution_window_seconds",
        {"page": "/cart", "part": "inp_processing_duration", "quantile": "0.75"},
    ) == pytest.approx(np.percentile(processing / 1000, 75), rel=1e-12)


async def test_repeated_id_is_attributed_once(client):
    item = inp(300.0, target="#buy", processingDuration=250.0)
    await post(client, [item])
    await post(client, [{**item, "value": 400.0}])
    got = await (await client.get("/v1/vitals/attribution")).json()
    assert got["pages"][0]["targets"]["INP"][0]["reports"] == 1
    assert got["pages"][0]["parts"]["inp_processing_duration"]["count"] == 1


async def test_overview_shows_the_verdict_and_what_makes_the_page_slow(client):
    views = []
    for i in range(20):  # the default minimum of page views
        views += [{"name": "LCP", "value": 1000.0, "id": f"l{i}", "page": "/ok"},
                  {"name": "CLS", "value": 0.01, "id": f"c{i}", "page": "/ok"},
                  {"name": "LCP", "value": 5000.0, "id": f"L{i}", "page": "/slow"},
                  {"name": "CLS", "value": 0.01, "id": f"C{i}", "page": "/slow"}]
    views.append(inp(900.0, page="/slow", target="#add-to-cart"))
    await post(client, views)
    text = await (await client.get("/")).text()
    vitals = text[text.index('id="vitals"'):]
    row = {page: vitals[vitals.index(f"<code>{page}</code>"):][:400] for page in ("/ok", "/slow")}
    assert "passed" in row["/ok"] and "failed" not in row["/ok"]
    assert "failed" in row["/slow"]
    slow = vitals[vitals.index("What makes these pages slow"):]
    assert "INP element <code>#add-to-cart</code>" in slow
