"""Scale-out: two metricsd instances, one Prometheus, percentiles aggregated correctly.

A load balancer splits the timings between two instances; Prometheus scrapes both and
`histogram_quantile(0.95, sum by (le) (...))` must land within one bucket of the exact p95
of all samples together (numpy). The split is deliberately uneven (one instance gets most
of the slow requests), so that either instance alone, or any per-instance quantile, would
be further off: the test checks that too, so it cannot pass by accident.
"""

from __future__ import annotations

from bisect import bisect_left

import aiohttp
import numpy as np
import numpy.typing as npt

from metricsd.store.series import LATENCY_BUCKETS

BATCH = 500
SEED = 20261123


def _bucket(value: float) -> int:
    """Index of the histogram bucket holding `value` (upper bounds are inclusive)."""
    return bisect_left(LATENCY_BUCKETS, value)


def _samples() -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Latencies (seconds) for instance A and B: a fast mode and a slow tail, split unevenly."""
    rng = np.random.default_rng(SEED)
    fast = rng.lognormal(np.log(0.03), 0.5, 2400)
    slow = rng.lognormal(np.log(0.6), 0.6, 600)
    return (np.concatenate([fast[:2350], slow[:20]]),
            np.concatenate([fast[2350:], slow[20:]]))


async def _post_timings(session: aiohttp.ClientSession, address: str,
                        values: npt.NDArray[np.float64]) -> None:
    items = [{"service": "shop", "route": "/orders/:id", "method": "GET", "status": 200,
              "duration_ms": float(v) * 1000.0} for v in values]
    for start in range(0, len(items), BATCH):
        async with session.post(f"http://{address}/v1/beacons/timings",
                                json=items[start:start + BATCH]) as resp:
            body = await resp.json()
            assert resp.status == 202, body
            assert body["accepted"] == len(items[start:start + BATCH]), body


async def test_aggregated_p95_is_within_one_bucket_of_exact(
    make_config, serve_metricsd, make_prometheus
):
    a, b = _samples()
    combined = np.concatenate([a, b])
    exact = float(np.percentile(combined, 95))
    # The data must make a wrong aggregation visible: each instance's own p95 is at least
    # two buckets away from the p95 of everything.
    for alone in (a, b):
        assert abs(_bucket(float(np.percentile(alone, 95))) - _bucket(exact)) >= 2

    config = make_config({"ingest": {"window": {"samples": 4096}}})
    first, second = await serve_metricsd(config), await serve_metricsd(config)
    async with aiohttp.ClientSession() as session:
        await _post_timings(session, first, a)
        await _post_timings(session, second, b)

    prometheus = await make_prometheus([first, second])
    await prometheus.wait_scrapes("metricsd", 2, within_s=30)

    selector = 'metricsd_api_request_duration_seconds{job="metricsd", route="/orders/:id"}'
    counts = await prometheus.query(f"sum({selector.replace('{', '_count{', 1)})")
    assert float(counts[0]["value"][1]) == len(combined), "both instances must be counted"
    per_instance = await prometheus.query(
        f"count by (instance) ({selector.replace('{', '_count{', 1)})")
    assert len(per_instance) == 2

    result = await prometheus.query(
        f"histogram_quantile(0.95, sum by (le) ({selector.replace('{', '_bucket{', 1)}))")
    estimate = float(result[0]["value"][1])
    assert abs(_bucket(estimate) - _bucket(exact)) <= 1, (
        f"aggregated p95 {estimate:.3f}s is more than one bucket from the exact "
        f"{exact:.3f}s (buckets {LATENCY_BUCKETS})"
    )

    # Per instance, each window quantile is exact for its own samples only; the largest of
    # them is not the p95 of all requests.
    windows = await prometheus.query(
        'metricsd_api_request_window_seconds{job="metricsd", route="/orders/:id", '
        'quantile="0.95"}')
    by_instance = sorted(float(s["value"][1]) for s in windows)
    assert len(by_instance) == 2
    np.testing.assert_allclose(
        by_instance, sorted([np.percentile(a, 95), np.percentile(b, 95)]), rtol=1e-6)
    assert abs(_bucket(max(by_instance)) - _bucket(exact)) >= 2
