"""Reload in process: POST /-/reload access, each subsystem reloading its own part, and an
invalid configuration keeping the running one."""

from __future__ import annotations

import base64

import pytest
import yaml
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from metricsd import core
from metricsd.app import create_app
from metricsd.config import load_config
from metricsd.core import READINESS, RUNTIME, SCHEDULER
from metricsd.postgres import PG_STATE, PLANS
from metricsd.web.reload import reload_config
from tests.fixtures.binaries import require_binary


def _write(tmp_path, config: dict) -> str:
    path = tmp_path / "metricsd.yml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


async def _app(aiohttp_client, tmp_path, config: dict):
    path = _write(tmp_path, config)
    client = await aiohttp_client(create_app(load_config(path, env={}), path))
    return client, path


ADMIN_CASES = [
    ({"token": "adm"}, {}, 401),
    ({"token": "adm"}, {"Authorization": "Bearer wrong"}, 401),
    ({"token": "adm"}, {"Authorization": "Basic " + base64.b64encode(b"a:b").decode()}, 401),
    ({"token": "adm"}, {"Authorization": "Bearer adm"}, 200),
    ({"basic_auth": {"username": "u", "password": "p"}}, {}, 401),
    ({"basic_auth": {"username": "u", "password": "p"}},
     {"Authorization": "Basic " + base64.b64encode(b"u:p").decode()}, 200),
    ({}, {}, 200),  # no admin auth: loopback clients (the test client) may reload
]


@pytest.mark.parametrize(("admin", "headers", "status"), ADMIN_CASES)
async def test_reload_route_needs_admin_auth_when_configured(aiohttp_client, tmp_path,
                                                            admin, headers, status):
    client, _ = await _app(aiohttp_client, tmp_path, {"admin": admin})
    resp = await client.post("/-/reload", headers=headers)
    assert resp.status == status, await resp.text()
    runtime = client.server.app[RUNTIME]
    assert runtime.reloads["success"] == (1 if status == 200 else 0)


class _Peer:
    def __init__(self, peer: tuple[str, int] | None) -> None:
        self.peer = peer

    def get_extra_info(self, name: str, default=None):
        return self.peer if name == "peername" else default

    def is_closing(self) -> bool:
        return False


@pytest.mark.parametrize("peer", [("203.0.113.5", 4000), ("10.0.0.1", 1), ("::ffff:8.8.8.8", 1),
                                  None])
async def test_without_admin_auth_only_loopback_may_reload(tmp_path, peer):
    path = _write(tmp_path, {})
    app = create_app(load_config(path, env={}), path)
    request = make_mocked_request("POST", "/-/reload", app=app, transport=_Peer(peer))
    resp = await reload_config(request)
    assert resp.status == 403
    assert app[RUNTIME].reloads == {"success": 0, "failure": 0}


@pytest.mark.parametrize("peer", [("127.0.0.1", 1), ("::1", 1), ("127.8.0.2", 1)])
async def test_loopback_peers_may_reload(tmp_path, peer):
    path = _write(tmp_path, {})
    app = create_app(load_config(path, env={}), path)
    request = make_mocked_request("POST", "/-/reload", app=app, transport=_Peer(peer))
    resp = await reload_config(request)
    assert resp.status == 200


async def test_ingest_reload_changes_tokens_and_keeps_the_store(aiohttp_client, tmp_path):
    client, _ = await _app(aiohttp_client, tmp_path, {"ingest": {"tokens": ["one"]}})
    beacon = {"service": "a", "route": "/x", "method": "GET", "status": 200, "duration_ms": 5}
    auth = {"Authorization": "Bearer one"}
    assert (await client.post("/v1/beacons/timings", json=beacon, headers=auth)).status == 202
    _write(tmp_path, {"ingest": {"tokens": ["two"], "rate_limit": {"burst": 7}}})
    assert (await client.post("/-/reload")).status == 200
    assert (await client.post("/v1/beacons/timings", json=beacon, headers=auth)).status == 401
    two = {"Authorization": "Bearer two"}
    assert (await client.post("/v1/beacons/timings", json=beacon, headers=two)).status == 202
    from metricsd.ingest import RATE_LIMITER, STORE

    app = client.server.app
    assert app[RATE_LIMITER].burst == 7.0
    assert app[STORE].series_count == 1  # the series from before the reload is still there


async def test_postgres_reload_opens_and_closes_targets(aiohttp_client, tmp_path,
                                                        make_database):
    require_binary("initdb")
    first, second = make_database(), make_database()
    client, _ = await _app(aiohttp_client, tmp_path, {
        "postgres": {"targets": [{"name": "one", "dsn": first}]}})
    app = client.server.app
    state = app[PG_STATE]
    one = state.targets["one"]

    def jobs() -> set[str]:
        return {job.id for job in app[SCHEDULER].get_jobs() if job.id.startswith("scrape:")}

    def plans_follow_targets() -> bool:
        plans = app[PLANS]
        plan_jobs = {j.id for j in app[SCHEDULER].get_jobs() if j.id.startswith("plans:")}
        return set(plans.trackers) == set(state.targets) and \
            plan_jobs == {f"plans:{t}" for t in plans.jobs()}

    assert jobs() and all(j.startswith("scrape:one:") for j in jobs())
    _write(tmp_path, {"postgres": {"targets": [{"name": "one", "dsn": first},
                                               {"name": "two", "dsn": second}]}})
    assert (await client.post("/-/reload")).status == 200
    assert state.targets["one"] is one  # unchanged: same pool, same snapshots
    assert {j.split(":")[1] for j in jobs()} == {"one", "two"}
    assert "postgres:two" in app[READINESS]
    assert plans_follow_targets()
    await state.scrape_all("two")
    assert state.up("two")

    _write(tmp_path, {"postgres": {"targets": [{"name": "two", "dsn": second}]}})
    assert (await client.post("/-/reload")).status == 200
    assert set(state.targets) == {"two"}
    assert {j.split(":")[1] for j in jobs()} == {"two"}
    assert "postgres:one" not in app[READINESS]
    assert plans_follow_targets()
    metrics = await (await client.get("/metrics")).text()
    assert 'target="one"' not in metrics and 'target="two"' in metrics


async def test_a_reloader_that_fails_to_prepare_changes_nothing(aiohttp_client, tmp_path):
    client, _ = await _app(aiohttp_client, tmp_path, {"ingest": {"tokens": ["one"]}})
    app = client.server.app

    async def broken(old, new):
        raise RuntimeError("boom")

    app[RUNTIME].reloaders.append(("broken", broken))
    _write(tmp_path, {"ingest": {"tokens": ["two"]}})
    result = await core.reload(app)
    assert not result.ok and "broken" in result.problems[0]
    assert core.current_config(app).ingest.tokens == ["one"]


def test_reload_route_is_documented_in_the_readme():
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert "/-/reload" in readme and "SIGHUP" in readme


_ = web  # aiohttp.web is the app type the helpers build
