"""POST /v1/beacons/cache and GET /v1/cache: counters equal what was sent, window ratio,
bounded top keys (never labels), the timings contract for errors, tokens and limits."""

from __future__ import annotations

import random
import time
from collections import Counter

import pytest

from metricsd.ingest import BEACON_TYPES
from metricsd.ingest.cache import SpaceSaving
from tests.fixtures.appclient import value

REPORT = {"service": "cms", "cache": "templates", "hits": 90, "misses": 10}
ROUTE = "/v1/beacons/cache"




@pytest.mark.parametrize("seed", range(3))
async def test_counters_equal_what_was_sent(make_client, seed):
    client = await make_client()
    rng = random.Random(seed)
    sent: dict[tuple[str, str], Counter[str]] = {}
    for _ in range(rng.randrange(1, 30)):
        service, cache = rng.choice(["cms", "api"]), rng.choice(["templates", "scenarios"])
        item = {"service": service, "cache": cache, "hits": rng.randrange(0, 10**6),
                "misses": rng.randrange(0, 10**4), "evictions": rng.randrange(0, 50),
                "entries": rng.randrange(0, 5000), "size_bytes": rng.randrange(0, 2**40)}
        assert (await client.post(ROUTE, json=item)).status == 202
        total = sent.setdefault((service, cache), Counter())
        for k in ("hits", "misses", "evictions"):
            total[k] += item[k]
        total["entries"], total["size_bytes"] = item["entries"], item["size_bytes"]
    for (service, cache), total in sent.items():
        labels = {"service": service, "cache": cache}
        assert value(client, "metricsd_cache_requests_total", **labels, result="hit") == \
            total["hits"]
        assert value(client, "metricsd_cache_requests_total", **labels, result="miss") == \
            total["misses"]
        assert value(client, "metricsd_cache_evictions_total", **labels) == total["evictions"]
        assert value(client, "metricsd_cache_entries", **labels) == total["entries"]
        assert value(client, "metricsd_cache_size_bytes", **labels) == total["size_bytes"]
        requests = total["hits"] + total["misses"]
        assert value(client, "metricsd_cache_window_requests", **labels) == requests
        ratio = value(client, "metricsd_cache_window_hit_ratio", **labels)
        assert ratio == (pytest.approx(total["hits"] / requests) if requests else None)


async def test_window_ratio_forgets_old_reports(make_client):
    client = await make_client({"ingest": {"window": {"seconds": 60}}})
    state = client.app[BEACON_TYPES]["cache"].state
    await client.post(ROUTE, json={**REPORT, "hits": 0, "misses": 100})
    for series in state.series.values():  # that report is now 2 minutes old
        series.window = type(series.window)((t - 120, h, m) for t, h, m in series.window)
    await client.post(ROUTE, json=REPORT)
    labels = {"service": "cms", "cache": "templates"}
    assert value(client, "metricsd_cache_window_hit_ratio", **labels) == pytest.approx(0.9)
    assert value(client, "metricsd_cache_window_requests", **labels) == 100
    assert value(client, "metricsd_cache_requests_total", **labels, result="miss") == 110


async def test_top_keys_are_a_bounded_summary_and_never_labels(make_client):
    client = await make_client({"ingest": {"cache_top_keys": 5}})
    rng = random.Random(1)
    truth: Counter[str] = Counter()
    for _ in range(40):
        keys = Counter(f"tpl-{int(rng.paretovariate(1.1))}" for _ in range(200))
        top = [{"key": k, "hits": n} for k, n in keys.most_common(20)]
        for k, n in keys.most_common(20):
            truth[k] += n
        assert (await client.post(ROUTE, json={**REPORT, "top_keys": top})).status == 202
    doc = await (await client.get("/v1/cache")).json()
    (cache,) = doc["caches"]
    assert len(cache["top_keys"]) == 5
    summary_size = len(client.app[BEACON_TYPES]["cache"].state.series[("cms",
                                                                       "templates")].top.counts)
    assert summary_size <= 10
    for entry in cache["top_keys"]:
        true = truth[entry["key"]]
        assert true <= entry["hits"] <= true + entry["max_error"]
    assert [e["key"] for e in cache["top_keys"][:3]] == [k for k, _ in truth.most_common(3)]
    text = await (await client.get("/metrics")).text()
    assert "tpl-" not in text  # keys are never label values


def test_space_saving_bounds_hold_for_any_stream():
    for seed in range(20):
        rng = random.Random(seed)
        capacity = rng.randrange(1, 30)
        summary = SpaceSaving(capacity)
        truth: Counter[str] = Counter()
        for _ in range(rng.randrange(1, 2000)):
            key, n = f"k{int(rng.expovariate(0.2))}", rng.randrange(1, 5)
            summary.add(key, n)
            truth[key] += n
        total = sum(truth.values())
        assert len(summary.counts) <= capacity
        for key, estimate in summary.counts.items():
            assert truth[key] <= estimate <= truth[key] + summary.errors[key]
            assert summary.errors[key] <= total / capacity
        for key, n in truth.items():
            if n > total / capacity:
                assert key in summary.counts


async def test_batch_keeps_valid_reports_and_explains_the_others(make_client):
    client = await make_client()
    bad = [
        {**REPORT, "hits": -1},
        {**REPORT, "hits": 1.5},
        {**REPORT, "misses": True},
        {**REPORT, "hits": 2**60},
        {k: v for k, v in REPORT.items() if k != "misses"},
        {**REPORT, "cache": ""},
        {**REPORT, "top_keys": "a"},
        {**REPORT, "top_keys": [{"key": "a", "hits": -2}]},
        {**REPORT, "top_keys": [{"key": "a" * 5000, "hits": 2}]},
        {**REPORT, "top_keys": [{"key": f"k{i}", "hits": 1} for i in range(101)]},
        {**REPORT, "entries": "3"},
        [],
    ]
    resp = await client.post(ROUTE, json=[REPORT, *bad])
    body = await resp.json()
    assert resp.status == 202 and body["accepted"] == 1 and body["rejected"] == len(bad)
    assert [e["reason"] for e in body["errors"]] == [
        "out_of_range", "wrong_type", "wrong_type", "out_of_range", "missing_field",
        "bad_string", "wrong_type", "out_of_range", "bad_string", "out_of_range", "wrong_type",
        "not_object"]
    assert value(client, "metricsd_cache_requests_total", service="cms", cache="templates",
                 result="hit") == 90


async def test_tokens_limits_and_budget(make_client):
    client = await make_client({"ingest": {"tokens": ["t"], "max_items": 3,
                                           "max_series": 20}})
    assert (await client.post(ROUTE, json=REPORT)).status == 401
    auth = {"Authorization": "Bearer t"}
    resp = await client.post(ROUTE, json=[REPORT] * 4, headers=auth)
    assert resp.status == 413
    caches = [{**REPORT, "cache": f"c{i}"} for i in range(3)]
    for i in range(0, 30, 3):
        await client.post(ROUTE, json=[{**c, "cache": f"{c['cache']}-{i}"} for c in caches],
                          headers=auth)
    state = client.app[BEACON_TYPES]["cache"].state
    assert len(state.series) == state.budget  # bounded: the rest were refused
    resp = await client.post(ROUTE, json={**REPORT, "cache": "one-more"}, headers=auth)
    assert resp.status == 400
    assert (await resp.json())["errors"][0]["reason"] == "series_limit"
    # a known cache still reports
    resp = await client.post(ROUTE, json={**REPORT, "cache": "c0-0"}, headers=auth)
    assert resp.status == 202


async def test_body_limit_and_rate_limit_as_for_timings(make_client):
    client = await make_client({"ingest": {"max_body_bytes": 4096}})
    resp = await client.post(ROUTE, data=b"[" + b" " * 5000 + b"]")
    assert resp.status == 413 and (await resp.json())["reason"] == "body_too_large"
    client = await make_client({"ingest": {"rate_limit": {
        "enabled": True, "requests_per_second": 0.5, "burst": 2}}})
    statuses = [(await client.post(ROUTE, json=REPORT)).status for _ in range(4)]
    assert statuses == [202, 202, 429, 429]
    # only the two accepted reports were counted
    assert value(client, "metricsd_cache_requests_total", service="cms", cache="templates",
                 result="hit") == 2 * REPORT["hits"]


async def test_idle_caches_expire(make_client):
    client = await make_client({"ingest": {"series_idle_timeout": "1m"}})
    await client.post(ROUTE, json=REPORT)
    state = client.app[BEACON_TYPES]["cache"].state
    assert state.expire(time.time() + 30) == 0
    assert state.expire(time.time() + 120) == 1
    assert (await (await client.get("/v1/cache")).json())["caches"] == []
