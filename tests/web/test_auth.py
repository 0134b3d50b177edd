"""Admin protection of the page and JSON views; the scrape, health and beacon routes stay open."""

from __future__ import annotations

import asyncio
import base64

import pytest
from aiohttp import web

from metricsd.app import create_app
from metricsd.web.auth import is_protected

TOKEN = "s3cret-admin-token"
USER, PASSWORD = "ops", "correct horse"
VITAL = {"name": "LCP", "value": 1200.0, "id": "v1", "page": "/"}
PROTECTED = ["/", "/v1/summary", "/static/overview.css", "/v1/postgres/statements",
             "/v1/postgres/indexes", "/v1/alerts", "/v1/vitals/attribution"]


async def other_helpers_route(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


@pytest.fixture
def make_client(aiohttp_client, make_config):
    async def factory(admin=None):
        app = create_app(make_config({"admin": admin or {}}))
        # Stand-ins for routes other modules add: covered by prefix, without knowing them.
        existing = {r.resource.canonical for r in app.router.routes() if r.resource}
        for path in ("/v1/postgres/statements", "/v1/postgres/indexes", "/v1/alerts"):
            if path not in existing:
                app.router.add_get(path, other_helpers_route)
        return await aiohttp_client(app)

    return factory


def basic(user, password):
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


async def test_open_when_nothing_is_configured(make_client):
    client = await make_client()
    for path in ("/", "/v1/summary", "/static/overview.css", "/v1/alerts"):
        assert (await client.get(path)).status == 200, path


async def test_token_guards_page_json_and_static(make_client):
    client = await make_client({"token": TOKEN})
    for path in PROTECTED:
        resp = await client.get(path)
        assert resp.status == 401, path
        assert resp.headers.getall("WWW-Authenticate") == ['Bearer realm="metricsd"']
    body = await (await client.get("/v1/summary")).json()
    assert body["reason"] == "unauthorized"
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    for path in PROTECTED:
        assert (await client.get(path, headers=bearer)).status == 200, path
    # Unknown paths under a protected prefix: 401 first, 404 only once authenticated.
    assert (await client.get("/v1/postgres/nope")).status == 401
    assert (await client.get("/v1/postgres/nope", headers=bearer)).status == 404


async def test_query_token_for_browsers_is_kept_on_links(make_client):
    client = await make_client({"token": TOKEN})
    resp = await client.get("/", params={"token": TOKEN})
    assert resp.status == 200
    assert resp.headers["Referrer-Policy"] == "no-referrer"
    text = await resp.text()
    assert f'href="/v1/summary?token={TOKEN}"' in text
    assert f'href="/static/favicon.svg?token={TOKEN}"' in text
    assert (await client.get("/static/favicon.svg", params={"token": TOKEN})).status == 200


@pytest.mark.parametrize("headers,params", [
    ({"Authorization": "Bearer wrong"}, {}),
    ({"Authorization": f"Bearer {TOKEN}x"}, {}),
    ({"Authorization": f"Bearer {TOKEN[:-1]}"}, {}),
    ({"Authorization": "Bearer "}, {}),
    ({}, {"token": ""}),
    ({}, {"token": "wrong"}),
    ({}, {"token": "ünïcødé"}),
    ({"Authorization": f"Basic {TOKEN}"}, {}),  # right secret, wrong scheme
])
async def test_wrong_tokens_are_refused(make_client, headers, params):
    client = await make_client({"token": TOKEN})
    resp = await client.get("/", headers=headers, params=params)
    assert resp.status == 401


async def test_scrape_health_and_beacons_are_not_affected(make_client):
    client = await make_client({"token": TOKEN, "basic_auth": {"username": USER,
                                                              "password": PASSWORD}})
    assert (await client.get("/metrics")).status == 200
    assert (await client.get("/healthz")).status == 200
    assert (await client.get("/readyz")).status == 200
    assert (await client.post("/v1/beacons/vitals", json=VITAL)).status == 202
    timing = {"service": "s", "route": "/r", "method": "GET", "status": 200, "duration_ms": 1}
    assert (await client.post("/v1/beacons/timings", json=timing)).status == 202


async def test_basic_auth(make_client):
    client = await make_client({"basic_auth": {"username": USER, "password": PASSWORD}})
    resp = await client.get("/")
    assert resp.status == 401
    assert resp.headers.getall("WWW-Authenticate") == ['Basic realm="metricsd", charset="UTF-8"']
    assert (await client.get("/", headers=basic(USER, PASSWORD))).status == 200
    assert (await client.get("/v1/alerts", headers=basic(USER, PASSWORD))).status == 200
    for user, password in ((USER, "wrong"), ("root", PASSWORD), (USER, ""), ("", "")):
        assert (await client.get("/", headers=basic(user, password))).status == 401
    for header in ("Basic !!!notbase64", "Basic " + base64.b64encode(b"\xff\xfe").decode(),
                   "Basic", "Digest abc"):
        assert (await client.get("/", headers={"Authorization": header})).status == 401
    # A token is not configured, so ?token= must not open anything.
    assert (await client.get("/", params={"token": PASSWORD})).status == 401


async def test_token_or_basic_when_both_configured(make_client):
    client = await make_client({"token": TOKEN, "basic_auth": {"username": USER,
                                                              "password": PASSWORD}})
    resp = await client.get("/v1/summary")
    assert resp.status == 401
    assert sorted(resp.headers.getall("WWW-Authenticate")) == [
        'Basic realm="metricsd", charset="UTF-8"', 'Bearer realm="metricsd"']
    assert (await client.get("/v1/summary", headers=basic(USER, PASSWORD))).status == 200
    assert (await client.get("/v1/summary", params={"token": TOKEN})).status == 200


async def raw_get(client, target: str) -> int:
    """Send the request-target byte for byte (clients would normalise it), return the status."""
    reader, writer = await asyncio.open_connection(client.host, client.port)
    writer.write(f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    await writer.drain()
    status_line = await reader.readline()
    writer.close()
    await writer.wait_closed()
    return int(status_line.split()[1])


async def test_path_tricks_do_not_bypass(make_client):
    client = await make_client({"token": TOKEN})
    assert await raw_get(client, f"/v1/summary?token={TOKEN}") == 200  # the helper works
    for target in ("//v1/summary", "/v1/summary/", "/v1//alerts", "/static/../v1/summary",
                   "/v1/summary?x=/metrics", "/v1/%61lerts", "/static/%2e%2e/v1/summary",
                   "/metrics/../v1/summary", "/./v1/alerts", "/%2F"):
        assert await raw_get(client, target) in (401, 404), target


def test_prefix_matching():
    assert is_protected("/") and is_protected("/v1/postgres/anything/else")
    assert is_protected("/v1/alerts") and is_protected("/v1/alerts/silences")
    assert not is_protected("/v1/alertsx") and not is_protected("/v1/summaryx")
    for path in ("/metrics", "/healthz", "/readyz", "/v1/beacons/timings", "/v1/beacons/vitals"):
        assert not is_protected(path)
