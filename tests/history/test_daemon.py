"""The history in a running metricsd: restarts keep it, kill -9 does not corrupt it, a bad
file is moved aside, /reports serves it, the CLI renders it."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import sqlite3
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from metricsd.__main__ import main
from metricsd.app import create_app
from metricsd.config import Config
from metricsd.history.sketch import RELATIVE_ERROR
from tests.fixtures.process import MetricsdProcess


def today_range() -> str:
    day = datetime.now(UTC).date()
    return f"{day - timedelta(days=1)}..{day + timedelta(days=1)}"


def count_in_file(path: Path, route: str) -> int:
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        row = conn.execute("SELECT coalesce(sum(count), 0) FROM beacon_hours b JOIN series s "
                           "ON s.id = b.series WHERE s.family = 'api' AND s.key = ?",
                           (json.dumps(["shop", route, "GET"], separators=(",", ":")),)
                           ).fetchone()
        return int(row[0])
    finally:
        conn.close()


async def rows_written(http: aiohttp.ClientSession, url: str) -> float:
    async with http.get(url + "/metrics") as resp:
        text = await resp.text()
    match = re.search(r"^metricsd_history_rows_written_total (\S+)$", text, re.M)
    return float(match.group(1)) if match else 0.0


async def post(http: aiohttp.ClientSession, url: str, route: str, n: int) -> None:
    items = [{"service": "shop", "route": route, "method": "GET", "status": 200 + (i % 2) * 102,
              "duration_ms": 10 + i % 90} for i in range(n)]
    async with http.post(url + "/v1/beacons/timings", json=items) as resp:
        assert resp.status == 202, await resp.text()


async def test_restarts_keep_history_and_kill_9_corrupts_nothing(
        metricsd_proc: Callable[..., MetricsdProcess], tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite"
    proc = metricsd_proc({"history": {"path": str(path), "flush_interval": 0.2},
                          "ingest": {"rate_limit": {"enabled": False}}})
    async with aiohttp.ClientSession() as http:
        await proc.start()
        await post(http, proc.url, "/x", 300)
        await post(http, proc.url, "/x", 5)  # a small batch: the store's scalar path
        assert (await proc.stop())[0] == 0
        assert count_in_file(path, "/x") == 305  # stop writes what was queued
        await proc.start()
        await post(http, proc.url, "/x", 200)
        assert (await proc.stop())[0] == 0
        assert count_in_file(path, "/x") == 505
        await proc.start()
        sent = 0
        started = time.monotonic()
        while True:  # flushes every 0.2 s while we post; go on until some were written
            await post(http, proc.url, "/x", 500)
            sent += 500
            if time.monotonic() - started > 1.0 and await rows_written(http, proc.url) > 0:
                break
            assert time.monotonic() - started < 30, proc.log()
        await post(http, proc.url, "/x", 500)
        sent += 500
        await proc.kill()  # SIGKILL in the middle of writing
        after_kill = count_in_file(path, "/x")
        assert 505 <= after_kill <= 505 + sent
        assert after_kill > 505  # the flushes before the kill are there
        await proc.start()
        await post(http, proc.url, "/x", 7)
        async with http.get(f"{proc.url}/reports/{today_range()}?format=json") as resp:
            assert resp.status == 200
            report = await resp.json()
        (row,) = [r for r in report["routes"] if r["route"] == "/x"]
        assert row["requests"] == after_kill + 7  # /reports flushes first: exact
        assert row["errors_5xx"] == 0
        async with http.get(f"{proc.url}/reports?format=json") as resp:
            assert resp.status == 200 and (await resp.json())["periods"]
        assert (await proc.stop())[0] == 0
    assert "Traceback" not in proc.log()


@pytest.mark.parametrize("content", [b"not a database at all" * 100, "sqlite-foreign"])
async def test_bad_file_is_moved_aside_once(
        aiohttp_client: Any, make_config: Callable[..., Config], tmp_path: Path,
        content: bytes | str, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "h.sqlite"
    if content == "sqlite-foreign":
        conn = sqlite3.connect(path)
        conn.execute("CREATE TABLE other_app (x)")
        conn.commit()
        conn.close()
        original = path.read_bytes()
    else:
        assert isinstance(content, bytes)
        path.write_bytes(content)
        original = content
    caplog.set_level(logging.WARNING, "metricsd.history")
    config = make_config({"history": {"path": str(path)}})
    client = await aiohttp_client(create_app(config))
    moved = list(tmp_path.glob("h.sqlite.bad-*"))  # noqa: ASYNC240 - a test, tiny dir
    kept = [p.read_bytes() for p in moved if not p.name.endswith(("-wal", "-shm"))]
    assert kept == [original]
    assert len([r for r in caplog.records if "moved aside" in r.message]) == 1
    resp = await client.post("/v1/beacons/timings", json=[
        {"service": "s", "route": "/r", "method": "GET", "status": 200, "duration_ms": 5}])
    assert resp.status == 202
    resp = await client.get(f"/reports/{today_range()}", params={"format": "json"})
    assert resp.status == 200
    assert (await resp.json())["routes"][0]["requests"] == 1
    resp = await client.get("/metrics")
    assert re.search(r"^metricsd_history_moved_aside 1(\.0)?$", await resp.text(), re.M)


async def test_reports_routes_reject_bad_input(aiohttp_client: Any,
                                               make_config: Callable[..., Config],
                                               tmp_path: Path) -> None:
    config = make_config({"history": {"path": str(tmp_path / "h.sqlite")}})
    client = await aiohttp_client(create_app(config))
    for bad in ("2026-W99", "lastweek", "2026-11-30..2026-11-01", "2026-13-01..2026-13-02",
                "2000-01-01..2026-01-01", "0001-01-01..0001-01-03", "9999-12-30..9999-12-31",
                "0001-W01", "1..2", "%00..%01", "2026-11-01T25:00..2026-11-02"):
        resp = await client.get(f"/reports/{bad}")
        assert resp.status == 400, bad
    resp = await client.get("/reports/2026-W48", params={"format": "pdf"})
    assert resp.status == 400
    resp = await client.get("/reports/2026-W48")
    assert resp.status == 200 and resp.content_type == "text/html"
    resp = await client.get("/reports/2026-W48", headers={"Accept": "text/markdown"})
    assert resp.status == 200 and (await resp.text()).startswith("# metricsd")


async def test_reports_need_admin_auth_when_configured(
        aiohttp_client: Any, make_config: Callable[..., Config], tmp_path: Path) -> None:
    config = make_config({"history": {"path": str(tmp_path / "h.sqlite")},
                          "admin": {"token": "s3cret"}})
    client = await aiohttp_client(create_app(config))
    for path in ("/reports", "/reports/2026-W48"):
        assert (await client.get(path)).status == 401
        ok = await client.get(path, headers={"Authorization": "Bearer s3cret"})
        assert ok.status == 200


async def test_no_history_no_reports(aiohttp_client: Any,
                                     make_config: Callable[..., Config]) -> None:
    client = await aiohttp_client(create_app(make_config({})))
    assert (await client.get("/reports")).status == 404
    assert (await client.get("/reports/2026-W48")).status == 404


async def test_cli_renders_the_file(aiohttp_client: Any, make_config: Callable[..., Config],
                                    tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "h.sqlite"
    cfg_path = tmp_path / "c.yml"
    cfg_path.write_text(f"history: {{path: {path}}}\n")
    config = make_config({"history": {"path": str(path)}})
    client = await aiohttp_client(create_app(config))
    for _ in range(2):  # the second batch takes ingest's known-slots compiled write
        resp = await client.post("/v1/beacons/timings", json=[
            {"service": "s", "route": "/cli", "method": "POST", "status": 503,
             "duration_ms": 120}] * 40)
        assert resp.status == 202
    resp = await client.post("/v1/beacons/timings", json={  # the columnar shape
        "service": "s", "route": "/cli", "method": "POST", "status": [503] * 40,
        "duration_ms": [120] * 40})
    assert resp.status == 202, await resp.text()
    await client.app.shutdown()
    await client.close()
    day = datetime.now(UTC).date()
    args = ["--config", str(cfg_path), "report", "--from", str(day - timedelta(days=1)),
            "--to", str(day + timedelta(days=1)), "--format", "json"]
    assert await asyncio.to_thread(main, args) == 0
    report = json.loads(capsys.readouterr().out)
    (row,) = report["routes"]
    assert (row["route"], row["requests"], row["errors_5xx"]) == ("/cli", 120, 120)
    assert abs(row["p95_ms"] - 120) <= 120 * RELATIVE_ERROR
    out = tmp_path / "r.md"
    assert await asyncio.to_thread(main, [*args[:-1], "markdown", "-o", str(out)]) == 0
    assert "POST /cli" in out.read_text()
    assert await asyncio.to_thread(main, ["--config", str(cfg_path), "report", "--week",
                                          "2026-W60"]) == 2
    assert await asyncio.to_thread(main, ["report"]) == 2  # no history configured
