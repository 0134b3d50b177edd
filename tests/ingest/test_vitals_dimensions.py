"""Issue 17: device and connection dimensions, the CWV assessment, templates and budget."""

from __future__ import annotations

import asyncio
import io
import itertools
import json
import random
import sys

import numpy as np
import pytest

from metricsd.ingest import BEACON_TYPES, STORE
from metricsd.ingest.pages import PageBudget, Templates
from metricsd.vitals import ASSESSED, VITALS, device_class
from tests.fixtures.appclient import value

IDS = itertools.count()
CHROME_DESKTOP = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
                  "Chrome/120.0.0.0 Safari/537.36")
PIXEL = ("Mozilla/5.0 (Linux; Android 14; Pixel 7) AppleWebKit/537.36 (KHTML, like Gecko) "
         "Chrome/120.0.0.0 Mobile Safari/537.36")
IPHONE = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
          "(KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1")
IPAD = ("Mozilla/5.0 (iPad; CPU OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
        "Gecko) Version/17.0 Mobile/15E148 Safari/604.1")
GALAXY_TAB = ("Mozilla/5.0 (Linux; Android 13; SM-X706B) AppleWebKit/537.36 (KHTML, like "
              "Gecko) Chrome/120.0.0.0 Safari/537.36")


def vital(name: str, value: float, page: str, **extra: object) -> dict[str, object]:
    return {"name": name, "value": value, "id": f"v-{next(IDS)}", "page": page,
            "navigationType": "navigate", **extra}




async def post(client, items, headers=None):
    for start in range(0, len(items), 10_000):
        body = io.BytesIO(json.dumps(items[start:start + 10_000]).encode())
        resp = await client.post("/v1/beacons/vitals", data=body,
                                 headers={"Content-Type": "application/json", **(headers or {})})
        assert resp.status == 202, await resp.text()
        body = await resp.json()
        assert body["rejected"] == 0, body


# --- device class ------------------------------------------------------------------

@pytest.mark.parametrize(("sent", "ua", "hint", "expected"), [
    ("mobile", CHROME_DESKTOP, None, "mobile"),  # the client knows best
    ("tablet", None, None, "tablet"),
    ("desktop", PIXEL, "?1", "desktop"),
    ("unknown", PIXEL, None, "mobile"),  # "unknown" from the client: the server decides
    ("phone", CHROME_DESKTOP, None, "desktop"),  # not a device class: ignored
    (7, IPHONE, None, "mobile"),
    (None, CHROME_DESKTOP, "?1", "mobile"),  # client hint wins over the User-Agent
    (None, IPAD, "?0", "tablet"),
    (None, PIXEL, None, "mobile"),
    (None, IPHONE, None, "mobile"),
    (None, IPAD, None, "tablet"),
    (None, GALAXY_TAB, None, "tablet"),
    (None, CHROME_DESKTOP, "?0", "desktop"),
    (None, "curl/8.0", None, "unknown"),
    (None, None, None, "unknown"),
    (None, "", None, "unknown"),
])
def test_device_class(sent, ua, hint, expected):
    assert device_class(sent, ua, hint) == expected


async def test_device_and_connection_labels_from_beacon_and_headers(make_client):
    client = await make_client()
    await post(client, [vital("LCP", 1000.0, "/a", connection="3g")], {"User-Agent": PIXEL})
    await post(client, [vital("LCP", 1000.0, "/a", connection="5g")],
               {"User-Agent": CHROME_DESKTOP})
    await post(client, [vital("LCP", 1000.0, "/a", device="tablet", connection="4g")],
               {"User-Agent": CHROME_DESKTOP})
    base = {"metric": "LCP", "page": "/a", "rating": "good", "navigation_type": "navigate"}
    ratings = "metricsd_web_vitals_ratings_total"
    assert value(client, ratings, **base, device="mobile", connection="3g") == 1
    assert value(client, ratings, **base, device="desktop", connection="unknown") == 1
    assert value(client, ratings, **base, device="tablet", connection="4g") == 1
    for device in ("mobile", "desktop", "tablet"):
        assert value(client, "metricsd_web_vitals_lcp_seconds_count", page="/a",
                     device=device) == 1


# --- exactness: p75 and shares against numpy -------------------------------------------

async def test_p75_and_rating_shares_equal_numpy(make_client):
    client = await make_client({"ingest": {"window": {"samples": 512}}})
    rng = np.random.default_rng(17)
    expected = {}
    items = []
    for page, device, name in itertools.product(("/p1", "/p2"), ("mobile", "desktop"),
                                                ("LCP", "INP", "CLS", "TTFB")):
        n = int(rng.integers(1, 300))
        spec = VITALS[name]
        scale = 1000.0 if spec.unit else 1.0
        values = rng.lognormal(np.log(spec.good * scale), 0.6, n).round(3)
        expected[(page, device, name)] = values / scale
        items += [vital(name, float(v), page, device=device) for v in values]
    random.Random(1).shuffle(items)
    await post(client, items)
    for (page, device, name), values in expected.items():
        spec = VITALS[name]
        p75 = value(client, spec.window_name, page=page, device=device, quantile="0.75")
        assert p75 == pytest.approx(np.percentile(values, 75), rel=1e-12, abs=1e-12)
        ratings = np.array([spec.rating_index(v) for v in values])
        for index, rating in enumerate(("good", "needs-improvement", "poor")):
            share = value(client, "metricsd_web_vitals_window_rating_ratio", metric=name,
                          page=page, device=device, rating=rating)
            assert share == pytest.approx(np.mean(ratings == index), abs=1e-12), (
                page, device, name, rating)
    # /v1/summary (the shared snapshot) has the same numbers, one row per page and device.
    summary = await (await client.get("/v1/summary")).json()
    rows = {(r["page"], r["device"], r["metric"]): r for r in summary["web_vitals"]}
    assert set(rows) == set(expected)
    for key, values in expected.items():
        spec = VITALS[key[2]]
        assert rows[key]["count"] == len(values)
        assert rows[key]["quantiles"]["p75"] == pytest.approx(np.percentile(values, 75),
                                                              rel=1e-12, abs=1e-12)
        counts = np.bincount([spec.rating_index(v) for v in values], minlength=3).tolist()
        assert list(rows[key]["ratings"].values()) == counts, key


# --- the assessment gauge ----------------------------------------------------------

def _views(page: str, device: str, p75s: dict[str, float], n: int) -> list[dict[str, object]]:
    """n views whose window p75 of each vital is exactly p75s[name] (a constant sample)."""
    out = []
    for name, target in p75s.items():
        scale = 1000.0 if VITALS[name].unit else 1.0
        out += [vital(name, target * scale, page, device=device) for _ in range(n)]
    return out


@pytest.mark.parametrize("flipped", ASSESSED)
async def test_pass_flips_exactly_at_one_vitals_threshold(make_client, flipped):
    client = await make_client({"ingest": {"vitals_min_page_views": 20}})
    at = {name: VITALS[name].good for name in ASSESSED}  # exactly good: passes
    above = dict(at)
    above[flipped] = np.nextafter(VITALS[flipped].good, 1.0) if flipped == "CLS" else \
        (VITALS[flipped].good * 1000.0 + 0.001) / 1000.0
    await post(client, _views("/at", "mobile", at, 20) + _views("/above", "mobile", above, 20))
    gauge = "metricsd_web_vitals_cwv_pass"
    assert value(client, gauge, page="/at", device="mobile") == 1
    assert value(client, gauge, page="/above", device="mobile") == 0


async def test_pass_matches_numpy_for_random_pages(make_client):
    client = await make_client({"ingest": {"vitals_min_page_views": 5}})
    rng = np.random.default_rng(3)
    truth = {}
    items = []
    for i in range(40):
        page = f"/r{i}"
        p75s = {}
        for name in ASSESSED:
            spec = VITALS[name]
            scale = 1000.0 if spec.unit else 1.0
            n = int(rng.integers(5, 60))
            # p75 near the good line: some pages pass, some fail on one vital or more
            centre = spec.good * rng.uniform(0.55, 1.0)
            values = (rng.normal(centre, spec.good * 0.25, n).clip(0) * scale).round(3)
            items += [vital(name, float(v), page, device="desktop") for v in values]
            p75s[name] = np.percentile(values / scale, 75)
        truth[page] = all(p75s[n] <= VITALS[n].good for n in ASSESSED)
    await post(client, items)
    got = {page: value(client, "metricsd_web_vitals_cwv_pass", page=page, device="desktop")
           for page in truth}
    assert got == {page: float(ok) for page, ok in truth.items()}
    assert 0 < sum(truth.values()) < len(truth)  # both outcomes were exercised


async def test_pass_is_absent_below_the_minimum(make_client):
    client = await make_client({"ingest": {"vitals_min_page_views": 20}})
    good = {name: VITALS[name].good / 2 for name in ASSESSED}
    await post(client, _views("/few", "desktop", good, 19))
    gauge = "metricsd_web_vitals_cwv_pass"
    assert value(client, gauge, page="/few", device="desktop") is None
    await post(client, _views("/few", "desktop", {"CLS": 0.01}, 1))  # the 20th view
    await asyncio.sleep(1.05)  # window stats are cached for one tick
    assert value(client, gauge, page="/few", device="desktop") == 1
    # Page views are per device: the same page on phones is still too thin to judge.
    await post(client, _views("/few", "mobile", good, 5))
    await asyncio.sleep(1.05)
    assert value(client, gauge, page="/few", device="mobile") is None
    summary = await (await client.get("/v1/summary")).json()
    judged = {(e["page"], e["device"]): e["pass"] for e in summary["web_vitals_assessment"]}
    assert judged == {("/few", "desktop"): True, ("/few", "mobile"): None}


async def test_no_inp_is_not_held_against_a_page(make_client):
    client = await make_client({"ingest": {"vitals_min_page_views": 3}})
    await post(client, _views("/static", "desktop", {"LCP": 1.0, "CLS": 0.0}, 3))
    assert value(client, "metricsd_web_vitals_cwv_pass", page="/static", device="desktop") == 1


# --- templates and the page budget ---------------------------------------------------

def test_templates_before_the_id_collapse():
    t = Templates(["/blog/:slug", "/products/:id/reviews", "/docs/*", "/"])
    assert t.apply("/blog/hello-world?utm=1") == "/blog/:slug"
    assert t.apply("/blog/hello/world") == "/blog/hello/world"  # one segment only
    assert t.apply("/products/abc-123/reviews") == "/products/:id/reviews"
    assert t.apply("/products/42") == "/products/:id"  # no template: automatic collapse
    assert t.apply("/docs/a/b/c") == "/docs/*"
    assert t.apply("/") == "/"
    assert Templates([]).apply("/orders/123") == "/orders/:id"
    # A whole URL (location.href as the page) is matched by its path.
    assert t.apply("https://shop.example/blog/hello-world?utm=1#top") == "/blog/:slug"
    assert t.apply("HTTP://shop.example/products/9/reviews") == "/products/:id/reviews"
    assert t.apply("https://shop.example") == "/"
    assert Templates([]).apply("https://shop.example/orders/123") == "/orders/:id"


def test_page_budget_counts_other_and_lets_idle_pages_go():
    overflow = []
    evicted = []
    budget = PageBudget(2, idle_timeout=100.0, on_overflow=lambda: overflow.append(1),
                        on_evict=evicted.append)
    assert [budget.admit(p, 0.0) for p in ("/a", "/b", "/c", "/a")] == ["/a", "/b", "other",
                                                                       "/a"]
    assert len(overflow) == 1
    budget.admit("/a", 150.0)  # /b idle since 0
    assert budget.admit("/d", 160.0) == "/d" and evicted == ["/b"]


async def test_100k_random_pages_stay_within_the_page_budget(make_client):
    limit = 300
    client = await make_client({"ingest": {
        "max_series": 20_000, "max_items": 10_000, "max_body_bytes": 8_000_000,
        "pages": {"templates": ["/blog/:slug", "/products/:id/reviews"], "budget": limit}}})
    rng = random.Random(17)
    words = ["".join(rng.choices("abcdefghijklmnopqrstuvwxyz", k=rng.randint(3, 10)))
             for _ in range(5000)]
    pages, expected = [], []
    for _ in range(100_000):
        kind = rng.random()
        if kind < 0.3:
            pages.append(f"/blog/{rng.choice(words)}-{rng.choice(words)}")
            expected.append("/blog/:slug")
        elif kind < 0.5:
            pages.append(f"/products/{rng.choice(words)}/reviews")
            expected.append("/products/:id/reviews")
        else:
            path = f"/{rng.choice(words)}/{rng.choice(words)}"
            pages.append(path)
            expected.append(path)
    seen: set[str] = set()
    other = 0
    for page in expected:  # the budget's rule, replayed
        if page in seen or len(seen) < limit:
            seen.add(page)
        else:
            other += 1
    await post(client, [vital("LCP", 1000.0, p) for p in pages])
    store = client.app_[STORE]
    stored = {key[0] for key in store.families["LCP"].slot_of}
    assert stored == seen | {"other"}
    assert len(stored) == limit + 1
    assert value(client, "metricsd_ingest_pages_other_total", type="vitals") == other
    assert value(client, "metricsd_web_vitals_lcp_seconds_count", page="other",
                 device="unknown") == other
    kind = client.app_[BEACON_TYPES]["vitals"]
    assert len(kind.state.budget.last_seen) == limit
    # Memory: the budget's map holds `limit` entries whatever the traffic.
    assert sys.getsizeof(kind.state.budget.last_seen) < 64 * 1024


async def test_promtool_accepts_every_new_family(make_client):
    """cwv_pass, rating ratios, connection labels, attribution parts, pages_other: lint clean."""
    import subprocess

    from tests.fixtures.binaries import require_binary

    promtool = require_binary("promtool")
    client = await make_client({"ingest": {"vitals_min_page_views": 2,
                                           "pages": {"budget": 2}}})
    items = _views("/a", "mobile", {"LCP": 1.0, "INP": 0.1, "CLS": 0.01}, 3)
    items += _views("/b", "desktop", {"LCP": 3.0, "INP": 0.1, "CLS": 0.01}, 3)
    items += [vital("LCP", 1000.0, "/c", connection="3g")]  # over the page budget
    items += [vital("INP", 300.0, "/a", attribution={
        "target": "#buy", "inputDelay": 5, "processingDuration": 250, "presentationDelay": 45,
        "scriptURL": "https://cdn.example/app.js"}),
              vital("LCP", 3000.0, "/a", attribution={
                  "target": "img", "url": "/hero.jpg", "timeToFirstByte": 100,
                  "resourceLoadDelay": 50, "resourceLoadDuration": 2000,
                  "elementRenderDelay": 10})]
    await post(client, items)
    body = await (await client.get("/metrics")).read()
    for name in ("metricsd_web_vitals_cwv_pass{", "metricsd_web_vitals_window_rating_ratio{",
                 'connection="3g"', "metricsd_web_vitals_attribution_window_seconds{",
                 "metricsd_ingest_pages_other_total{"):
        assert name.encode() in body, name
    result = await asyncio.to_thread(subprocess.run, [promtool, "check", "metrics"], input=body,
                                     capture_output=True, timeout=60)
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()
    assert result.stdout.strip() == b"" and result.stderr.strip() == b""
