"""Signals on a real process: SIGHUP reloads (or keeps the running config), SIGTERM stops
within shutdown_timeout in total, however many requests hang."""

from __future__ import annotations

import asyncio
import signal
import time

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.fixtures.process import write_config


async def _metrics(url: str) -> dict[tuple[str, tuple], float]:
    async with aiohttp.ClientSession() as http, http.get(url + "/metrics") as resp:
        text = await resp.text()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


async def _post_timing(url: str, token: str) -> int:
    beacon = {"service": "a", "route": "/x", "method": "GET", "status": 200, "duration_ms": 1}
    async with aiohttp.ClientSession() as http, http.post(
            url + "/v1/beacons/timings", json=beacon,
            headers={"Authorization": f"Bearer {token}"}) as resp:
        return resp.status


async def _until(predicate, timeout: float = 10.0) -> None:  # noqa: ASYNC109
    deadline = time.monotonic() + timeout
    while not await predicate():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.05)


RELOADS = ("metricsd_config_reloads_total", (("result", "success"),))
FAILED = ("metricsd_config_reloads_total", (("result", "failure"),))
LAST_OK = ("metricsd_config_last_reload_successful", ())


@pytest.mark.parametrize("invalid", [
    "ingest: {tokens: [ok], max_series: -1}\n",  # a value out of range
    "ingest: [\n",  # not YAML
    "alerting: {rules: /nonexistent/rules.yml}\n",  # a rule file that does not load
    "bogus_key: 1\n",  # an unknown key
])
async def test_sighup_reloads_and_an_invalid_file_keeps_the_running_config(
        metricsd_proc, invalid):
    proc = metricsd_proc({"ingest": {"tokens": ["old-token"]}})
    await proc.start()
    assert await _post_timing(proc.url, "old-token") == 202
    write_config(proc, {"ingest": {"tokens": ["new-token"]}})
    proc.signal(signal.SIGHUP)

    async def reloaded() -> bool:
        return await _post_timing(proc.url, "new-token") == 202
    await _until(reloaded)
    assert await _post_timing(proc.url, "old-token") == 401
    metrics = await _metrics(proc.url)
    assert metrics[RELOADS] == 1 and metrics[LAST_OK] == 1

    proc.config_path.write_text(f"listen: 127.0.0.1:{proc.port}\n" + invalid)
    proc.signal(signal.SIGHUP)

    async def failed() -> bool:
        return (await _metrics(proc.url)).get(FAILED, 0) == 1
    await _until(failed)
    metrics = await _metrics(proc.url)
    assert metrics[LAST_OK] == 0 and metrics[RELOADS] == 1
    assert await _post_timing(proc.url, "new-token") == 202  # still the last good config
    assert proc.proc.returncode is None
    code, _ = await proc.stop()
    assert code == 0
    log = proc.log()
    assert log.count("configuration reload failed") == 1, log
    assert "Traceback" not in log, log


@pytest.mark.parametrize("budget", [2.0, 4.0])
async def test_sigterm_finishes_within_shutdown_timeout_with_hung_bodies(metricsd_proc,
                                                                          budget):
    proc = metricsd_proc({"shutdown_timeout": f"{budget}s", "ingest": {"tokens": ["t"]}})
    await proc.start()
    writers = []
    for _ in range(5):  # bodies that never finish
        _, writer = await asyncio.open_connection("127.0.0.1", proc.port)
        writer.write(b"POST /v1/beacons/timings HTTP/1.1\r\nHost: x\r\nContent-Type: "
                     b"application/json\r\nAuthorization: Bearer t\r\n"
                     b"Content-Length: 1000\r\n\r\n[{")
        await writer.drain()
        writers.append(writer)
    await asyncio.sleep(0.3)
    code, seconds = await proc.stop()
    for writer in writers:
        writer.close()
    assert code == 0, proc.log()
    # The process is gone within the budget, interpreter exit included.
    print(f"SIGTERM budget {budget}s: exited after {seconds:.2f}s")
    assert seconds <= budget, (seconds, proc.log())
    assert "still running" in proc.log()


@pytest.mark.parametrize("total", [0.0, 0.1, 0.5, 1.0, 2.0, 10.0, 60.0, 3600.0])
def test_shutdown_budget_adds_up_to_the_total(total):
    from metricsd.server import shutdown_budget

    drain, cancel, cleanup_by = shutdown_budget(total)
    assert 0 <= drain and 0 <= cancel
    assert drain + 2 * cancel <= cleanup_by <= total
    assert drain >= total / 2  # requests in flight get most of it
