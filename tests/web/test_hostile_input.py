"""Whole classes of hostile input against a real socket: never a 5xx, never a poisoned label.

Raw sockets, because clients refuse to send what an attacker sends: header bytes that are
not UTF-8, control characters, broken compression. Every route of the app is hit, admin
and PostgreSQL views included, with admin auth, tokens and trusted proxies configured so
that every header parser is on the path.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import http.client
import io
import json
import logging
import socket
import threading
import zlib
from collections.abc import Iterator

import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from metricsd.app import create_app
from metricsd.config import load_config
from metricsd.ingest import STORE
from metricsd.labels import is_clean

TOKEN = "ingest-token"
ADMIN = "admin-token"
ORIGIN = "https://shop.example"
TIMING = {"service": "shop", "route": "/orders/1", "method": "GET", "status": 200,
          "duration_ms": 5.0}
VITAL = {"name": "LCP", "value": 1200.0, "rating": "good", "delta": 1200.0, "id": "v1",
         "page": "/home"}
MAX_BODY = 65536


class Server:
    """metricsd on a real socket in its own thread and loop; `app` for white-box checks."""

    def __init__(self, app: web.Application, host: str, port: int) -> None:
        self.app, self.host, self.port = app, host, port
        self.loop: asyncio.AbstractEventLoop | None = None

    def call(self, fn):
        """Run `fn()` on the server's loop (the store is not thread-safe)."""
        async def run():
            return fn()
        assert self.loop is not None
        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(10)


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    config = load_config(None, env={
        "METRICSD_INGEST__MAX_SERIES": "2000",
        "METRICSD_INGEST__MAX_BODY_BYTES": str(MAX_BODY),
        "METRICSD_INGEST__TOKENS": f"[{TOKEN}]",
        "METRICSD_INGEST__CORS_ORIGINS": f"['{ORIGIN}']",
        "METRICSD_INGEST__RATE_LIMIT": "{enabled: true, requests_per_second: 100000, "
                                       "burst: 100000, trusted_proxies: ['127.0.0.0/8']}",
        "METRICSD_ADMIN": f"{{token: {ADMIN}, basic_auth: {{username: u, password: p}}}}",
    })
    loop = asyncio.new_event_loop()
    app = create_app(config)
    runner = web.AppRunner(app)
    address: list[int] = []

    async def start() -> None:
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        address.append(site._server.sockets[0].getsockname()[1])

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(start(), loop).result(10)
    srv = Server(app, "127.0.0.1", address[0])
    srv.loop = loop
    yield srv
    asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    loop.close()


class _Sock:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def makefile(self, *args, **kwargs):
        return io.BytesIO(self.data)


def raw(server: Server, method: str, target: str, headers: list[tuple[bytes, bytes]] = (),
        body: bytes = b"") -> tuple[int, bytes, http.client.HTTPResponse]:
    """Send one request byte for byte; return status, the complete body and the response.

    The response is parsed by http.client, which raises on a truncated body, so a server
    that sends a 200 header and then drops the connection fails here.
    """
    head = [f"{method} {target} HTTP/1.1".encode(), b"Host: metricsd",
            b"Connection: close", b"Content-Length: %d" % len(body)]
    head += [name + b": " + value for name, value in headers]
    with socket.create_connection((server.host, server.port), timeout=15) as sock:
        sock.sendall(b"\r\n".join(head) + b"\r\n\r\n" + body)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    resp = http.client.HTTPResponse(_Sock(b"".join(chunks)), method=method)  # type: ignore[arg-type]
    resp.begin()
    payload = resp.read()
    return resp.status, payload, resp


def every_route(app: web.Application) -> list[tuple[str, str]]:
    """(method, path) for every route the app serves, path parameters filled in."""
    out = set()
    for resource in app.router.resources():
        info = resource.get_info()
        path = info.get("path") or info.get("formatter") or info.get("prefix")
        path = path.replace("{type}", "nope").replace("{period}", "day")
        if "{" in path:
            path = path.split("{", 1)[0] + "x"
        for route in resource:
            method = route.method
            for m in (("GET", "POST", "PUT") if method == "*" else (method,)):
                out.add((m, path))
    return sorted(out)


def assert_no_tracebacks(caplog) -> None:
    bad = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert not bad, [r.getMessage() for r in bad]


def assert_store_and_scrape_healthy(server: Server) -> None:
    """Every stored label is clean; /metrics and / answer in full (the issue's symptoms)."""
    def keys():
        store = server.app[STORE]
        return [k for f in store.families.values() for k in f.slot_of]
    for key in server.call(keys):
        assert all(is_clean(v) for v in key), key
    status, body, _ = raw(server, "GET", "/metrics")
    assert status == 200 and body.endswith(b"\n")
    body.decode("utf-8")
    status, _, _ = raw(server, "GET", "/", [(b"Authorization", f"Bearer {ADMIN}".encode())])
    assert status == 200


header_bytes = st.binary(max_size=80).map(
    lambda b: b.replace(b"\r", b"").replace(b"\n", b"").strip(b" \t"))
HEADER_NAMES = [b"Authorization", b"Origin", b"X-Forwarded-For", b"Referer", b"Content-Type",
                b"User-Agent", b"Content-Encoding", b"Accept", b"Cookie", b"Host-Extra"]


@st.composite
def hostile_headers(draw) -> list[tuple[bytes, bytes]]:
    out = []
    for name in draw(st.lists(st.sampled_from(HEADER_NAMES), min_size=1, max_size=6,
                              unique=True)):
        value = draw(header_bytes)
        if name == b"Authorization":
            value = draw(st.sampled_from([b"Bearer ", b"Basic ", b"bearer ", b""])) + draw(
                st.one_of(st.just(value),
                          header_bytes.map(lambda b: base64.b64encode(b)),
                          header_bytes.map(lambda b: base64.b64encode(b"u:" + b))))
        elif name == b"X-Forwarded-For":
            value = b"127.0.0.9, " + value
        elif name == b"Referer":
            value = b"https://any.site/" + value
        out.append((name, value))
    return out


hostile = settings(max_examples=60, deadline=None, derandomize=True,
                   suppress_health_check=[HealthCheck.function_scoped_fixture])


@hostile
@given(headers=hostile_headers())
def test_arbitrary_header_bytes_on_every_route_never_5xx(server, caplog, headers):
    routes = every_route(server.app)
    assert len(routes) >= 12  # beacons, preflight, views, metrics, health, page
    for method, path in routes:
        body = json.dumps([VITAL if "vitals" in path else TIMING]).encode() \
            if method == "POST" else b""
        status, _, _ = raw(server, method, path, headers, body)
        assert status < 500, (method, path, headers, status)
    assert_no_tracebacks(caplog)


def test_the_issue_referer_byte_ff_is_rejected_and_scrapes_stay_whole(server):
    for suffix in (b"x\xff", b"\xc3\x28", b"p\xc2\x85q", "\u202eevil".encode(),
                   b"a" * 900, b"\xed\xa0\x80"):
        status, body, _ = raw(server, "POST", "/v1/beacons/vitals",
                              [(b"Referer", b"https://any.site/" + suffix),
                               (b"Content-Type", b"text/plain")],
                              json.dumps({**VITAL, "page": None, "id": "r"}).encode()
                              .replace(b'"page": null, ', b""))
        assert status == 400, (suffix, body)
        assert json.loads(body)["errors"][0]["reason"] == "bad_string"
    assert_store_and_scrape_healthy(server)


@hostile
@given(path=st.text(st.characters(exclude_categories=()), max_size=300),
       as_field=st.booleans())
def test_any_page_text_is_stored_clean_or_rejected(server, path, as_field):
    item = {**VITAL, "id": "p"}
    headers = [(b"Content-Type", b"application/json")]
    if as_field:
        item["page"] = path
        body = json.dumps([item, VITAL]).encode()  # ensure_ascii: surrogates as \udcxx
    else:
        del item["page"]
        raw_path = path.encode("utf-8", "surrogatepass").replace(b"\r", b"").replace(b"\n", b"")
        headers.append((b"Referer", b"https://any.site/" + raw_path))
        body = json.dumps([item, VITAL]).encode()
    status, payload, _ = raw(server, "POST", "/v1/beacons/vitals", headers, body)
    if status == 400 and not as_field and payload.startswith(b"Invalid header value char"):
        return  # aiohttp's parser refused the header itself: fine, a 4xx
    assert status == 202, payload
    doc = json.loads(payload)
    assert doc["accepted"] + doc["rejected"] == 2 and doc["accepted"] >= 1


def test_store_and_scrape_are_healthy_after_the_fuzzing(server):
    assert_store_and_scrape_healthy(server)


# --- numbers of any size -------------------------------------------------------------

number_literals = st.one_of(
    st.from_regex(r"-?(0|[1-9][0-9]{0,5000})(\.[0-9]{1,40})?([eE][+-]?[0-9]{1,7})?",
                  fullmatch=True),
    st.sampled_from(["1e400", "-1e400", "1E+999999", "1e-999999", "10" + "0" * 400,
                     "123456789012345678901234567890", "NaN", "Infinity", "-Infinity",
                     '"12"', '"1e400"', "true", "null", "[1]", "{}"]),
)


@hostile
@given(field=st.sampled_from(["status", "duration_ms", "timestamp"]),
       literal=number_literals)
def test_numbers_of_any_size_in_timings(server, field, literal):
    fields = {**TIMING, field: "@"}
    text = json.dumps([fields, TIMING]).replace('"@"', literal)
    status, payload, _ = raw(server, "POST", "/v1/beacons/timings",
                             [(b"Authorization", f"Bearer {TOKEN}".encode())], text.encode())
    assert status == 202, (literal, payload)
    assert json.loads(payload)["accepted"] >= 1


@hostile
@given(field=st.sampled_from(["value", "delta"]), literal=number_literals)
def test_numbers_of_any_size_in_vitals(server, field, literal):
    text = json.dumps([{**VITAL, field: "@"}, VITAL]).replace('"@"', literal)
    status, payload, _ = raw(server, "POST", "/v1/beacons/vitals", [], text.encode())
    assert status == 202, (literal, payload)


# --- nesting depth -------------------------------------------------------------------

@pytest.mark.parametrize("depth", [33, 100, 1025, 10_000, 30_000])
@pytest.mark.parametrize("route", ["/v1/beacons/timings", "/v1/beacons/vitals"])
@pytest.mark.parametrize("shape", ["array", "object", "mixed-nan", "unclosed", "in-strings"])
def test_any_nesting_depth_is_a_400(server, depth, route, shape):
    if shape == "array":
        body = b"[" * depth + b"]" * depth
    elif shape == "object":
        body = b'{"a":' * depth + b"1" + b"}" * depth
    elif shape == "mixed-nan":  # NaN sends the body to the stdlib fallback decoder
        body = b"[NaN," + b"[" * depth + b"]" * depth + b"]"
    elif shape == "unclosed":
        body = b"[NaN," + b"[" * depth
    else:  # brackets inside strings do not nest: a valid batch, its items judged one by one
        body = json.dumps([{**TIMING, "service": "[" * depth}, TIMING]).encode()
        body = body.replace(b'"duration_ms": 5.0}]', b'"duration_ms": NaN}]')
        status, payload, _ = raw(server, "POST", route,
                                 [(b"Authorization", f"Bearer {TOKEN}".encode())], body)
        assert status in (202, 400) and "errors" in json.loads(payload), payload
        return
    if len(body) > MAX_BODY:
        body = body[: MAX_BODY // 2 - 1] + body[-(MAX_BODY // 2 - 1):]
    status, payload, _ = raw(server, "POST", route,
                             [(b"Authorization", f"Bearer {TOKEN}".encode())], body)
    assert status == 400, payload
    doc = json.loads(payload)
    reason = doc["reason"] if "reason" in doc else doc["errors"][0]["reason"]
    assert reason in ("invalid_json", "not_object", "missing_field")


# --- content encodings ---------------------------------------------------------------

def _post_encoded(server, coding: bytes, body: bytes):
    return raw(server, "POST", "/v1/beacons/timings",
               [(b"Authorization", f"Bearer {TOKEN}".encode()),
                (b"Content-Encoding", coding)], body)


GOOD = json.dumps([TIMING] * 3).encode()


@pytest.mark.parametrize("coding,body", [
    (b"gzip", gzip.compress(GOOD)), (b"x-gzip", gzip.compress(GOOD)),
    (b"deflate", zlib.compress(GOOD)), (b"deflate", zlib.compress(GOOD)[2:-4]),  # raw
    (b"identity", GOOD), (b"GZIP", gzip.compress(GOOD)),
])
def test_supported_encodings_are_read(server, coding, body):
    status, payload, _ = _post_encoded(server, coding, body)
    assert status == 202 and json.loads(payload)["accepted"] == 3


@hostile
@given(coding=st.one_of(st.sampled_from([b"br", b"zstd", b"compress", b"gzip, gzip",
                                         b"*", b"chunked"]), header_bytes.filter(
    lambda b: b.strip().lower() not in (b"", b"gzip", b"x-gzip", b"deflate", b"identity"))))
def test_unknown_encodings_are_415(server, coding):
    status, payload, _ = _post_encoded(server, coding, gzip.compress(GOOD))
    if status == 400 and payload.startswith(b"Invalid header value char"):
        return  # aiohttp's parser refused the header itself: fine, a 4xx
    assert status == 415, payload
    assert json.loads(payload)["reason"] == "unsupported_encoding"


@hostile
@given(coding=st.sampled_from([b"gzip", b"deflate"]), garbage=st.binary(min_size=1,
                                                                         max_size=64),
       cut=st.integers(1, 30), kind=st.sampled_from(["trailing", "truncated", "random"]))
def test_corrupt_compressed_bodies_are_400(server, coding, garbage, cut, kind):
    packed = gzip.compress(GOOD) if coding == b"gzip" else zlib.compress(GOOD)
    body = {"trailing": packed + garbage, "truncated": packed[:-cut],
            "random": garbage}[kind]
    status, payload, _ = _post_encoded(server, coding, body)
    assert status == 400, (kind, payload)
    assert json.loads(payload)["reason"] in ("bad_encoding", "invalid_json")


@pytest.mark.parametrize("coding", [b"gzip", b"deflate"])
def test_compression_bombs_are_413(server, coding):
    inflated = b"[" + b" " * (50 * MAX_BODY) + b"]"
    body = gzip.compress(inflated) if coding == b"gzip" else zlib.compress(inflated)
    assert len(body) < MAX_BODY
    status, payload, _ = _post_encoded(server, coding, body)
    assert status == 413 and json.loads(payload)["reason"] == "body_too_large"


# --- CORS allow-list -----------------------------------------------------------------

def _vitals(server, headers, ident):
    return raw(server, "POST", "/v1/beacons/vitals", headers,
               json.dumps({**VITAL, "id": ident, "page": f"/cors/{ident}x"}).encode())


def _has_page(server, page: str) -> bool:
    return server.call(lambda: any(key[0] == page
                                   for key in server.app[STORE].families["LCP"].slot_of))


@pytest.mark.parametrize("origin", [b"https://evil.example", b"null", b"https://shop.example.evil",
                                    b"http://shop.example", b"https://SHOP.example:443x"])
def test_a_disallowed_origin_is_refused_and_not_ingested(server, origin):
    ident = f"o{abs(hash(origin))}"
    status, payload, resp = _vitals(server, [(b"Origin", origin)], ident)
    assert status == 403 and json.loads(payload)["reason"] == "origin_not_allowed"
    assert resp.getheader("Access-Control-Allow-Origin") is None
    assert not _has_page(server, f"/cors/{ident}x")


def test_an_allowed_origin_and_no_origin_are_ingested(server):
    status, _, resp = _vitals(server, [(b"Origin", ORIGIN.encode())], "a1")
    assert status == 202 and resp.getheader("Access-Control-Allow-Origin") == ORIGIN
    assert _has_page(server, "/cors/a1x")
    status, _, resp = _vitals(server, [], "a2")  # sendBeacon same-origin, server-side
    assert status == 202 and resp.getheader("Access-Control-Allow-Origin") is None
    assert _has_page(server, "/cors/a2x")
