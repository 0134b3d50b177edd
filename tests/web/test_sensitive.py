"""Sensitive text: what an anonymous client may read when admin auth is configured.

Every GET route is either on an explicit public list or refuses anonymous clients; the
public ones (/readyz, /metrics) carry no users, databases, hosts, error texts or query
text. A route someone adds later fails here until it is protected or listed as public.
"""

from __future__ import annotations

import asyncio
import json
import uuid

import asyncpg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from metricsd.app import create_app
from metricsd.postgres import PG_STATE

TOKEN = "admin-s3cret"
SECRET_USER, SECRET_DB = "secretuser", "secretdb"
# The routes anyone may read: scrape, health, beacons (POST), the API description.
PUBLIC = {"/metrics", "/healthz", "/readyz", "/openapi.json"}


@pytest.fixture
async def client(aiohttp_client, make_config, unused_tcp_port_factory):
    port = unused_tcp_port_factory()  # nothing listens: the target stays down
    config = make_config({
        "admin": {"token": TOKEN},
        "postgres": {"scrape_interval": "1s", "connect_timeout": "1s", "targets": [
            {"name": "main", "dsn": f"postgresql://{SECRET_USER}@127.0.0.1:{port}/{SECRET_DB}"}]},
    })
    return await aiohttp_client(create_app(config))


async def _readyz_with_error(client, headers=None):
    for _ in range(100):
        resp = await client.get("/readyz", headers={"Authorization": f"Bearer {TOKEN}"})
        if (await resp.json())["components"]["postgres:main"].get("error"):
            break
        await asyncio.sleep(0.1)
    resp = await client.get("/readyz", headers=headers or {})
    return resp.status, await resp.text()


async def test_readyz_details_only_for_admins(client):
    status, admin_text = await _readyz_with_error(
        client, {"Authorization": f"Bearer {TOKEN}"})
    assert status == 200 and "127.0.0.1" in admin_text  # the details exist for admins
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic eDp5"}):
        status, text = await _readyz_with_error(client, headers)
        assert status == 200
        doc = json.loads(text)
        assert doc["status"] == "degraded"
        assert doc["components"]["postgres:main"] == {"ok": False, "required": False}
        assert set(doc["components"]["ingest"]) == {"ok", "required"}
        for secret in (SECRET_USER, SECRET_DB, "127.0.0.1", "error", "collectors"):
            assert secret not in text, (secret, text)


async def test_every_non_public_get_route_needs_admin_auth(client):
    routes = set()
    for resource in client.app.router.resources():
        info = resource.get_info()
        path = info.get("path") or info.get("formatter") or info.get("prefix", "")
        if any(route.method in ("GET", "*") for route in resource):
            routes.add(path.replace("{type}", "timings").replace("{filename}", "overview.css")
                       .replace("{period}", "day"))
    routes = {r for r in routes if not r.startswith("/v1/beacons/")}  # POST-only + 404s
    assert {"/v1/postgres/statements", "/v1/postgres/indexes", "/", "/v1/summary"} <= routes
    for path in sorted(routes - PUBLIC):
        resp = await client.get(path)
        assert resp.status == 401, f"{path} is readable without admin auth"
        resp = await client.get(path, headers={"Authorization": f"Bearer {TOKEN}"})
        assert resp.status != 401, path


@pytest.mark.parametrize("opt_in", [False, True])
async def test_query_text_only_by_opt_in_and_pg_names_are_escaped(
        pg_database, make_config, aiohttp_client, opt_in):
    config = make_config({"admin": {"token": TOKEN}, "postgres": {
        "scrape_interval": "1h", "export_query_text": opt_in,
        "targets": [{"name": "main", "dsn": pg_database}]}})
    client = await aiohttp_client(create_app(config))
    state = client.app[PG_STATE]
    marker = f"q{uuid.uuid4().hex[:8]}"
    hostile = "evil\u202e\x07\x85name"  # bidi override, BEL, NEL: legal in a quoted name
    conn = await asyncpg.connect(pg_database)
    try:
        await conn.execute(f'CREATE TABLE "{hostile}" (id int PRIMARY KEY, v int);'
                           f'INSERT INTO "{hostile}" SELECT g, g FROM generate_series(1, 50) g')
        await state.scrape_all()
        for i in range(3):
            await conn.fetchval(f"SELECT $1::int AS {marker}", i)
        await conn.execute(f'ANALYZE "{hostile}"')
        await state.scrape_all()
    finally:
        await conn.close()
    resp = await client.get("/metrics")  # anonymous: /metrics needs no credentials
    assert resp.status == 200
    raw = await resp.read()
    text = raw.decode("utf-8")  # strict: no lone surrogates either
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert families["metricsd_pg_statements_calls"].samples
    assert ("metricsd_pg_statements_query_info{" in text) is opt_in
    assert (marker in text) is opt_in
    # The hostile table name is there, escaped by metricsd.labels, never raw or dropped.
    tables = {s.labels.get("table") for f in families.values() for s in f.samples}
    assert "evil\\u202e\\x07\\x85name" in tables, sorted(t for t in tables if t)
    assert not any(c in text for c in ("\u202e", "\x07", "\x85"))
    # The JSON views (admin only) show the same escaped names.
    resp = await client.get("/v1/postgres/indexes",
                            headers={"Authorization": f"Bearer {TOKEN}"})
    tables = {i["table"] for i in (await resp.json())["indexes"]}
    assert tables == {"evil\\u202e\\x07\\x85name"}
