"""The beacon routes' public contract: statuses, bodies, CORS, tokens, limits, dedupe."""

from __future__ import annotations

import gzip
import json
import time

import numpy as np
import pytest

from metricsd.ingest import STORE
from metricsd.overview import VIEWS
from tests.fixtures.appclient import value

TIMING = {"service": "shop", "route": "/orders/123", "method": "get", "status": 200,
          "duration_ms": 12.5}


def vital(name="LCP", value=2100.0, ident="v5-1", **extra):
    return {"name": name, "value": value, "rating": "good", "delta": value, "id": ident,
            "navigationType": "navigate", **extra}




async def test_single_timing_is_accepted_and_normalised(make_client):
    client = await make_client()
    resp = await client.post("/v1/beacons/timings", json=TIMING)
    assert resp.status == 202
    assert await resp.json() == {"accepted": 1, "rejected": 0, "errors": []}
    labels = {"service": "shop", "route": "/orders/:id", "method": "GET"}
    assert value(client, "metricsd_api_requests_total", **labels, status_class="2xx") == 1
    assert value(client, "metricsd_api_request_duration_seconds_sum", **labels) == 0.0125
    assert value(client, "metricsd_api_request_duration_seconds_bucket", **labels, le="0.01") == 0
    assert value(client, "metricsd_api_request_duration_seconds_bucket", **labels, le="0.025") == 1


async def test_batch_keeps_valid_items_and_reports_the_others(make_client):
    client = await make_client()
    bad = [
        {**TIMING, "duration_ms": -1},
        {**TIMING, "status": "200"},
        {**TIMING, "status": 700},
        {**TIMING, "service": ""},
        {**TIMING, "route": "x" * 1000},
        {k: v for k, v in TIMING.items() if k != "method"},
        "not an object",
        {**TIMING, "duration_ms": True},
        {**TIMING, "duration_ms": 1e12},
        {**TIMING, "timestamp": time.time() + 86400},
    ]
    resp = await client.post("/v1/beacons/timings", json=[TIMING, *bad, TIMING])
    assert resp.status == 202
    body = await resp.json()
    assert body["accepted"] == 2 and body["rejected"] == len(bad)
    assert [e["index"] for e in body["errors"]] == list(range(1, len(bad) + 1))
    reasons = [e["reason"] for e in body["errors"]]
    assert reasons == ["out_of_range", "wrong_type", "out_of_range", "bad_string", "bad_string",
                       "missing_field", "not_object", "wrong_type", "out_of_range",
                       "out_of_range"]
    assert all(e["error"] for e in body["errors"])
    assert value(client, "metricsd_ingest_rejected_total", type="timings",
                 reason="out_of_range") == 4


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999"])
async def test_nan_and_infinity_are_rejected_per_item(make_client, literal):
    client = await make_client()
    # Python's json.dumps writes NaN and Infinity, so a sender's batch may hold them.
    good = json.dumps(TIMING)
    bad = good.replace("12.5", literal)
    resp = await client.post("/v1/beacons/timings", data=f"[{good},{bad}]")
    assert resp.status == 202
    body = await resp.json()
    assert body["accepted"] == 1
    assert body["errors"] == [{"index": 1, "reason": "out_of_range",
                               "error": "duration_ms must be finite"}]


async def test_nothing_valid_is_400_and_not_json_is_400(make_client):
    client = await make_client()
    resp = await client.post("/v1/beacons/timings", json=[{"service": 1}])
    assert resp.status == 400
    assert (await resp.json())["rejected"] == 1
    resp = await client.post("/v1/beacons/timings", data=b"{not json")
    assert resp.status == 400
    assert "JSON" in (await resp.json())["error"]
    resp = await client.post("/v1/beacons/timings", json=[])
    assert resp.status == 400
    assert value(client, "metricsd_ingest_requests_total", type="timings", code="400") == 3


async def test_unknown_beacon_type_is_404_with_the_valid_routes(make_client):
    client = await make_client()
    resp = await client.post("/v1/beacons/logs", json={})
    assert resp.status == 404
    assert "/v1/beacons/vitals" in (await resp.json())["error"]


async def test_tokens_are_required_on_timings_only(make_client):
    client = await make_client({"ingest": {"tokens": ["s3cret", "other"]}})
    resp = await client.post("/v1/beacons/timings", json=TIMING)
    assert resp.status == 401
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    resp = await client.post("/v1/beacons/timings", json=TIMING,
                             headers={"Authorization": "Bearer wrong"})
    assert resp.status == 401
    for token in ("s3cret", "other"):
        resp = await client.post("/v1/beacons/timings", json=TIMING,
                                 headers={"Authorization": f"Bearer {token}"})
        assert resp.status == 202
    resp = await client.post("/v1/beacons/vitals", json=vital())
    assert resp.status == 202  # browsers cannot keep a secret; vitals need no token
    assert value(client, "metricsd_ingest_rejected_total", type="timings",
                 reason="unauthorized") == 2


async def test_body_and_item_limits_are_413(make_client):
    client = await make_client({"ingest": {"max_body_bytes": 4096, "max_items": 5}})
    resp = await client.post("/v1/beacons/timings", data=b"[" + b" " * 5000 + b"]")
    assert resp.status == 413
    assert (await resp.json())["reason"] == "body_too_large"
    resp = await client.post("/v1/beacons/timings", json=[TIMING] * 6)
    assert resp.status == 413
    assert (await resp.json())["reason"] == "too_many_items"
    resp = await client.post("/v1/beacons/timings", json=[TIMING] * 5)
    assert resp.status == 202


async def test_chunked_body_over_the_limit_is_413(make_client):
    client = await make_client({"ingest": {"max_body_bytes": 4096}})

    async def chunks():
        for _ in range(10):
            yield b" " * 1000

    resp = await client.post("/v1/beacons/timings", data=chunks())
    assert resp.status == 413


async def test_gzip_bodies_are_read_and_bombs_are_413(make_client):
    client = await make_client({"ingest": {"max_body_bytes": 4096}})
    headers = {"Content-Encoding": "gzip", "Content-Type": "application/json"}
    body = gzip.compress(json.dumps([TIMING] * 3).encode())
    resp = await client.post("/v1/beacons/timings", data=body, headers=headers)
    assert resp.status == 202 and (await resp.json())["accepted"] == 3
    bomb = gzip.compress(b"[" + b" " * 3_000_000 + b"]")  # 3 KB that inflates to 3 MB
    assert len(bomb) < 4096
    resp = await client.post("/v1/beacons/timings", data=bomb, headers=headers)
    assert resp.status == 413


async def test_rate_limit_answers_429_with_retry_after(make_client):
    client = await make_client({"ingest": {"rate_limit": {
        "enabled": True, "requests_per_second": 0.5, "burst": 3}}})
    statuses = [(await client.post("/v1/beacons/timings", json=TIMING)).status
                for _ in range(5)]
    assert statuses == [202, 202, 202, 429, 429]
    resp = await client.post("/v1/beacons/timings", json=TIMING)
    assert resp.status == 429
    assert int(resp.headers["Retry-After"]) == 2  # one token every 2 s
    assert value(client, "metricsd_ingest_rate_limited_total", type="timings") == 3


async def test_rate_limit_is_off_for_loopback_by_default(make_client):
    client = await make_client({"ingest": {"rate_limit": {"requests_per_second": 1,
                                                          "burst": 1}}})
    statuses = {(await client.post("/v1/beacons/timings", json=TIMING)).status
                for _ in range(10)}
    assert statuses == {202}


async def test_rate_limit_per_forwarded_client_behind_a_trusted_proxy(make_client):
    client = await make_client({"ingest": {"rate_limit": {
        "enabled": True, "requests_per_second": 0.1, "burst": 1,
        "trusted_proxies": ["127.0.0.0/8"]}}})

    async def post(ip):
        return (await client.post("/v1/beacons/timings", json=TIMING,
                                  headers={"X-Forwarded-For": f"{ip}, 127.0.0.1"})).status

    assert [await post("203.0.113.1"), await post("203.0.113.2")] == [202, 202]
    assert await post("203.0.113.1") == 429


async def test_vitals_text_plain_body_and_referer_page(make_client):
    client = await make_client()
    resp = await client.post(
        "/v1/beacons/vitals",
        data=json.dumps([vital("LCP", 2600.0, "a"), vital("CLS", 0.3, "b"),
                         vital("INP", 150.0, "c", page="/products/{id}")]),
        headers={"Content-Type": "text/plain;charset=UTF-8",
                 "Referer": "https://shop.example/products/42?utm=x"},
    )
    assert resp.status == 202
    assert (await resp.json())["accepted"] == 3
    lcp = {"metric": "LCP", "page": "/products/:id", "navigation_type": "navigate",
           "device": "unknown", "connection": "unknown"}
    # 2.6 s is above LCP's 2.5 s "good" line and below 4 s: needs-improvement.
    assert value(client, "metricsd_web_vitals_ratings_total", **lcp,
                 rating="needs-improvement") == 1
    assert value(client, "metricsd_web_vitals_lcp_seconds_sum", page="/products/:id",
                 device="unknown") == 2.6
    assert value(client, "metricsd_web_vitals_cls_sum", page="/products/:id",
                 device="unknown") == 0.3
    assert value(client, "metricsd_web_vitals_ratings_total", metric="CLS",
                 page="/products/:id", device="unknown", rating="poor",
                 navigation_type="navigate", connection="unknown") == 1
    assert value(client, "metricsd_web_vitals_inp_seconds_count", page="/products/{id}",
                 device="unknown") == 1


async def test_vitals_validation(make_client):
    client = await make_client()
    items = [vital("LCP", 1000.0, "ok"), vital("XYZ", 1.0, "u"), vital("LCP", -5.0, "n"),
             {**vital(), "id": 7}, vital("CLS", 1000.0, "huge"), {**vital(), "rating": "meh"},
             vital("FID", 50.0, "old-client")]
    resp = await client.post("/v1/beacons/vitals", json=items)
    body = await resp.json()
    assert resp.status == 202
    assert body["accepted"] == 2
    assert [e["reason"] for e in body["errors"]] == [
        "unknown_name", "out_of_range", "wrong_type", "out_of_range", "wrong_type"]
    assert "LCP" in body["errors"][0]["error"]  # says what is allowed


async def test_repeated_vitals_id_is_not_counted_twice(make_client):
    client = await make_client()
    page = {"page": "/checkout"}
    first = [vital("CLS", 0.05, "v5-cls", **page), vital("LCP", 1800.0, "v5-lcp", **page)]
    assert (await client.post("/v1/beacons/vitals", json=first)).status == 202
    # On the next page hide web-vitals reports CLS again, larger, with the same id.
    again = [vital("CLS", 0.3, "v5-cls", **page), vital("LCP", 1800.0, "v5-lcp", **page)]
    assert (await client.post("/v1/beacons/vitals", json=again)).status == 202
    cls_count = value(client, "metricsd_web_vitals_cls_count", page="/checkout",
                        device="unknown")
    assert cls_count == 1
    assert value(client, "metricsd_web_vitals_cls_window", page="/checkout", device="unknown",
                 quantile="0.5") == 0.3  # the window holds the latest value
    assert value(client, "metricsd_web_vitals_window_ratings", metric="CLS",
                 page="/checkout", device="unknown", rating="poor") == 1
    assert value(client, "metricsd_web_vitals_window_ratings", metric="CLS",
                 page="/checkout", device="unknown", rating="good") == 0
    assert value(client, "metricsd_web_vitals_lcp_seconds_count", page="/checkout",
                        device="unknown") == 1
    assert value(client, "metricsd_ingest_vitals_duplicates_total", action="updated") == 1
    assert value(client, "metricsd_ingest_vitals_duplicates_total", action="ignored") == 1


async def test_cors_preflight_echoes_an_allowed_origin(make_client):
    client = await make_client({"ingest": {"cors_origins": ["https://shop.example"]}})
    pre = {"Origin": "https://shop.example", "Access-Control-Request-Method": "POST",
           "Access-Control-Request-Headers": "content-type"}
    resp = await client.options("/v1/beacons/vitals", headers=pre)
    assert resp.status == 200
    assert resp.headers["Access-Control-Allow-Origin"] == "https://shop.example"
    assert resp.headers["Access-Control-Allow-Credentials"] == "true"
    resp = await client.post("/v1/beacons/vitals", json=vital(),
                             headers={"Origin": "https://shop.example"})
    assert resp.headers["Access-Control-Allow-Origin"] == "https://shop.example"
    assert resp.headers["Vary"] == "Origin"
    resp = await client.options("/v1/beacons/vitals",
                                headers={**pre, "Origin": "https://evil.example"})
    assert resp.status == 403
    assert "Access-Control-Allow-Origin" not in resp.headers


async def test_cors_wildcard_still_echoes_the_origin(make_client):
    client = await make_client()  # default cors_origins: ["*"]
    resp = await client.post("/v1/beacons/vitals", json=vital(),
                             headers={"Origin": "https://any.example"})
    assert resp.headers["Access-Control-Allow-Origin"] == "https://any.example"


async def test_max_series_caps_and_counts_drops(make_client):
    client = await make_client({"ingest": {"max_series": 25, "budgets": {"timings": 20}}})
    batch = [{**TIMING, "route": f"/r/{name}"} for name in
             ("a", "b", "c", "d", "e", "f", "g", "h", "i", "j",
              "k", "l", "m", "n", "o", "p", "q", "r", "s", "t", "u", "v", "w", "x", "y")]
    resp = await client.post("/v1/beacons/timings", json=batch)
    body = await resp.json()
    assert body["accepted"] == 20 and body["rejected"] == 5
    assert {e["reason"] for e in body["errors"]} == {"series_limit"}
    assert value(client, "metricsd_series_dropped_samples_total", family="api") == 5
    assert value(client, "metricsd_series", family="api") == 20


async def test_summary_reports_window_quantiles(make_client):
    client = await make_client()
    durations = np.random.default_rng(3).lognormal(3, 1, 500)
    batch = [{**TIMING, "duration_ms": float(d), "status": 500 if i % 10 == 0 else 200}
             for i, d in enumerate(durations)]
    assert (await client.post("/v1/beacons/timings", json=batch)).status == 202
    resp = await client.get("/v1/summary")
    doc = await resp.json()
    (api,) = doc["api"]
    assert api["route"] == "/orders/:id" and api["count"] == 500
    expected = np.percentile(durations / 1000.0, [50, 95, 99])
    assert [api["quantiles"][p] for p in ("p50", "p95", "p99")] == pytest.approx(expected)
    assert api["error_ratio"] == pytest.approx(0.1)
    assert api["status"]["5xx"] == 50


async def test_summary_rate_is_per_second_of_metricsd_uptime_within_the_window(make_client):
    client = await make_client()
    client.app[STORE].started_at = time.time() - 10  # metricsd started 10 s ago
    batch = [{**TIMING, "route": f"/a/{i}"} for i in range(30)]
    assert (await client.post("/v1/beacons/timings", json=batch)).status == 202
    (api,) = (await (await client.get("/v1/summary")).json())["api"]
    assert api["rate"] == pytest.approx(3.0, rel=0.1)  # 30 in 10 s, not 30 / 300 s
    client.app[STORE].started_at = time.time() - 3600
    client.app[VIEWS].invalidate()  # recomputed at most once a second: skip the wait
    (api,) = (await (await client.get("/v1/summary")).json())["api"]
    assert api["rate"] == pytest.approx(0.1, rel=0.1)  # up all window: 30 / 300 s
