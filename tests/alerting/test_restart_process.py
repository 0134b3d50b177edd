"""A real restart: metricsd as a process, SIGTERM, a real webhook receiver, data flowing.

An alert firing before SIGTERM is neither resolved nor sent again after the restart while
its data keeps coming; an alert whose data really clears after the restart resolves once,
with the start it had before.
"""

from __future__ import annotations

import asyncio
import contextlib

import aiohttp

RULES = """
groups:
  - name: restart
    rules:
      - alert: RouteSlow
        expr: metricsd_api_request_window_seconds{quantile="0.5"} > 0.5
        for: 0s
        labels:
          severity: page
        annotations:
          summary: "{{ $labels.route }} is slow"
"""
GRACE_S = 2.5


def _config(tmp_path, receiver_url: str) -> dict:
    rules = tmp_path / "rules.yml"
    rules.write_text(RULES)
    return {
        "shutdown_timeout": "5s",
        "ingest": {"window": {"seconds": "1500ms"}},
        "alerting": {
            "rules": str(rules), "evaluation_interval": "200ms",
            "state_file": str(tmp_path / "state" / "alerts.json"),
            "restore_grace": f"{GRACE_S}s",
            "receivers": [{"name": "oncall", "url": receiver_url, "backoff": "50ms"}],
            "default_receiver": "oncall", "group_by": ["alertname", "route"],
            "group_wait": "100ms", "group_interval": "300ms", "repeat_interval": "1h",
        },
    }


class Feeder:
    """Posts one timing per route every 50 ms to whichever metricsd is up."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.durations = {"/steady": 900.0, "/recovering": 900.0}
        self.task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        async with aiohttp.ClientSession() as http:
            while True:
                batch = [{"service": "api", "route": route, "method": "GET", "status": 200,
                          "duration_ms": ms} for route, ms in self.durations.items()]
                with contextlib.suppress(aiohttp.ClientError):
                    async with http.post(self.url + "/v1/beacons/timings", json=batch) as r:
                        await r.read()
                await asyncio.sleep(0.05)

    def __enter__(self) -> Feeder:
        self.task = asyncio.get_running_loop().create_task(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.task is not None
        self.task.cancel()


def _events(rec) -> list[tuple[str, str, str]]:
    """(route, status, startsAt) of every alert in every notification, in order."""
    return [(a["labels"]["route"], a["status"], a["startsAt"])
            for body in rec.bodies for a in body["alerts"]]


async def test_sigterm_restart_neither_resolves_nor_resends_and_resolves_once(
        tmp_path, make_receiver, metricsd_proc):
    rec = await make_receiver()
    config = _config(tmp_path, rec.url)
    first = metricsd_proc(config, name="first")
    await first.start()
    with Feeder(first.url) as feeder:
        await rec.wait_for(2, timeout=15)
        before = _events(rec)
        assert sorted(r for r, s, _ in before) == ["/recovering", "/steady"]
        assert {s for _, s, _ in before} == {"firing"}
        starts = {route: start for route, _, start in before}

        code, _ = await first.stop()
        assert code == 0, first.log()
        feeder.durations["/recovering"] = 10.0  # clears while metricsd restarts
        second = metricsd_proc(config, port=first.port, name="second")
        await second.start()
        # The grace: an empty store first, then fresh data; nothing may be sent.
        await asyncio.sleep(GRACE_S * 0.8)
        assert _events(rec) == before, second.log()
        # After the grace, the cleared alert resolves, once, with its old start.
        await rec.wait_for(3, timeout=GRACE_S + 10)
        await asyncio.sleep(2.0)  # and nothing else comes: no re-send, no second resolve
    after = _events(rec)[len(before):]
    assert after == [("/recovering", "resolved", starts["/recovering"])], (after, second.log())
    code, _ = await second.stop()
    assert code == 0
    for proc in (first, second):
        assert "Traceback" not in proc.log(), proc.log()
