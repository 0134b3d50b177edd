"""Native histograms through a real Prometheus 2.42: two instances, p95 within 2% of exact.

One Prometheus runs with `--enable-feature=native-histograms`, so it scrapes the protobuf
exposition and stores metricsd's exponential (schema 3) buckets; a second one without the
flag scrapes the text format and stores the classic buckets. Both scrape the same two
metricsd instances, which received an uneven split of a known sample set (one gets the
whole slow tail). The aggregated p95 from the native histograms must be within 2% of the
exact p95 of all samples (numpy); the classic buckets' p95 of the same data is several
percent off, and the test asserts that too, so it cannot pass with coarse buckets.
"""

from __future__ import annotations

import asyncio

import aiohttp
import numpy as np
import numpy.typing as npt

from tests.fixtures.prometheus import Prometheus

SEED = 11
BATCH = 500
ROUTE = "/native"
SELECTOR = f'metricsd_api_request_duration_seconds{{route="{ROUTE}"}}'
WARMUP_S = 0.05  # one sample per instance before the set, so rate() has a baseline


def _split() -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """4000 latencies around 0.75 s whose p95 (~1.23 s) sits inside the 1.0-1.5 s bucket."""
    values = np.random.default_rng(SEED).lognormal(np.log(0.75), 0.3, 4000)
    return values[values < 1.0], values[values >= 1.0]


async def _post(session: aiohttp.ClientSession, address: str,
                values: npt.NDArray[np.float64]) -> None:
    items = [{"service": "shop", "route": ROUTE, "method": "GET", "status": 200,
              "duration_ms": float(v) * 1000.0} for v in values]
    for start in range(0, len(items), BATCH):
        async with session.post(f"http://{address}/v1/beacons/timings",
                                json=items[start:start + BATCH]) as resp:
            assert resp.status == 202, await resp.text()


async def _value(prometheus: Prometheus, expr: str) -> float:
    result = await prometheus.wait_for(expr, lambda r: bool(r) and r[0]["value"][1] != "NaN",
                                       within_s=30)
    return float(result[0]["value"][1])


async def _names(classic: Prometheus, native: Prometheus) -> tuple[set[str], set[str]]:
    """Series names the text scrape implies for protobuf, and those protobuf gave."""
    query = 'count by (__name__) ({job="metricsd"})'
    from_text = {s["metric"]["__name__"] for s in await classic.query(query)}
    from_protobuf = {s["metric"]["__name__"] for s in await native.query(query)}
    histograms = {n.removesuffix("_bucket") for n in from_text if n.endswith("_bucket")}
    assert histograms
    expected = {n for n in from_text if not n.endswith("_created")
                and not any(n in (f"{h}_bucket", f"{h}_count", f"{h}_sum") for h in histograms)}
    return expected | histograms, from_protobuf


async def test_native_histogram_p95_of_two_instances_is_within_two_percent(
    make_config, serve_metricsd, make_prometheus
):
    a, b = _split()
    assert len(a) > 2 * len(b)  # uneven: a takes most requests, b the whole slow tail
    config = make_config({"ingest": {"window": {"samples": 4096}}})
    first, second = await serve_metricsd(config), await serve_metricsd(config)
    native = await make_prometheus([first, second],
                                   extra_args=["--enable-feature=native-histograms"])
    classic = await make_prometheus([first, second])
    async with aiohttp.ClientSession() as session:
        for address in (first, second):
            await _post(session, address, np.array([WARMUP_S]))
        for prometheus in (native, classic):
            await prometheus.wait_scrapes("metricsd", 3, within_s=30)
        await _post(session, first, a)
        await _post(session, second, b)
    await asyncio.sleep(4)  # a few scrapes of the new counts
    exact = float(np.percentile(np.concatenate([a, b, [WARMUP_S, WARMUP_S]]), 95))

    # The native Prometheus stored one native series per instance, not classic buckets.
    stored = await native.query(f"count({SELECTOR.replace('{', '_bucket{', 1)})")
    assert stored == [] or float(stored[0]["value"][1]) == 0
    count = await _value(native, f"histogram_count(sum({SELECTOR}))")
    assert count == len(a) + len(b) + 2

    estimate = await _value(native, f"histogram_quantile(0.95, sum(rate({SELECTOR}[1m])))")
    coarse = await _value(classic, "histogram_quantile(0.95, sum by (le) (rate("
                                   f"{SELECTOR.replace('{', '_bucket{', 1)}[1m])))")
    native_error = abs(estimate / exact - 1)
    classic_error = abs(coarse / exact - 1)
    assert native_error < 0.02, f"native p95 {estimate:.4f}s vs exact {exact:.4f}s"
    assert classic_error > 0.04, f"classic p95 {coarse:.4f}s vs exact {exact:.4f}s"
    # Every other family came through the protobuf exposition too: the same series names
    # as the text scrape, except histograms (one native series instead of _bucket/_count/
    # _sum) and _created samples (not read from protobuf by Prometheus 2.x).
    for _ in range(20):  # both have scraped the same families once a scrape has passed
        expected, from_protobuf = await _names(classic, native)
        if from_protobuf == expected:
            break
        await asyncio.sleep(0.5)
    assert from_protobuf == expected, (expected - from_protobuf, from_protobuf - expected)
    print(f"exact p95 {exact:.4f}s; native {estimate:.4f}s ({native_error:.2%}); "
          f"classic {coarse:.4f}s ({classic_error:.2%})")
