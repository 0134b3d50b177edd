"""A real aiohttp app with the middleware, driven over HTTP, as seen on metricsd's /metrics."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer
from metricsd_client.aiohttp_middleware import SENDER, setup_aiohttp

from tests.client.conftest import TOKEN, Metricsd, value

REQUESTS = "metricsd_api_requests_total"


def shop_app(metricsd_url: str, token: str, service: str) -> web.Application:
    async def user(request: web.Request) -> web.Response:
        if request.match_info["id"] == "0":
            raise web.HTTPNotFound(text="no such user")
        return web.json_response({"id": request.match_info["id"]})

    async def boom(request: web.Request) -> web.Response:
        raise RuntimeError("handler bug")

    async def create(request: web.Request) -> web.Response:
        return web.json_response({}, status=201)

    async def items(request: web.Request) -> web.Response:
        return web.json_response([])

    app = web.Application()
    app.router.add_get("/users/{id}", user)
    app.router.add_post("/users", create)
    app.router.add_get("/boom", boom)
    shop = web.Application()
    shop.router.add_get("/orders/{order_id}/items", items)
    app.add_subapp("/shop", shop)
    setup_aiohttp(app, metricsd_url, service=service, token=token, interval=0.2)
    return app


async def test_route_templates_statuses_and_counts(
    metricsd: Metricsd, aiohttp_server: Callable[..., Awaitable[TestServer]]
) -> None:
    app = shop_app(metricsd.url, TOKEN, "shop-aiohttp")
    server = await aiohttp_server(app)
    async with aiohttp.ClientSession(base_url=str(server.make_url(""))) as http:
        for user_id in ("1", "2", "345"):
            async with http.get(f"/users/{user_id}") as resp:
                assert resp.status == 200
        async with http.get("/users/0") as resp:
            assert resp.status == 404
        async with http.post("/users", json={}) as resp:
            assert resp.status == 201
        for _ in range(2):
            async with http.get("/boom") as resp:
                assert resp.status == 500
        async with http.get("/shop/orders/77/items") as resp:
            assert resp.status == 200
        async with http.get("/no/such/page/123") as resp:
            assert resp.status == 404
    sender = app[SENDER]
    await server.close()  # the cleanup context flushes the sender

    assert sender.stats().sent == 9 and sender.stats().dropped == 0
    samples = await metricsd.samples()
    svc = {"service": "shop-aiohttp"}
    assert value(samples, REQUESTS, **svc, route="/users/{id}", method="GET",
                 status_class="2xx") == 3
    assert value(samples, REQUESTS, **svc, route="/users/{id}", method="GET",
                 status_class="4xx") == 1
    assert value(samples, REQUESTS, **svc, route="/users", method="POST", status_class="2xx") == 1
    assert value(samples, REQUESTS, **svc, route="/boom", method="GET", status_class="5xx") == 2
    assert value(samples, REQUESTS, **svc, route="/shop/orders/{order_id}/items",
                 method="GET", status_class="2xx") == 1
    # No route matched: a normalised path, never the raw id.
    assert value(samples, REQUESTS, **svc, route="/no/such/page/:id", method="GET",
                 status_class="4xx") == 1
    assert value(samples, REQUESTS, **svc) == 9
    count = value(samples, "metricsd_api_request_duration_seconds_count", **svc,
                  route="/users/{id}", method="GET")
    assert count == 4


async def test_wrong_token_is_rejected_and_counted(
    metricsd: Metricsd, aiohttp_server: Callable[..., Awaitable[TestServer]]
) -> None:
    app = shop_app(metricsd.url, "not-the-token", "intruder")
    server = await aiohttp_server(app)
    async with aiohttp.ClientSession(base_url=str(server.make_url(""))) as http:
        for _ in range(3):
            async with http.get("/users/1") as resp:
                assert resp.status == 200
    sender = app[SENDER]
    await server.close()

    stats = sender.stats()
    assert (stats.rejected, stats.sent, stats.retries) == (3, 0, 0)  # 401: never retried
    assert [s.status for s in metricsd.seen] == [401]
    assert value(await metricsd.samples(), REQUESTS, service="intruder") == 0
