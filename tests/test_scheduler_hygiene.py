"""A job that keeps running past its interval: skipped runs are counted per job and
logged once, not once per skip; jobs cancelled by a shutdown log no traceback."""

from __future__ import annotations

import asyncio
import logging

from metricsd.app import create_app
from metricsd.core import SCHEDULER


async def test_skipped_runs_counted_and_logged_once(aiohttp_client, make_config, caplog):
    caplog.set_level(logging.INFO)
    app = create_app(make_config({}))
    release = asyncio.Event()

    async def hung() -> None:  # like a scrape of a target that stopped answering
        await release.wait()

    client = await aiohttp_client(app)
    app[SCHEDULER].add_job(hung, "interval", seconds=0.1, id="test:hung", max_instances=1,
                           coalesce=True)
    # Three collectors of one hung target: one event, one line for the group.
    for view in ("a", "b", "c"):
        app[SCHEDULER].add_job(hung, "interval", seconds=0.1, id=f"scrape:gone:{view}",
                               max_instances=1, coalesce=True)
    await asyncio.sleep(1.2)
    text = await (await client.get("/metrics")).text()
    line = next(row for row in text.splitlines()
                if row.startswith('metricsd_scheduler_skipped_runs_total{job="test:hung"}'))
    assert float(line.rsplit(" ", 1)[1]) >= 5
    skipped = [r for r in caplog.records
               if "skipped:" in r.getMessage() or "was skipped" in r.getMessage()]
    assert len(skipped) == 2 and {r.name for r in skipped} == {"metricsd.core"}, \
        [r.getMessage() for r in skipped]
    assert sum("scrape:gone" in r.getMessage() for r in skipped) == 1
    for view in ("a", "b", "c"):
        assert f'metricsd_scheduler_skipped_runs_total{{job="scrape:gone:{view}"}}' in text
    await client.close()  # shutdown cancels the hung run
    assert not [r for r in caplog.records if r.exc_info], \
        [r.getMessage() for r in caplog.records if r.exc_info]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
