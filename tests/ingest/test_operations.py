"""POST /v1/beacons/operations: the timings contract, exact quantiles, outcomes, objectives."""

from __future__ import annotations

import time

import numpy as np
import pytest

from metricsd.config import ConfigError
from metricsd.export.read import Samples
from metricsd.ingest.operations import OPERATION_BUCKETS, OUTCOMES
from metricsd.store.series import QUANTILES
from tests.fixtures.appclient import value

OP = {"service": "chat", "operation": "ws.delivery", "outcome": "ok", "duration_ms": 120.0}
ROUTE = "/v1/beacons/operations"




async def current(client, *names):
    samples = Samples(client.registry)
    await samples.prepare(time.time())
    return samples.current(set(names))


@pytest.mark.parametrize("seed", range(3))
async def test_window_quantiles_are_exact(make_client, seed):
    client = await make_client()
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 800))
    durations = rng.lognormal(4, 1.5, n)
    batch = [{**OP, "duration_ms": float(d)} for d in durations]
    resp = await client.post(ROUTE, json=batch)
    assert resp.status == 202 and (await resp.json())["accepted"] == n
    expected = np.percentile(durations / 1000.0, np.array(QUANTILES) * 100)
    got = [value(client, "metricsd_operation_window_seconds", service="chat",
                 operation="ws.delivery", quantile=repr(q)) for q in QUANTILES]
    assert got == pytest.approx(expected, rel=1e-12)
    labels = {"service": "chat", "operation": "ws.delivery"}
    assert value(client, "metricsd_operation_window_seconds_count", **labels) == n
    assert value(client, "metricsd_operation_duration_seconds_sum", **labels) == pytest.approx(
        durations.sum() / 1000.0)
    for bound in OPERATION_BUCKETS:
        assert value(client, "metricsd_operation_duration_seconds_bucket", **labels,
                     le=repr(bound)) == int((durations / 1000.0 <= bound).sum())


async def test_outcomes_are_counted_per_operation(make_client):
    client = await make_client()
    rng = np.random.default_rng(7)
    picks = rng.choice(OUTCOMES, 300)
    names = rng.choice(["ai.generate", "export.csv"], 300)
    batch = [{**OP, "operation": str(n), "outcome": str(o)} for n, o in zip(names, picks,
                                                                             strict=True)]
    batch.append({k: v for k, v in OP.items() if k != "outcome"})  # outcome defaults to ok
    assert (await client.post(ROUTE, json=batch)).status == 202
    for name in ("ai.generate", "export.csv"):
        for outcome in OUTCOMES:
            sent = int(((names == name) & (picks == outcome)).sum())
            got = value(client, "metricsd_operations_total", service="chat", operation=name,
                        outcome=outcome)
            assert (got or 0) == sent
            assert value(client, "metricsd_operation_window_operations", service="chat",
                         operation=name, outcome=outcome) == sent
    assert value(client, "metricsd_operations_total", service="chat", operation="ws.delivery",
                 outcome="ok") == 1


async def test_batch_keeps_valid_items_and_reports_the_others(make_client):
    client = await make_client()
    bad = [
        {**OP, "duration_ms": -1},
        {**OP, "duration_ms": "12"},
        {**OP, "outcome": "fine"},
        {**OP, "outcome": 1},
        {**OP, "operation": "ws..delivery"},
        {**OP, "operation": "ws delivery"},
        {**OP, "operation": ""},
        {**OP, "service": "x" * 1000},
        {k: v for k, v in OP.items() if k != "operation"},
        {k: v for k, v in OP.items() if k != "duration_ms"},
        "not an object",
        {**OP, "duration_ms": True},
        {**OP, "timestamp": time.time() + 86400},
        {**OP, "service": "a\u202eb"},
    ]
    resp = await client.post(ROUTE, json=[OP, *bad, OP])
    assert resp.status == 202
    body = await resp.json()
    assert body["accepted"] == 2 and body["rejected"] == len(bad)
    assert [e["index"] for e in body["errors"]] == list(range(1, len(bad) + 1))
    reasons = [e["reason"] for e in body["errors"]]
    assert reasons == ["out_of_range", "wrong_type", "bad_value", "bad_value", "bad_string",
                       "bad_string", "bad_string", "bad_string", "missing_field",
                       "missing_field", "not_object", "wrong_type", "out_of_range",
                       "bad_string"]
    assert value(client, "metricsd_ingest_rejected_total", type="operations",
                 reason="bad_string") == 5
    # nothing valid: 400
    resp = await client.post(ROUTE, json=bad[:3])
    assert resp.status == 400 and (await resp.json())["accepted"] == 0


async def test_tokens_limits_and_rate_limit_as_for_timings(make_client):
    client = await make_client({"ingest": {"tokens": ["s3cret"], "max_body_bytes": 4096,
                                           "max_items": 5}})
    assert (await client.post(ROUTE, json=OP)).status == 401
    auth = {"Authorization": "Bearer s3cret"}
    assert (await client.post(ROUTE, json=OP, headers=auth)).status == 202
    resp = await client.post(ROUTE, json=[OP] * 6, headers=auth)
    assert resp.status == 413 and (await resp.json())["reason"] == "too_many_items"
    resp = await client.post(ROUTE, data=b"[" + b" " * 5000 + b"]", headers=auth)
    assert resp.status == 413 and (await resp.json())["reason"] == "body_too_large"
    client = await make_client({"ingest": {"rate_limit": {
        "enabled": True, "requests_per_second": 0.5, "burst": 2}}})
    statuses = [(await client.post(ROUTE, json=OP)).status for _ in range(4)]
    assert statuses == [202, 202, 429, 429]


async def test_objectives_from_config_and_buckets_at_them(make_client):
    client = await make_client({"ingest": {"operations": {
        "ws.delivery": {"objective_ms": 200},
        "ai.generate": {"objective_ms": 5000, "quantile": 0.99},
        "export.csv": {"objective_ms": 5000, "buckets_ms": [90000, 120000]},
        "no.objective": {"buckets_ms": [7]},
    }}})
    got = await current(client, "metricsd_operation_objective_seconds")
    assert sorted((s[0]["operation"], s[0]["quantile"], s[1])
                  for s in got["metricsd_operation_objective_seconds"]) == [
        ("ai.generate", "0.99", 5.0), ("export.csv", "0.95", 5.0), ("ws.delivery", "0.95", 0.2)]
    await client.post(ROUTE, json={**OP, "duration_ms": 100000})
    labels = {"service": "chat", "operation": "ws.delivery"}
    assert value(client, "metricsd_operation_duration_seconds_bucket", **labels, le="90.0") == 0
    assert value(client, "metricsd_operation_duration_seconds_bucket", **labels, le="120.0") == 1
    assert value(client, "metricsd_operation_duration_seconds_bucket", **labels,
                 le="0.007") == 0


@pytest.mark.parametrize("bad", [
    {"ws..x": {"objective_ms": 1}},
    {"ws.delivery": {"objective_ms": 0}},
    {"ws.delivery": {"objective_ms": 10, "quantile": 0.42}},
    {"ws.delivery": {"buckets_ms": [-1]}},
])
def test_bad_operation_config_is_refused(make_config, bad):
    with pytest.raises(ConfigError):
        make_config({"ingest": {"operations": bad}})


def test_objective_quantiles_are_the_exported_ones():
    from metricsd.config import OBJECTIVE_QUANTILES

    assert OBJECTIVE_QUANTILES == QUANTILES


async def test_operations_have_their_own_series_budget(make_client):
    client = await make_client({"ingest": {"max_series": 100, "budgets": {"operations": 3}}})
    batch = [{**OP, "operation": f"op.n{i}"} for i in range(5)]
    body = await (await client.post(ROUTE, json=batch)).json()
    assert body["accepted"] == 3 and [e["reason"] for e in body["errors"]] == [
        "series_limit", "series_limit"]
    # timings keep their own share: the operations' budget being spent takes none of it
    timing = {"service": "s", "route": "/x", "method": "GET", "status": 200, "duration_ms": 1}
    resp = await client.post("/v1/beacons/timings", json=[{**timing, "route": f"/r{i}"}
                                                          for i in range(20)])
    assert (await resp.json())["accepted"] == 20
    ready = await (await client.get("/readyz")).json()  # no admin auth: details shown
    budgets = ready["components"]["ingest"]["budgets"]
    assert budgets["operations"] == {"series": 3, "limit": 3}
    assert budgets["cache"] == {"series": 0, "limit": 5}  # 97 left, 0.05 of the 0.9 shares


async def test_columnar_series_objects_as_timings_have_them(make_client):
    client = await make_client({"ingest": {"max_items": 20}})
    series = {"service": "chat", "operation": "ws.delivery",
              "outcome": ["ok", "timeout", "ok", "bogus"], "duration_ms": [100, 250, 150, 9]}
    one_outcome = {"service": "ai", "operation": "ai.generate", "outcome": "error",
                   "duration_ms": [4000.0, 6000.0]}
    no_outcome = {"service": "ai", "operation": "export.csv", "duration_ms": [10, -1]}
    mismatch = {**series, "outcome": ["ok"]}
    resp = await client.post(ROUTE, json=[series, one_outcome, OP, no_outcome, mismatch])
    body = await resp.json()
    assert resp.status == 202 and body["accepted"] == 3 + 2 + 1 + 1
    assert sorted((e["index"], e.get("element"), e["reason"]) for e in body["errors"]) == [
        (0, 3, "bad_value"), (3, 1, "out_of_range"), (4, None, "length_mismatch"),
        (4, None, "length_mismatch"), (4, None, "length_mismatch"),
        (4, None, "length_mismatch")]
    labels = {"service": "chat", "operation": "ws.delivery"}
    assert value(client, "metricsd_operations_total", **labels, outcome="ok") == 2 + 1
    assert value(client, "metricsd_operations_total", **labels, outcome="timeout") == 1
    assert value(client, "metricsd_operations_total", service="ai", operation="ai.generate",
                 outcome="error") == 2
    assert value(client, "metricsd_operations_total", service="ai", operation="export.csv",
                 outcome="ok") == 1
    # ingest.max_items counts samples, not objects
    resp = await client.post(ROUTE, json={**one_outcome, "duration_ms": [1.0] * 21})
    assert resp.status == 413
