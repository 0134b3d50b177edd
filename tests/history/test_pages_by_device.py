"""Web Vitals pages in the weekly report are judged per device, as Google judges them:
a fast desktop must not hide a slow phone on the same page."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from metricsd.app import create_app
from metricsd.config import Config, ReportConfig
from metricsd.history import HISTORY_DB
from metricsd.history.report import from_history, render
from metricsd.history.report.period import week_period
from tests.history.test_ops_caches import close, nearest_rank

W48 = week_period("2026-W48")


async def test_pages_per_device(aiohttp_client: Any, make_config: Callable[..., Config],
                                tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [W48.start + 3600]
    monkeypatch.setattr("metricsd.web.beacons.time", SimpleNamespace(time=lambda: clock[0]))
    path = tmp_path / "history.sqlite"
    app = create_app(make_config({"history": {"path": str(path), "flush_interval": 86400},
                                  "ingest": {"rate_limit": {"enabled": False}}}))
    app[HISTORY_DB].clock = lambda: clock[0]
    client = await aiohttp_client(app)
    rng = np.random.default_rng(48)
    sent: dict[str, list[float]] = {"mobile": [], "desktop": []}
    for i in range(60):
        clock[0] = W48.start + 3600 + i * 600
        for device, median in (("mobile", 3200.0), ("desktop", 1200.0)):
            value = float(np.round(rng.lognormal(np.log(median), 0.3), 1))
            sent[device].append(value / 1000.0)
            resp = await client.post("/v1/beacons/vitals", json={
                "name": "LCP", "value": value, "id": f"v-{device}-{i}",
                "page": "/checkout", "device": device})
            assert resp.status == 202, await resp.text()
    await client.close()  # stop: the queued samples are written

    report = from_history(path, W48, ReportConfig(), W48.end + 3600)
    rows = {(p["page"], p["device"]): p for p in report["pages"] if p["metric"] == "LCP"}
    assert set(rows) == {("/checkout", "mobile"), ("/checkout", "desktop")}
    for device, values in sent.items():
        row = rows[("/checkout", device)]
        assert row["samples"] == len(values)
        assert close(row["p75"], nearest_rank(np.array(values), 0.75)), device
    assert rows[("/checkout", "mobile")]["p75"] > 2.5 > rows[("/checkout", "desktop")]["p75"]
    markdown = render.render(report, "markdown")
    assert "| LCP | /checkout | mobile |" in markdown
    assert "| LCP | /checkout | desktop |" in markdown
