"""POST /v1/beacons/{type}: authenticate, rate-limit, decode, validate, record, answer 202.

Every answer is JSON with a reason the sender can act on, and every answer is counted in
metricsd_ingest_requests_total{type,code}; nothing a client sends can produce a 5xx.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import math
import re
import time
import zlib
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import hdrs, web
from aiohttp.http_exceptions import HttpProcessingError

from metricsd.clientlog import one_line
from metricsd.config import IngestConfig
from metricsd.core import current_config
from metricsd.errors import BeaconError
from metricsd.ingest import BEACON_TYPES, RATE_LIMITER, SELF_METRICS
from metricsd.ingest.base import BEACONS, BeaconType, Context
from metricsd.ingest.ratelimit import client_address, is_loopback

log = logging.getLogger(__name__)

JSON = "application/json"
Handler = Callable[[web.Request], Awaitable[web.Response]]


class Refused(BeaconError):
    """A whole request is refused: status code, reason code, message, extra headers."""

    def __init__(
        self, status: int, reason: str, message: str, headers: dict[str, str] | None = None,
        close: bool = False,
    ) -> None:
        super().__init__(message, reason)
        self.status = status
        self.headers = headers or {}
        self.close = close  # answer, then close the connection (a body still trickling in)


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
        config = current_config(app).ingest  # reloadable
        origin = request.headers.get(hdrs.ORIGIN) if cors else None
        granted = close = False
        try:
            if origin is not None:
                allowed_origin(origin, config.cors_origins)
                granted = True
            response = await checks.handle(request, app[BEACON_TYPES][name], config)
        except Refused as exc:
            counters.rejected[(name, exc.reason)] += 1
            if exc.status == 429:
                counters.rate_limited[name] += 1
            response = _json(exc.status, {"error": str(exc), "reason": exc.reason}, exc.headers)
            close = exc.close
        except BeaconError as exc:  # a check that escaped its item (a bug): still a 4xx
            counters.rejected[(name, exc.reason)] += 1
            response = _json(400, {"error": str(exc), "reason": exc.reason})
        counters.requests[(name, response.status)] += 1
        if cors:  # the allowed origin is echoed, so caches must key on it
            response.headers[hdrs.VARY] = hdrs.ORIGIN
            if granted:
                assert origin is not None
                response.headers.update(_cors_headers(origin))
        if close:
            await _answer_and_close(request, response)
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
        body = await read_body(request, current_config(request.app).server.body_timeout, config)
        body = decompress(body, request.headers.get(hdrs.CONTENT_ENCODING), config)
        ctx = Context(now, request.headers.get(hdrs.REFERER),
                      request.headers.get(hdrs.USER_AGENT), request.headers.get("Sec-CH-UA-Mobile"))
        result = beacon.ingest_body(body, ctx)
        if result is not None:
            return _json(202 if result.accepted else 400, {
                "accepted": result.accepted, "rejected": result.rejected,
                "errors": result.errors})
        payload = decode(body)
        items = payload if type(payload) is list else [payload]
        if not items:
            raise Refused(400, "empty", "empty batch: send an object or a non-empty array")
        if (count := beacon.count(items)) > config.max_items:
            raise Refused(413, "too_many_items",
                          f"batch of {count} samples exceeds ingest.max_items "
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
        # Header text is undecoded bytes (aiohttp keeps them as lone surrogates); compare
        # those bytes, so a token that is not UTF-8 is just a wrong token, never a 500.
        candidate = presented.strip().encode("utf-8", "surrogateescape")
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


async def read_body(request: web.Request, limit_s: float, config: IngestConfig) -> bytes:
    """The raw body within `limit_s` (408 and close), bounded (413), whole (else 400)."""
    if request.content.is_eof():  # already here (most beacons): no timer to arm
        try:
            return await request.read()
        except web.HTTPRequestEntityTooLarge:
            raise _too_large(config) from None
    try:
        async with asyncio.timeout(limit_s):
            return await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise _too_large(config) from None
    except TimeoutError:
        log.info("client error: %s: body not received within server.body_timeout (%gs); "
                 "answered 408 and closed", request.remote, limit_s)
        raise Refused(408, "body_timeout",
                      f"body not received within server.body_timeout ({limit_s:g}s)",
                      close=True) from None
    except (ConnectionError, HttpProcessingError) as exc:  # aborted, bad chunking, short
        log.info("client error: %s: body not read: %s", request.remote, one_line(exc))
        raise Refused(400, "bad_body", "the body ended early or was malformed",
                      close=True) from None


async def _answer_and_close(request: web.Request, response: web.Response) -> None:
    """Send `response` now and close the socket, without waiting for the rest of a body
    (aiohttp would otherwise keep reading it for `lingering_time`)."""
    response.force_close()
    try:
        await response.prepare(request)
        await response.write_eof()
    except (ConnectionError, RuntimeError):  # the client is already gone
        pass
    request.protocol.force_close()


# Beacons nest two or three levels deep (a batch, an item, an attribution object).
MAX_JSON_DEPTH = 32
# JSON strings (with escapes), the only place a bracket may stand without nesting.
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_INNERMOST_PAIR = re.compile(rb"\[\]|\{\}")
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
# When int() refuses a number's length (4300 digits), integers longer than this are read
# as floats: out of range for their item, not a conversion error for the whole body.
_MAX_INT_DIGITS = 30


def too_deep(body: bytes, limit: int) -> bool:
    """Whether a JSON text nests deeper than `limit`, found without decoding it.

    Strings are removed, then only brackets are kept, then each pass removes the
    innermost pairs (one level): every step runs in C, so a 1 MB batch costs about a
    millisecond. Unbalanced brackets are left for the decoder to report, unless there are
    more than `limit` of them (the decoder would recurse into them before failing).
    """
    # Without a backslash no quote is escaped: every other piece between quotes is
    # outside strings (ten times cheaper than the regular expression).
    outside = _JSON_STRING.sub(b"", body) if b"\\" in body else b"".join(body.split(b'"')[::2])
    brackets = outside.translate(None, _NOT_BRACKETS)
    for _ in range(limit):
        if not brackets:
            return False
        reduced = _INNERMOST_PAIR.sub(b"", brackets)
        if reduced == brackets:  # unbalanced, not JSON: refuse a long run of openers
            return len(brackets) > limit
        brackets = reduced
    return bool(brackets) and _INNERMOST_PAIR.search(brackets) is not None


def _parse_int(text: str) -> int | float:
    return int(text) if len(text) <= _MAX_INT_DIGITS else float(text)


def decode(body: bytes) -> Any:
    """JSON by orjson; on failure, by the standard library, which also reads NaN and
    Infinity (Python's json.dumps writes them) and integers of any size, so such items
    are refused one by one while the rest of their batch is kept.

    orjson refuses nesting deeper than 1024 in C before it builds anything; the fallback
    measures depth first (MAX_JSON_DEPTH), so the stdlib decoder never recurses deeply.
    """
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        error = exc
    if too_deep(body, MAX_JSON_DEPTH):
        raise Refused(400, "invalid_json",
                      f"body nests deeper than {MAX_JSON_DEPTH} levels") from None
    try:
        try:
            return json.loads(body)
        except ValueError as exc:
            if "digits" not in str(exc):  # not int()'s 4300-digit limit: not JSON at all
                raise
            return json.loads(body, parse_int=_parse_int)
    except (ValueError, RecursionError):  # JSONDecodeError, bad UTF-8; deep nesting
        raise Refused(400, "invalid_json", f"body is not valid JSON: {error}") from None


# Content codings a beacon may use, as zlib window bits (gzip header, zlib header).
_CODINGS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS,
            "deflate": zlib.MAX_WBITS}


def decompress(body: bytes, coding: str | None, config: IngestConfig) -> bytes:
    """The body without its Content-Encoding: 415 unknown, 400 corrupt, 413 too large.

    aiohttp's own decompression is off (app.py), because it lets trailing garbage pass
    and turns a corrupt stream into a 500; here the output is bounded to
    ingest.max_body_bytes while it is inflated, so a bomb costs that much at most.
    """
    if coding is None:
        return body
    name = coding.strip().lower()
    if name in ("", "identity"):
        return body
    wbits = _CODINGS.get(name)
    if wbits is None:
        shown = name.encode("utf-8", "surrogateescape")[:40].decode("ascii", "replace")
        raise Refused(415, "unsupported_encoding",
                      f"Content-Encoding {shown!r} is not supported: use gzip, deflate "
                      "or identity", {"Accept-Encoding": "gzip, deflate, identity"})
    limit = config.max_body_bytes
    inflater = zlib.decompressobj(wbits)
    try:
        out = inflater.decompress(body, limit + 1)
    except zlib.error:
        if name != "deflate":
            raise _corrupt(name) from None
        inflater = zlib.decompressobj(-zlib.MAX_WBITS)  # raw deflate, as some clients send
        try:
            out = inflater.decompress(body, limit + 1)
        except zlib.error:
            raise _corrupt(name) from None
    if len(out) > limit or inflater.unconsumed_tail:
        raise Refused(413, "body_too_large",
                      f"decompressed body exceeds ingest.max_body_bytes ({limit} bytes)")
    if not inflater.eof:
        raise Refused(400, "bad_encoding", f"{name} body is truncated")
    if inflater.unused_data:
        raise Refused(400, "bad_encoding", f"{name} body has trailing data after its end")
    return out


def _corrupt(name: str) -> Refused:
    return Refused(400, "bad_encoding", f"body is not valid {name} data")


# --- CORS: an allow-list, enforced (not only advertised) ---------------------------------

def allowed_origin(origin: str, allowed: list[str]) -> None:
    """Refuse (403) a request whose Origin is not allowed; browsers send it on every
    cross-origin POST, so withholding the CORS header alone would still ingest it."""
    if not origin.isascii() or not origin.isprintable():
        raise Refused(400, "bad_origin", "Origin must be printable ASCII")
    if "*" in allowed or origin in allowed:
        return
    raise Refused(403, "origin_not_allowed",
                  "Origin is not in ingest.cors_origins: this site may not send beacons here")


def _cors_headers(origin: str) -> dict[str, str]:
    # Beacons may carry cookies, so the allowed origin is echoed, never "*".
    return {"Access-Control-Allow-Origin": origin,
            "Access-Control-Allow-Credentials": "true"}


def preflight_handler(name: str) -> Handler:
    """OPTIONS for a browser beacon route: 200 with the CORS grant, or 403."""

    async def preflight(request: web.Request) -> web.Response:
        origin = request.headers.get(hdrs.ORIGIN)
        method = request.headers.get(hdrs.ACCESS_CONTROL_REQUEST_METHOD)
        if origin is None or method is None:
            return _json(400, {"error": "a CORS preflight needs Origin and "
                                        "Access-Control-Request-Method",
                               "reason": "bad_preflight"})
        try:
            allowed_origin(origin, current_config(request.app).ingest.cors_origins)
        except Refused as exc:
            return _json(exc.status, {"error": str(exc), "reason": exc.reason})
        if method.upper() != "POST":
            return _json(403, {"error": "only POST is allowed", "reason": "method_not_allowed"})
        return web.Response(status=200, headers={
            **_cors_headers(origin), hdrs.VARY: hdrs.ORIGIN,
            "Access-Control-Allow-Methods": "POST",
            "Access-Control-Allow-Headers": "Content-Type",
            "Access-Control-Max-Age": "86400"})

    return preflight


def _too_large(config: IngestConfig) -> Refused:
    return Refused(413, "body_too_large",
                   f"body exceeds ingest.max_body_bytes ({config.max_body_bytes} bytes)")


async def unknown_type(request: web.Request) -> web.Response:
    kinds = ", ".join(f"/v1/beacons/{name}" for name in BEACONS)
    return _json(404, {"error": f"unknown beacon type; use {kinds}", "reason": "unknown_type"})


def setup(app: web.Application) -> None:
    """Routes for every registered beacon type, CORS preflight for the browser ones."""
    for name, cls in BEACONS.items():
        app.router.add_post(f"/v1/beacons/{name}", beacon_handler(name))
        if cls.cors:
            app.router.add_route(hdrs.METH_OPTIONS, f"/v1/beacons/{name}",
                                 preflight_handler(name))
    app.router.add_route("*", "/v1/beacons/{type}", unknown_type)
