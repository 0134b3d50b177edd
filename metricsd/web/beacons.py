"""POST /v1/beacons/{type}: authenticate, rate-limit, decode, validate, record, answer 202.

Every answer is JSON with a reason the sender can act on, and every answer is counted in
metricsd_ingest_requests_total{type,code}; nothing a client sends can produce a 5xx.
"""

from __future__ import annotations

import hmac
import json
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp_cors
import orjson
from aiohttp import hdrs, web

from metricsd.config import IngestConfig
from metricsd.core import CONFIG, current_config
from metricsd.errors import BeaconError
from metricsd.ingest import BEACON_TYPES, RATE_LIMITER, SELF_METRICS
from metricsd.ingest.base import BEACONS, BeaconType, Context
from metricsd.ingest.ratelimit import client_address, is_loopback

JSON = "application/json"
Handler = Callable[[web.Request], Awaitable[web.Response]]


class Refused(BeaconError):
    """A whole request is refused: status code, reason code, message, extra headers."""

    def __init__(
        self, status: int, reason: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message, reason)
        self.status = status
        self.headers = headers or {}


def _json(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(body), content_type=JSON,
                        headers=headers)


def beacon_handler(name: str) -> Handler:
    """The handler of `/v1/beacons/<name>`; state comes from the app, never from globals."""
    checks = BeaconChecks(name)
    cors = BEACONS[name].cors

    async def handle(request: web.Request) -> web.Response:
        app = request.app
        counters = app[SELF_METRICS]
        try:
            response = await checks.handle(request, app[BEACON_TYPES][name],
                                           current_config(app).ingest)
        except Refused as exc:
            counters.rejected[(name, exc.reason)] += 1
            if exc.status == 429:
                counters.rate_limited[name] += 1
            response = _json(exc.status, {"error": str(exc), "reason": exc.reason}, exc.headers)
        counters.requests[(name, response.status)] += 1
        if cors:  # the allowed origin is echoed, so caches must key on it
            response.headers[hdrs.VARY] = hdrs.ORIGIN
        return response

    return handle


class BeaconChecks:
    """Authentication, rate limit, body limits and decoding, in that order (cheapest first)."""

    def __init__(self, name: str) -> None:
        self.name = name

    async def handle(
        self, request: web.Request, beacon: BeaconType, config: IngestConfig
    ) -> web.Response:
        now = time.time()
        token = self._authenticate(request, beacon, config)
        self._rate_limit(request, config, token, now)
        length = request.content_length
        if length is not None and length > config.max_body_bytes:
            raise _too_large(config)
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            raise _too_large(config) from None
        ctx = Context(now, request.headers.get(hdrs.REFERER))
        result = beacon.ingest_body(body, ctx)
        if result is not None:
            return _json(202 if result.accepted else 400, {
                "accepted": result.accepted, "rejected": result.rejected,
                "errors": result.errors})
        payload = decode(body)
        items = payload if type(payload) is list else [payload]
        if not items:
            raise Refused(400, "empty", "empty batch: send an object or a non-empty array")
        if len(items) > config.max_items:
            raise Refused(413, "too_many_items",
                          f"batch of {len(items)} items exceeds ingest.max_items "
                          f"({config.max_items}): split it")
        result = beacon.ingest(items, ctx)
        body_out = {"accepted": result.accepted, "rejected": result.rejected,
                    "errors": result.errors}
        return _json(202 if result.accepted else 400, body_out)

    def _authenticate(
        self, request: web.Request, beacon: BeaconType, config: IngestConfig
    ) -> str | None:
        """The bearer token when one is required (constant-time check), else None."""
        if not beacon.needs_token or not config.tokens:
            return None
        scheme, _, presented = request.headers.get(hdrs.AUTHORIZATION, "").partition(" ")
        challenge = {"WWW-Authenticate": 'Bearer realm="metricsd"'}
        if scheme.lower() != "bearer" or not presented:
            raise Refused(401, "unauthorized", "missing bearer token", challenge)
        candidate = presented.strip().encode()
        # Compare against every token so the time taken does not say which one nearly matched.
        matched = None
        for token in config.tokens:
            if hmac.compare_digest(candidate, token.encode()):
                matched = token
        if matched is None:
            raise Refused(401, "unauthorized", "invalid bearer token", challenge)
        return matched

    def _rate_limit(
        self, request: web.Request, config: IngestConfig, token: str | None, now: float
    ) -> None:
        limits = config.rate_limit
        if limits.enabled is False:
            return
        client = client_address(
            request.remote, request.headers.get("X-Forwarded-For"), limits.trusted_proxies
        )
        if limits.enabled is None and is_loopback(client):
            return
        buckets = request.app[RATE_LIMITER]
        wait = buckets.take(f"ip:{client}", now)
        if token is not None:
            wait = max(wait, buckets.take(f"token:{token}", now))
        if wait > 0:
            retry = str(max(1, math.ceil(wait)))
            raise Refused(429, "rate_limited",
                          f"rate limit of {limits.requests_per_second:g} requests/s exceeded",
                          {"Retry-After": retry})


def decode(body: bytes) -> Any:
    """JSON by orjson; on failure, by the standard library, which also reads NaN and
    Infinity (Python's json.dumps writes them), so such items are refused one by one
    while the rest of their batch is kept."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        error = exc
    try:
        return json.loads(body)
    except (ValueError, RecursionError):  # JSONDecodeError, bad UTF-8, huge ints; deep nesting
        raise Refused(400, "invalid_json", f"body is not valid JSON: {error}") from None


def _too_large(config: IngestConfig) -> Refused:
    return Refused(413, "body_too_large",
                   f"body exceeds ingest.max_body_bytes ({config.max_body_bytes} bytes)")


async def unknown_type(request: web.Request) -> web.Response:
    kinds = ", ".join(f"/v1/beacons/{name}" for name in BEACONS)
    return _json(404, {"error": f"unknown beacon type; use {kinds}", "reason": "unknown_type"})


def setup(app: web.Application) -> None:
    """Routes for every registered beacon type, CORS for the browser ones."""
    config = app[CONFIG].ingest
    cors = aiohttp_cors.setup(app)
    # Beacons may carry cookies, so the allowed origin is echoed, never "*".
    options = aiohttp_cors.ResourceOptions(
        allow_credentials=True, allow_headers=("Content-Type",), max_age=86400
    )
    origins = {origin: options for origin in config.cors_origins}
    for name, cls in BEACONS.items():
        route = app.router.add_post(f"/v1/beacons/{name}", beacon_handler(name))
        if cls.cors and origins:
            cors.add(route, origins)
    app.router.add_route("*", "/v1/beacons/{type}", unknown_type)
