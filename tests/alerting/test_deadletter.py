"""Dead letters never vanish: failed writes are counted, logged with the alert, retried."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest

from metricsd.alerting.notify.deadletter import DeadLetterLog
from metricsd.alerting.stats import AlertingStats
from tests.alerting.conftest import receiver_config


def _block(kind: str, path):
    """Make `path` unwritable in a way root cannot bypass."""
    if kind == "parent is a file":
        path.parent.write_text("not a directory")
    else:  # the file itself is a directory
        path.mkdir(parents=True)


def _unblock(kind: str, path):
    if kind == "parent is a file":
        path.parent.unlink()
    else:
        path.rmdir()


@pytest.mark.parametrize("kind", ["parent is a file", "path is a directory"])
async def test_failed_writes_are_counted_logged_with_the_alert_and_retried(
        tmp_path, caplog, kind):
    path = tmp_path / "dead" / "letters.jsonl"
    _block(kind, path)
    stats = AlertingStats()
    log = DeadLetterLog(path, stats, buffer=10)
    caplog.set_level(logging.ERROR)
    await log.append({"n": 1}, "ApiLatencyP95High")
    await log.append({"n": 2}, "WebVitalsLCPPoor")
    assert stats.dead_letter_write_failures == 2 and stats.dead_letters_pending == 2
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2
    assert "ApiLatencyP95High" in messages[0]
    assert "ApiLatencyP95High" in messages[1] and "WebVitalsLCPPoor" in messages[1]
    _unblock(kind, path)
    assert await log.retry()
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert lines == [{"n": 1}, {"n": 2}]
    assert stats.dead_letters_pending == 0 and stats.dead_letters == 2


async def test_overflow_and_shutdown_log_the_letters_in_full(tmp_path, caplog):
    path = tmp_path / "file" / "letters.jsonl"
    path.parent.write_text("x")
    stats = AlertingStats()
    log = DeadLetterLog(path, stats, buffer=2)
    caplog.set_level(logging.ERROR)
    for n in range(3):
        await log.append({"n": n, "marker": f"letter-{n}"}, f"Alert{n}")
    assert stats.dead_letters_dropped == 1 and stats.dead_letters_pending == 2
    assert any("letter-0" in r.getMessage() and "Alert0" in r.getMessage()
               for r in caplog.records)
    caplog.clear()
    await log.close()
    text = caplog.text
    assert "letter-1" in text and "letter-2" in text and "Alert2" in text


async def test_dead_letters_of_a_failing_receiver_reach_the_file_once_it_is_writable(
        make_receiver, make_service, tmp_path, caplog):
    rec = await make_receiver(script=[(500, {})] * 100)
    blocked = tmp_path / "blocked"
    blocked.write_text("x")
    path = blocked / "dead.jsonl"
    service = make_service({"receivers": [receiver_config("oncall", rec.url, max_attempts=1)],
                            "default_receiver": "oncall", "dead_letter_file": str(path)})
    service.gauge.labels(route="/x").set(2)
    caplog.set_level(logging.ERROR)
    await service.evaluate_once()
    for _ in range(100):
        if service.stats.dead_letter_write_failures:
            break
        await asyncio.sleep(0.02)
    assert service.stats.dead_letter_write_failures >= 1
    assert any("DemoHigh" in r.getMessage() for r in caplog.records)
    metrics = service.registry
    assert metrics.get_sample_value("metricsd_alert_dead_letter_write_failures_total") >= 1
    assert metrics.get_sample_value("metricsd_alert_dead_letters_pending") == 1
    blocked.unlink()
    await service.evaluate_once()  # every tick retries
    [line] = path.read_text().splitlines()
    assert json.loads(line)["receiver"] == "oncall"
    assert metrics.get_sample_value("metricsd_alert_dead_letters_pending") == 0
