"""`make demo`: a throwaway PostgreSQL, metricsd scraping it, sample traffic, the page URL.

For a newcomer with no database: starts a PostgreSQL cluster with pg_stat_statements the
way the tests do (tests/fixtures/pgcluster.py), creates a small shop schema with an unused
and an invalid index, runs the real `metricsd` CLI with a generated config, and sends a
bounded amount of traffic (API timings, Web Vitals, SQL with a slow statement and
sequential scans). Ctrl-C or SIGTERM stops everything and removes every file it made.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import shutil
import signal
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `python tools/demo.py` from anywhere
    sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
import asyncpg  # noqa: E402
import yaml  # noqa: E402

PREFIX = "metricsd demo:"
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0

SCHEMA = """
CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
CREATE TABLE customers (
    id bigint PRIMARY KEY, name text NOT NULL, email text NOT NULL, created_at timestamptz
);
CREATE TABLE orders (
    id bigint PRIMARY KEY, customer_id bigint NOT NULL REFERENCES customers (id),
    status text NOT NULL, total numeric(10, 2) NOT NULL, note text, legacy_ref text,
    created_at timestamptz NOT NULL
);
INSERT INTO customers
SELECT i, 'customer ' || (i % 1500), 'c' || i || '@example.com', now() - i * interval '1 min'
FROM generate_series(1, 3000) AS i;
INSERT INTO orders
SELECT i, 1 + i % 3000, (ARRAY['new', 'paid', 'shipped', 'cancelled'])[1 + i % 4],
       (i % 977) / 3.0, 'order note ' || md5(i::text), 'LEG-' || i,
       now() - i * interval '10 s'
FROM generate_series(1, 120000) AS i;
-- Never used by any query below: shows up as an unused index.
CREATE INDEX orders_legacy_ref_idx ON orders (legacy_ref);
CREATE INDEX orders_customer_idx ON orders (customer_id);
ANALYZE;
"""
# Fails on the duplicate names and leaves an INVALID index behind, as a real failed
# CREATE INDEX CONCURRENTLY would.
INVALID_INDEX = "CREATE UNIQUE INDEX CONCURRENTLY customers_name_key ON customers (name)"

ROUTES = [  # service, method, route, median ms, 5xx share
    ("shop", "GET", "/products/:id", 18, 0.002),
    ("shop", "GET", "/search", 140, 0.004),
    ("shop", "POST", "/cart/items", 35, 0.01),
    ("shop", "POST", "/checkout", 420, 0.03),
    ("accounts", "POST", "/login", 95, 0.0),
    ("accounts", "GET", "/me", 9, 0.0),
]
PAGES = [  # page, LCP median ms, INP median ms, CLS median
    ("/", 1500, 90, 0.02), ("/products/:id", 2300, 160, 0.08),
    ("/checkout", 3400, 420, 0.21), ("/search", 2000, 240, 0.05),
]


def say(message: str) -> None:
    print(f"{PREFIX} {message}", flush=True)


def free_port(preferred: int) -> int:
    """`preferred` when it is free (0: any), else any free loopback port."""
    for port in (preferred, 0):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(sock.getsockname()[1])
    raise RuntimeError("no free port")


def write_config(path: Path, port: int, dsn: str) -> None:
    """A metricsd config for the demo: fast scrapes, an hour-long window, the rules file."""
    config: dict[str, Any] = {
        "listen": f"127.0.0.1:{port}",
        "ingest": {"window": {"samples": 4096, "seconds": "1h"}},
        "postgres": {"scrape_interval": "5s", "slow_query_ms": 250,
                     "missing_index_min_rows": 1000,
                     "targets": [{"name": "demo", "dsn": dsn}]},
        "admin": {"history_minutes": 60},
    }
    rules = ROOT / "alerts.yml"
    if rules.is_file():
        config["alerting"] = {"rules": str(rules), "evaluation_interval": "5s"}
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")


async def create_schema(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(SCHEMA)
        with contextlib.suppress(asyncpg.PostgresError):
            await conn.execute(INVALID_INDEX)
    finally:
        await conn.close()


async def wait_ready(url: str, process: asyncio.subprocess.Process) -> None:
    """Until metricsd answers /healthz; fail early if it exits."""
    deadline = time.monotonic() + START_TIMEOUT_S
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
        while time.monotonic() < deadline:
            if process.returncode is not None:
                raise RuntimeError(f"metricsd exited with code {process.returncode}")
            with contextlib.suppress(aiohttp.ClientError, OSError):
                async with session.get(f"{url}/healthz") as resp:
                    if resp.status == 200:
                        return
            await asyncio.sleep(0.2)
    raise RuntimeError(f"metricsd did not answer within {START_TIMEOUT_S:g}s")


def timings(rng: random.Random, n: int) -> list[dict[str, Any]]:
    out = []
    for _ in range(n):
        service, method, route, median, errors = rng.choice(ROUTES)
        out.append({"service": service, "route": route, "method": method,
                    "status": 500 if rng.random() < errors else 200,
                    "duration_ms": rng.lognormvariate(0, 0.45) * median})
    return out


def vitals(rng: random.Random, n: int, serial: int) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        page, lcp, inp, cls = rng.choice(PAGES)
        ident = f"demo-{serial}-{i}"
        out += [
            {"name": "LCP", "value": rng.lognormvariate(0, 0.3) * lcp, "id": f"l{ident}",
             "page": page, "navigationType": "navigate"},
            {"name": "INP", "value": rng.lognormvariate(0, 0.4) * inp, "id": f"i{ident}",
             "page": page},
            {"name": "CLS", "value": rng.lognormvariate(0, 0.5) * cls, "id": f"c{ident}",
             "page": page},
            {"name": "FCP", "value": rng.lognormvariate(0, 0.3) * lcp * 0.6, "id": f"f{ident}",
             "page": page},
            {"name": "TTFB", "value": rng.lognormvariate(0, 0.3) * lcp * 0.25,
             "id": f"t{ident}", "page": page},
        ]
    return out


async def sql_load(pool: asyncpg.Pool, rng: random.Random, tick: int) -> None:
    """One second's worth of queries: indexed reads, sequential scans, an occasional slow one."""
    async with pool.acquire() as conn:
        for _ in range(20):
            await conn.fetchrow("SELECT * FROM orders WHERE id = $1", rng.randint(1, 120000))
        await conn.fetch("SELECT * FROM orders WHERE customer_id = $1", rng.randint(1, 3000))
        # No index on email: a sequential scan of customers every time.
        await conn.fetchrow("SELECT * FROM customers WHERE email = $1",
                            f"c{rng.randint(1, 3000)}@example.com")
        await conn.execute("UPDATE orders SET status = $1 WHERE id = $2",
                           rng.choice(["paid", "shipped"]), rng.randint(1, 120000))
        if tick % 3 == 0:  # a sequential scan of the big table
            await conn.fetchval("SELECT count(*) FROM orders WHERE note LIKE $1",
                                f"%{rng.choice('0123456789abcdef')}{rng.choice('abcdef')}%")
        if tick % 10 == 0:  # the slow statement
            await conn.execute("SELECT pg_sleep(0.6)")


async def traffic(url: str, dsn: str, duration: float, stop: asyncio.Event) -> None:
    """Bounded: `duration` seconds of beacons and SQL, one round a second, then idle."""
    rng = random.Random(5)
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
            end = time.monotonic() + duration
            tick = 0
            failed = False
            while not stop.is_set() and time.monotonic() < end:
                try:
                    await session.post(f"{url}/v1/beacons/timings", json=timings(rng, 60))
                    await session.post(f"{url}/v1/beacons/vitals", json=vitals(rng, 4, tick))
                    await sql_load(pool, rng, tick)
                except (aiohttp.ClientError, asyncpg.PostgresError, OSError) as exc:
                    if not failed:  # say it once; the next round tries again
                        say(f"traffic round failed ({exc!r}); continuing")
                    failed = True
                tick += 1
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 1.0)
    finally:
        await pool.close()
    if not stop.is_set():
        say(f"traffic done after {duration:g} s; the page keeps it for an hour. Ctrl-C to stop.")


async def stop_process(process: asyncio.subprocess.Process) -> None:
    if process.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(process.wait(), STOP_TIMEOUT_S)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()


async def run(args: argparse.Namespace) -> int:
    from tests.fixtures.pgcluster import ThrowawayCluster

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    workdir = Path(tempfile.mkdtemp(prefix="metricsd-demo-"))
    say(f"workdir {workdir}")
    cluster = None
    process: asyncio.subprocess.Process | None = None
    load: asyncio.Task[None] | None = None
    try:
        say("starting a throwaway PostgreSQL with pg_stat_statements ...")
        cluster = await asyncio.to_thread(ThrowawayCluster)
        say(f"cluster dir {cluster.tmpdir}")
        if stop.is_set():  # Ctrl-C while starting: clean up what exists so far
            return 0
        admin = await asyncpg.connect(cluster.dsn)
        try:
            await admin.execute("CREATE DATABASE shop")
        finally:
            await admin.close()
        dsn = cluster.dsn_for("shop")
        await create_schema(dsn)
        say(f"PostgreSQL ready: {dsn}")
        port = free_port(args.port)
        config_path = workdir / "metricsd.yml"
        write_config(config_path, port, dsn)
        url = f"http://127.0.0.1:{port}"
        log = (workdir / "metricsd.log").open("wb")
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "metricsd", "--config", str(config_path),
            stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log, cwd=ROOT,
            start_new_session=True,  # Ctrl-C reaches us; we stop metricsd in order
        )
        log.close()
        await wait_ready(url, process)
        if stop.is_set():
            return 0
        load = asyncio.create_task(traffic(url, dsn, args.duration, stop))
        say(f"overview page: {url}/")
        say(f"also: {url}/metrics  {url}/v1/summary  (config {config_path})")
        say(f"sending sample traffic for {args.duration:g} s; Ctrl-C stops and cleans up")
        await stop.wait()
        say("stopping ...")
        return 0
    finally:
        if load is not None and not load.done():
            load.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await load
        if process is not None:
            await stop_process(process)
        if cluster is not None:
            await asyncio.to_thread(cluster.cleanup)
            say(f"removed {cluster.tmpdir}")
        shutil.rmtree(workdir, ignore_errors=True)
        say(f"removed {workdir}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=600.0,
                        help="seconds of sample traffic (default 600), then idle")
    parser.add_argument("--port", type=int, default=9811,
                        help="metricsd port (default 9811; a free one if taken; 0: any)")
    args = parser.parse_args(argv)
    try:
        return asyncio.run(run(args))
    except KeyboardInterrupt:  # a second Ctrl-C during cleanup
        return 130
    except Exception as exc:
        say(f"failed: {exc}")
        return 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
