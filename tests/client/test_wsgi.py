"""A real Flask app and a plain WSGI app behind the WSGI middleware, in werkzeug's server."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Any

import aiohttp
from flask import Flask, abort
from metricsd_client import MetricsdWSGIMiddleware

from tests.client.conftest import TOKEN, Metricsd, serve_wsgi, value

REQUESTS = "metricsd_api_requests_total"


def flask_app() -> Flask:
    app = Flask("accounts")

    @app.get("/users/<int:user_id>")
    def user(user_id: int) -> dict[str, int]:
        if user_id == 0:
            abort(404)
        return {"id": user_id}

    @app.post("/users")
    def create() -> tuple[dict[str, str], int]:
        return {}, 201

    @app.get("/boom")
    def boom() -> str:
        raise RuntimeError("handler bug")

    return app


async def _get_all(base: str, calls: list[tuple[str, str, int]]) -> None:
    async with aiohttp.ClientSession(base_url=base) as http:
        for method, path, expected in calls:
            async with http.request(method, path) as resp:
                assert resp.status == expected, (method, path)


async def test_flask_route_templates_statuses_and_counts(metricsd: Metricsd) -> None:
    app = flask_app()
    middleware = MetricsdWSGIMiddleware(app.wsgi_app, metricsd.url, service="accounts",
                                        token=TOKEN, interval=0.2)
    app.wsgi_app = middleware  # type: ignore[method-assign]
    with serve_wsgi(app) as base:
        await _get_all(base, [
            ("GET", "/users/1", 200), ("GET", "/users/22", 200), ("GET", "/users/0", 404),
            ("POST", "/users", 201), ("GET", "/boom", 500), ("GET", "/boom", 500),
            ("GET", "/missing/5", 404),
        ])
    # The sender's thread posts to metricsd, which runs on this loop: close it off-loop.
    await asyncio.to_thread(middleware.sender.close)

    assert middleware.sender.stats().sent == 7
    samples = await metricsd.samples()
    svc = {"service": "accounts"}
    assert value(samples, REQUESTS, **svc, route="/users/<int:user_id>", method="GET",
                 status_class="2xx") == 2
    assert value(samples, REQUESTS, **svc, route="/users/<int:user_id>", method="GET",
                 status_class="4xx") == 1
    assert value(samples, REQUESTS, **svc, route="/users", method="POST", status_class="2xx") == 1
    assert value(samples, REQUESTS, **svc, route="/boom", method="GET", status_class="5xx") == 2
    assert value(samples, REQUESTS, **svc, route="/missing/:id", method="GET",
                 status_class="4xx") == 1
    assert value(samples, REQUESTS, **svc) == 7


def plain_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """A framework-less WSGI app: hands its template over like DjangoRouteMiddleware does."""
    path = environ["PATH_INFO"]
    if path.startswith("/reports/"):
        environ["metricsd.route"] = "/reports/<slug:name>"
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"report"]
    if path == "/crash":
        raise ValueError("raised before start_response")
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"not found"]


async def test_plain_wsgi_route_key_and_raised_errors(metricsd: Metricsd) -> None:
    middleware = MetricsdWSGIMiddleware(plain_app, metricsd.url, service="reports", token=TOKEN,
                                        interval=0.2)
    with serve_wsgi(middleware) as base:
        await _get_all(base, [
            ("GET", "/reports/weekly", 200), ("GET", "/reports/monthly", 200),
            ("GET", "/crash", 500), ("DELETE", "/files/9f86d081884c7d65aa", 404),
        ])
    await asyncio.to_thread(middleware.sender.close)

    samples = await metricsd.samples()
    svc = {"service": "reports"}
    assert value(samples, REQUESTS, **svc, route="/reports/<slug:name>", method="GET",
                 status_class="2xx") == 2
    assert value(samples, REQUESTS, **svc, route="/crash", method="GET", status_class="5xx") == 1
    assert value(samples, REQUESTS, **svc, route="/files/:id", method="DELETE",
                 status_class="4xx") == 1
