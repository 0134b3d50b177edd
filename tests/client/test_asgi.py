"""A real Starlette app with the ASGI middleware, served by uvicorn, seen on /metrics."""

from __future__ import annotations

import aiohttp
from metricsd_client import MetricsdASGIMiddleware
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from tests.client.conftest import TOKEN, Metricsd, serve_asgi, value

REQUESTS = "metricsd_api_requests_total"


def catalogue_app(metricsd_url: str) -> Starlette:
    async def item(request: Request) -> Response:
        if request.path_params["item_id"] == 0:
            raise HTTPException(status_code=404, detail="no such item")
        return JSONResponse({"id": request.path_params["item_id"]})

    async def create(request: Request) -> Response:
        return JSONResponse({}, status_code=201)

    async def boom(request: Request) -> Response:
        raise RuntimeError("handler bug")

    async def order(request: Request) -> Response:
        return JSONResponse({"order": request.path_params["order_id"]})

    routes = [
        Route("/items/{item_id:int}", item),
        Route("/items", create, methods=["POST"]),
        Route("/boom", boom),
        Mount("/api/v2", routes=[Route("/orders/{order_id}", order)]),
    ]
    middleware = [Middleware(MetricsdASGIMiddleware, url=metricsd_url, service="catalogue",
                             token=TOKEN, interval=0.2)]
    return Starlette(routes=routes, middleware=middleware)


async def test_starlette_route_templates_statuses_and_counts(metricsd: Metricsd) -> None:
    app = catalogue_app(metricsd.url)
    async with serve_asgi(app) as base, aiohttp.ClientSession(base_url=base) as http:
        for item_id in (1, 2, 3, 4):
            async with http.get(f"/items/{item_id}") as resp:
                assert resp.status == 200
        async with http.get("/items/0") as resp:
            assert resp.status == 404
        async with http.post("/items") as resp:
            assert resp.status == 201
        async with http.get("/items") as resp:  # route exists for POST only
            assert resp.status == 405
        for _ in range(3):
            async with http.get("/boom") as resp:
                assert resp.status == 500
        for order_id in ("a1", "b2"):
            async with http.get(f"/api/v2/orders/{order_id}") as resp:
                assert resp.status == 200
        async with http.get("/nowhere/42") as resp:
            assert resp.status == 404
    # Leaving serve_asgi ran the lifespan shutdown: the sender flushed before it returned.

    samples = await metricsd.samples()
    svc = {"service": "catalogue"}
    assert value(samples, REQUESTS, **svc, route="/items/{item_id:int}", method="GET",
                 status_class="2xx") == 4
    assert value(samples, REQUESTS, **svc, route="/items/{item_id:int}", method="GET",
                 status_class="4xx") == 1
    assert value(samples, REQUESTS, **svc, route="/items", method="POST", status_class="2xx") == 1
    assert value(samples, REQUESTS, **svc, route="/items", method="GET", status_class="4xx") == 1
    assert value(samples, REQUESTS, **svc, route="/boom", method="GET", status_class="5xx") == 3
    assert value(samples, REQUESTS, **svc, route="/api/v2/orders/{order_id}", method="GET",
                 status_class="2xx") == 2
    assert value(samples, REQUESTS, **svc, route="/nowhere/:id", method="GET",
                 status_class="4xx") == 1
    assert value(samples, REQUESTS, **svc) == 13
