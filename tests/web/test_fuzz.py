"""Property: nothing a client sends to a beacon route produces a 5xx or a non-JSON answer."""

from __future__ import annotations

import asyncio
import http.client
import json
import threading
from collections.abc import Iterator

import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from metricsd.app import create_app
from metricsd.config import load_config
from metricsd.ingest.columnar import sample_count

ROUTES = ["/v1/beacons/timings", "/v1/beacons/vitals", "/v1/beacons/operations",
          "/v1/beacons/cache"]


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, int]]:
    """metricsd on a real socket, in its own thread and loop, for synchronous clients."""
    config = load_config(None, env={"METRICSD_INGEST__MAX_SERIES": "200",
                                    "METRICSD_INGEST__MAX_BODY_BYTES": "65536"})
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(create_app(config))
    started = threading.Event()
    address: list[int] = []

    async def start() -> None:
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        address.append(site._server.sockets[0].getsockname()[1])
        started.set()

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(start(), loop).result(10)
    started.wait(10)
    yield "127.0.0.1", address[0]
    asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    loop.close()


def post(server, path: str, body: bytes, content_type: str = "application/json"):
    conn = http.client.HTTPConnection(*server, timeout=10)
    try:
        conn.request("POST", path, body=body, headers={"Content-Type": content_type,
                                                       "Referer": "https://x.example/a/1"})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def check(status: int, payload: bytes) -> None:
    assert status < 500, payload
    assert status in (202, 400, 413), (status, payload)
    doc = json.loads(payload)  # always JSON, always with a reason or a result
    assert "accepted" in doc or ("error" in doc and "reason" in doc)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(),
    lambda children: st.lists(children, max_size=5)
    | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=25,
)
anything = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=300),
    st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=5), st.integers(),
                                                         max_size=2),
)
beacon_like = st.fixed_dictionaries({}, optional={
    key: anything for key in ("service", "route", "method", "status", "duration_ms",
                              "timestamp", "name", "value", "rating", "delta", "id",
                              "navigationType", "page", "attribution", "entries")})
fuzz = settings(max_examples=150, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


@fuzz
@given(body=st.binary(max_size=2048), route=st.sampled_from(ROUTES))
def test_arbitrary_bytes(server, body, route):
    check(*post(server, route, body, "text/plain"))


@fuzz
@given(doc=json_values, route=st.sampled_from(ROUTES))
def test_arbitrary_json(server, doc, route):
    body = json.dumps(doc, allow_nan=True).encode()
    check(*post(server, route, body))


@fuzz
@given(items=st.lists(beacon_like, min_size=1, max_size=20), route=st.sampled_from(ROUTES))
def test_fuzzed_beacons_keep_the_valid_and_explain_the_rest(server, items, route):
    status, payload = post(server, route, json.dumps(items, allow_nan=True).encode())
    check(status, payload)
    doc = json.loads(payload)
    if "accepted" in doc:
        # Timings and operations count samples: a series object (duration_ms an array) is
        # one per element.
        columnar = route.endswith(("/timings", "/operations"))
        expected = sample_count(items) if columnar else len(items)
        assert doc["accepted"] + doc["rejected"] == expected
        assert all(e["error"] and e["reason"] for e in doc["errors"])
