"""PgBouncer through the real app: config, scheduled job, /metrics (promtool) and /readyz."""

from __future__ import annotations

import asyncio
import subprocess
import time

import asyncpg
from prometheus_client.parser import text_string_to_metric_families

from metricsd.app import create_app
from metricsd.pgbouncer import PGBOUNCER_STATE
from tests.fixtures.binaries import require_binary
from tests.postgres.views import dbname


async def test_console_scraped_on_schedule(pg_database, make_bouncer, make_config,
                                           aiohttp_client):
    bouncer = make_bouncer({"app": dbname(pg_database)}, pool_size=3)
    config = make_config({"pgbouncer": {"scrape_interval": "1h",
                                        "targets": [{"name": "edge", "dsn": bouncer.console}]}})
    client = await aiohttp_client(create_app(config))
    state = client.app[PGBOUNCER_STATE]
    deadline = time.monotonic() + 10
    while state.targets["edge"].status == "pending":  # the job's first run is at start
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    assert state.targets["edge"].status == "ok", state.targets["edge"].message
    # Pools exist once a client used them.
    app_client = await asyncpg.connect(bouncer.dsn("app"), statement_cache_size=0)
    try:
        await app_client.execute("SELECT 1")
        assert await state.scrape("edge") == "ok"
    finally:
        await app_client.close()
    text = await (await client.get("/metrics")).text()
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for f in text_string_to_metric_families(text) for s in f.samples}
    assert samples[("metricsd_pgbouncer_up", (("target", "edge"),))] == 1
    assert samples[("metricsd_pgbouncer_pool_size",
                    (("database", "app"), ("target", "edge"), ("user", "postgres")))] == 3
    promtool = require_binary("promtool")
    checked = await asyncio.to_thread(
        subprocess.run, [promtool, "check", "metrics"], input=text, text=True,
        capture_output=True, timeout=30)
    assert "pgbouncer" not in checked.stdout + checked.stderr, checked.stdout + checked.stderr
    ready = await (await client.get("/readyz")).json()
    assert ready["components"]["pgbouncer:edge"]["ok"] is True
    assert ready["components"]["pgbouncer:edge"]["required"] is False
