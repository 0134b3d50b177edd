"""A real Flask app using only the installed metricsd-client (run by test_distribution.py).

It serves HTTP on a free port, calls itself like a user would, then flushes the client and
prints what functools.lru_cache says about its cache, as JSON, for the test to compare
with what metricsd received. Run with the fresh virtualenv's python, never the server's.
"""

import asyncio
import functools
import json
import random
import sys
import threading
import time
import urllib.request

import metricsd_client
from flask import Flask
from metricsd_client import MetricsdWSGIMiddleware, ThreadSender, timer
from werkzeug.serving import make_server

METRICSD, TOKEN, SEED = sys.argv[1], sys.argv[2], int(sys.argv[3])

sender = ThreadSender(METRICSD, service="flaskapp", token=TOKEN, interval=0.2,
                      cache_interval=0.5)
metricsd_client.set_default_sender(sender)
app = Flask(__name__)
app.wsgi_app = MetricsdWSGIMiddleware(app.wsgi_app, sender=sender)


@functools.lru_cache(maxsize=8)
def render(name: str) -> str:
    return f"<p>template {name}</p>"


metricsd_client.track_lru(render, "templates")
scenarios = metricsd_client.track_cache({}, "scenarios")


@timer("ai.generate")  # decorated at import, before any request
def generate(n: int) -> str:
    time.sleep(0.001 * n)
    return "x" * n


@timer("ai.generate_async")
async def generate_async(n: int) -> str:
    await asyncio.sleep(0.001 * n)
    return "y" * n


@app.get("/templates/<name>")
def template(name: str) -> str:
    return render(name)


@app.get("/scenarios/<name>")
def scenario(name: str) -> str:
    value = scenarios.get(name)
    if value is None:
        value = scenarios.setdefault(name, name.upper())
    return value


@app.get("/generate/<int:n>")
def generate_route(n: int) -> str:
    with timer("export.csv") as t:
        if n % 5 == 0:
            t.outcome = "timeout"
    asyncio.run(generate_async(n))
    return generate(n)


@app.get("/fail")
def fail() -> str:
    with timer("ws.delivery"):
        raise RuntimeError("boom")


server = make_server("127.0.0.1", 0, app)
threading.Thread(target=server.serve_forever, daemon=True).start()
base = f"http://127.0.0.1:{server.server_port}"
rng = random.Random(SEED)
calls = {"generate": 0, "fail": 0}
for _ in range(300):
    kind = rng.random()
    if kind < 0.7:
        path = f"/templates/t{int(rng.paretovariate(1.0)) % 20}"
    elif kind < 0.85:
        path = f"/scenarios/s{rng.randrange(6)}"
    elif kind < 0.97:
        path = f"/generate/{rng.randrange(1, 11)}"
        calls["generate"] += 1
    else:
        path = "/fail"
        calls["fail"] += 1
    try:
        urllib.request.urlopen(base + path, timeout=10).read()
    except urllib.error.HTTPError as exc:
        assert exc.code == 500
metricsd_client.record_operation("export.pdf", 1.25, "ok")  # measured elsewhere
time.sleep(0.6)  # at least one periodic cache report before the flush
server.shutdown()
sender.close(timeout=10)
info = render.cache_info()
stats = sender.stats()
print(json.dumps({"hits": info.hits, "misses": info.misses, "currsize": info.currsize,
                  "scenario_hits": scenarios.stats.total_hits,
                  "scenario_misses": scenarios.stats.total_misses, "calls": calls,
                  "failed": stats.failed, "rejected": stats.rejected, "dropped": stats.dropped,
                  "server_modules": sorted(m for m in sys.modules
                                           if m.split(".")[0] in ("metricsd", "numpy",
                                                                  "asyncpg", "aiohttp"))}))
