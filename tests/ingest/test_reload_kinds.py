"""A config reload rebuilds the beacon kinds: cache counts and top keys survive it, and the
operations' objectives (not their bucket bounds, which size the store) follow the file."""

from __future__ import annotations

import time

import yaml

from metricsd.app import create_app
from metricsd.config import load_config
from metricsd.core import REGISTRY
from metricsd.export.read import Samples


async def test_reload_keeps_cache_state_and_updates_objectives(aiohttp_client, tmp_path):
    path = tmp_path / "metricsd.yml"
    path.write_text(yaml.safe_dump({"ingest": {"operations": {
        "ws.delivery": {"objective_ms": 200}}}}))
    client = await aiohttp_client(create_app(load_config(str(path), env={}), str(path)))
    report = {"service": "cms", "cache": "templates", "hits": 8, "misses": 2,
              "top_keys": [{"key": "home", "hits": 8}]}
    assert (await client.post("/v1/beacons/cache", json=report)).status == 202
    path.write_text(yaml.safe_dump({"ingest": {"operations": {
        "ws.delivery": {"objective_ms": 150, "quantile": 0.99, "buckets_ms": [7]},
        "ai.generate": {"objective_ms": 5000}}}}))
    assert (await client.post("/-/reload")).status == 200
    assert (await client.post("/v1/beacons/cache", json=report)).status == 202
    (cache,) = (await (await client.get("/v1/cache")).json())["caches"]
    assert (cache["hits_total"], cache["misses_total"]) == (16, 4)
    assert cache["top_keys"][0] == {"key": "home", "hits": 16, "max_error": 0}
    text = await (await client.get("/metrics")).text()
    assert 'metricsd_cache_requests_total{service="cms",cache="templates",result="hit"} 16' \
        in text
    samples = Samples(client.server.app[REGISTRY])
    await samples.prepare(time.time())
    got = samples.current({"metricsd_operation_objective_seconds"})
    assert sorted((s[0]["operation"], s[0]["quantile"], s[1])
                  for s in got["metricsd_operation_objective_seconds"]) == [
        ("ai.generate", "0.95", 5.0), ("ws.delivery", "0.99", 0.15)]
    # bounds are sized at start-up: the new 7 ms bound waits for a restart
    await client.post("/v1/beacons/operations", json={"service": "s",
                                                      "operation": "ws.delivery",
                                                      "duration_ms": 5})
    assert 'le="0.007"' not in await (await client.get("/metrics")).text()
