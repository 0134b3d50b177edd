"""Series budgets per beacon kind: anonymous browser traffic cannot starve API series."""

from __future__ import annotations

import pytest

from metricsd.app import create_app
from metricsd.config import IngestConfig
from metricsd.core import REGISTRY
from metricsd.errors import ConfigError
from metricsd.ingest import STORE

TIMING = {"service": "shop", "route": "/orders", "method": "GET", "status": 200,
          "duration_ms": 12.5}


def vital(page: str, ident: str) -> dict:
    return {"name": "LCP", "value": 900.0, "rating": "good", "delta": 900.0, "id": ident,
            "page": page}


def test_default_budgets_split_max_series():
    assert IngestConfig().series_budgets() == {"timings": 6000, "vitals": 2500,
                                               "operations": 1000, "cache": 500}
    # what is set is taken first; the others share the rest in their proportions
    assert IngestConfig(max_series=100, budgets={"vitals": 10}).series_budgets() == {
        "timings": 72, "vitals": 10, "operations": 12, "cache": 6}
    assert IngestConfig(max_series=100, budgets={"timings": 60, "vitals": 30, "operations": 8,
                                                 "cache": 2}).series_budgets() == {
        "timings": 60, "vitals": 30, "operations": 8, "cache": 2}


def test_budgets_over_max_series_are_a_config_error(make_config):
    with pytest.raises(ConfigError, match="max_series"):
        make_config({"ingest": {"max_series": 100, "budgets": {"timings": 80, "vitals": 30}}})
    with pytest.raises(ConfigError, match="max_series"):
        make_config({"ingest": {"max_series": 100, "budgets": {"timings": 100}}})
    with pytest.raises(ConfigError, match="max_series"):  # 1 left for 3 unset kinds
        make_config({"ingest": {"max_series": 100, "budgets": {"timings": 99}}})


@pytest.mark.parametrize("vital_names", [("LCP",), ("LCP", "INP", "CLS", "FCP", "TTFB")])
async def test_ten_thousand_anonymous_pages_cannot_block_a_new_api_series(
        aiohttp_client, make_config, vital_names):
    config = make_config({"ingest": {"max_series": 1000, "window": {"samples": 16},
                                     "rate_limit": {"enabled": False}}})
    app = create_app(config)
    client = await aiohttp_client(app)
    sent = 0
    for start in range(0, 10_500, 1500):  # anonymous: no token needed, any page made up
        batch = [{**vital(f"/p{i}", f"id{i}"), "name": vital_names[i % len(vital_names)]}
                 for i in range(start, start + 1500)]
        for item in batch:
            if item["name"] == "CLS":
                item["value"] = item["delta"] = 0.05
        resp = await client.post("/v1/beacons/vitals", json=batch)
        assert resp.status in (202, 400)
        sent += len(batch)
    store = app[STORE]
    vitals_series = sum(len(store.families[n]) for n in vital_names)
    assert vitals_series == 250  # the vitals budget (25 % of 1000), not all of max_series
    registry = app[REGISTRY]
    dropped = sum(registry.get_sample_value("metricsd_series_dropped_samples_total",
                                            {"family": n}) or 0 for n in vital_names)
    assert dropped == sent - 250  # counted per family, as before
    # Authenticated API series still get slots: hundreds of new ones, all accepted.
    batch = [{**TIMING, "route": f"/api/r{i}x"} for i in range(500)]
    resp = await client.post("/v1/beacons/timings", json=batch)
    body = await resp.json()
    assert resp.status == 202 and body["accepted"] == 500, body
    resp = await client.post("/v1/beacons/timings", json={**TIMING, "route": "/brand-new"})
    assert (await resp.json())["accepted"] == 1


async def test_expiry_gives_budget_slots_back(aiohttp_client, make_config):
    config = make_config({"ingest": {"max_series": 10, "window": {"samples": 16},
                                     "budgets": {"vitals": 2}}})
    app = create_app(config)
    client = await aiohttp_client(app)
    batch = [vital(f"/p{i}", f"e{i}") for i in range(3)]
    body = await (await client.post("/v1/beacons/vitals", json=batch)).json()
    assert body["accepted"] == 2 and body["errors"][0]["reason"] == "series_limit"
    store = app[STORE]
    assert store.expire(now=10**10) == 2 and store.in_budget["vitals"] == 0
    body = await (await client.post("/v1/beacons/vitals", json=[vital("/q", "f")])).json()
    assert body["accepted"] == 1


async def test_reload_changes_cors_origins_and_keeps_budgets(aiohttp_client, tmp_path):
    import yaml

    from metricsd.config import load_config

    path = tmp_path / "metricsd.yml"
    path.write_text(yaml.safe_dump({"ingest": {"cors_origins": ["https://a.example"],
                                               "max_series": 100}}))
    app = create_app(load_config(path, env={}), path)
    client = await aiohttp_client(app)

    async def post(origin: str) -> int:
        resp = await client.post("/v1/beacons/vitals", json=vital("/r", origin),
                                 headers={"Origin": origin})
        return resp.status

    assert await post("https://a.example") == 202
    assert await post("https://b.example") == 403
    path.write_text(yaml.safe_dump({"ingest": {
        "cors_origins": ["https://b.example"], "max_series": 100, "budgets": {"vitals": 5}}}))
    assert (await client.post("/-/reload")).status == 200
    assert await post("https://b.example") == 202  # the new allow-list, at once
    assert await post("https://a.example") == 403
    assert app[STORE].budgets == {"timings": 60, "vitals": 25, "operations": 10}  # restart-only
