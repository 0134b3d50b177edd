"""The browser client as it would be published: `npm pack` output, installed like a user's
project installs it, typed (`tsc --noEmit`), and working in real headless Chromium.

typescript and web-vitals come from npm at the versions clients/js/package.json's
devDependencies name; chromium is Debian's (tests.fixtures.browser).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import tarfile
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from prometheus_client.parser import text_string_to_metric_families

from metricsd.app import create_app
from tests.client.conftest import label_values, value
from tests.fixtures.binaries import missing, require_binary
from tests.fixtures.browser import Browser, launch_chromium

CLIENT_JS = Path(__file__).resolve().parents[2] / "clients" / "js"
PACKAGE = json.loads((CLIENT_JS / "package.json").read_text(encoding="utf-8"))
NPM_TIMEOUT_S = 120


def _npm(args: list[str], cwd: Path) -> str:
    npm = require_binary("npm")
    env = {**os.environ, "npm_config_cache": str(cwd / ".npm-cache"),
           "npm_config_update_notifier": "false", "npm_config_fund": "false",
           "npm_config_audit": "false"}
    try:
        run = subprocess.run([npm, *args], cwd=cwd, env=env, capture_output=True, text=True,
                             timeout=NPM_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        missing(f"npm {' '.join(args)} did not finish in {NPM_TIMEOUT_S}s (registry reachable?)")
    if run.returncode != 0:
        missing(f"npm {' '.join(args)} failed: {(run.stdout + run.stderr)[-800:]}")
    return run.stdout


@pytest.fixture(scope="module")
def consumer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project that installed the packed tarball, web-vitals and typescript."""
    root = tmp_path_factory.mktemp("js-consumer")
    packed = json.loads(_npm(["pack", "--json", "--pack-destination", str(root),
                              str(CLIENT_JS)], root))
    tarball = root / packed[0]["filename"]
    (root / "package.json").write_text(json.dumps({"name": "consumer", "private": True,
                                                   "type": "module"}))
    dev = PACKAGE["devDependencies"]
    _npm(["install", "--no-save", "--loglevel=error", str(tarball),
          f"web-vitals@{dev['web-vitals']}", f"typescript@{dev['typescript']}"], root)
    return root


def test_the_tarball_holds_the_module_its_types_and_licence_field(consumer: Path) -> None:
    (tarball,) = consumer.glob("metricsd-web-vitals-*.tgz")
    with tarfile.open(tarball) as tar:
        names = {n.removeprefix("package/") for n in tar.getnames()}
    # No LICENSE file: the project has none (tests/client/test_licence.py keeps them in step).
    assert names == {"package.json", "metricsd-vitals.js", "index.d.ts", "README.md"}
    installed = json.loads((consumer / "node_modules" / "metricsd-web-vitals" /
                            "package.json").read_text())
    assert installed["license"] == "UNLICENSED" and installed["types"] == "index.d.ts"
    assert installed["exports"]["."]["types"] == "./index.d.ts"
    assert installed["type"] == "module"


TSCONFIG = {"compilerOptions": {"strict": True, "noEmit": True, "module": "nodenext",
                                "moduleResolution": "nodenext", "target": "es2022",
                                "lib": ["es2022", "dom"], "skipLibCheck": False}}

BAD_USAGE = """
import { initVitals, reportOperation } from 'metricsd-web-vitals';
initVitals({ endpoint: 'x', sampleRate: 'all' });
reportOperation('ws.delivery', '12');
reportOperation('ws.delivery', 12, 'slow');
"""


def _tsc(consumer: Path, source: str) -> subprocess.CompletedProcess[str]:
    work = consumer / f"ts-{abs(hash(source))}"
    work.mkdir(exist_ok=True)
    (work / "package.json").write_text(json.dumps({"type": "module"}))
    (work / "tsconfig.json").write_text(json.dumps({**TSCONFIG, "files": ["usage.ts"]}))
    (work / "usage.ts").write_text(source)
    (work / "node_modules").symlink_to(consumer / "node_modules")
    tsc = consumer / "node_modules" / ".bin" / "tsc"
    return subprocess.run([str(tsc), "--noEmit", "-p", str(work)], capture_output=True,
                          text=True, timeout=120, cwd=work)


def test_typed_usage_example_compiles(consumer: Path) -> None:
    run = _tsc(consumer, (CLIENT_JS / "examples" / "usage.ts").read_text(encoding="utf-8"))
    assert run.returncode == 0, run.stdout + run.stderr


def test_declarations_refuse_wrong_usage(consumer: Path) -> None:
    run = _tsc(consumer, BAD_USAGE)
    assert run.returncode != 0
    # sampleRate: string; durationMs: string; outcome: not an Outcome
    assert run.stdout.count("error TS2322") + run.stdout.count("error TS2345") >= 3, run.stdout


PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>packed client</title>
<script type="importmap">
{"imports": {"web-vitals": "/node_modules/web-vitals/dist/web-vitals.js",
             "metricsd-web-vitals": "/node_modules/metricsd-web-vitals/metricsd-vitals.js"}}
</script></head>
<body><h1>Chat</h1><p>Messages arrive over a WebSocket.</p>
<script type="module">
  import { initVitals, reportOperation } from 'metricsd-web-vitals';
  window.__reporter = initVitals({
    endpoint: %(endpoint)s,
    page: '/chat/:room',
    service: 'chat-web',
    beforeSend(item, kind) {
      if (kind === 'operations' && item.operation.startsWith('debug.')) return null;
      if (kind === 'vitals' && item.name === 'TTFB') return false;
      if (kind === 'vitals') item.page = '/chat/:room/edited';
      return item;
    },
  });
  window.__sent = [
    reportOperation('ws.delivery', 120, 'ok'),
    reportOperation('ws.delivery', 480, 'timeout'),
    reportOperation('debug.noise', 5),
    reportOperation('ws.delivery', NaN),
  ];
  window.__ready = true;
</script></body></html>
"""


@pytest.fixture
async def servers(
    consumer: Path, aiohttp_server: Callable[..., Awaitable[TestServer]], make_config: Any
) -> AsyncIterator[tuple[TestServer, TestServer]]:
    """metricsd (no tokens: browsers cannot keep one) and the site, on two origins."""
    metricsd = await aiohttp_server(create_app(make_config({})))
    endpoint = str(metricsd.make_url("/v1/beacons/vitals"))

    async def page(request: web.Request) -> web.Response:
        return web.Response(text=PAGE % {"endpoint": json.dumps(endpoint)},
                            content_type="text/html")

    async def elsewhere(request: web.Request) -> web.Response:
        return web.Response(text="<!doctype html><p>next</p>", content_type="text/html")

    app = web.Application()
    app.router.add_get("/chat/7", page)
    app.router.add_get("/next", elsewhere)
    app.router.add_static("/node_modules", consumer / "node_modules", follow_symlinks=True)
    yield metricsd, await aiohttp_server(app)


@pytest.mark.timeout(120)
async def test_packed_client_reports_operations_and_vitals_from_chromium(
    servers: tuple[TestServer, TestServer], tmp_path: Path
) -> None:
    metricsd, site = servers
    async with launch_chromium(tmp_path / "browser") as browser:
        await _visit(browser, site)
    samples: dict[Any, float] = {}
    for _ in range(100):  # the pagehide beacons land a little after the navigation
        async with aiohttp.ClientSession() as http, http.get(
                str(metricsd.make_url("/metrics"))) as resp:
            samples = _parse(await resp.text())
        if value(samples, "metricsd_web_vitals_ratings_total", metric="LCP") and value(
                samples, "metricsd_operations_total", operation="ws.delivery") >= 2:
            break
        await asyncio.sleep(0.1)
    ops = {"service": "chat-web", "operation": "ws.delivery"}
    assert value(samples, "metricsd_operations_total", **ops, outcome="ok") == 1
    assert value(samples, "metricsd_operations_total", **ops, outcome="timeout") == 1
    assert value(samples, "metricsd_operation_duration_seconds_sum", **ops) == pytest.approx(0.6)
    assert "debug.noise" not in label_values(samples, "metricsd_operations_total", "operation")
    ratings = "metricsd_web_vitals_ratings_total"
    assert label_values(samples, ratings, "page") == {"/chat/:room/edited"}
    got = label_values(samples, ratings, "metric")
    assert {"LCP", "FCP"} <= got and "TTFB" not in got, got


async def _visit(browser: Browser, site: TestServer) -> None:
    page = await browser.new_page()
    await page.navigate(str(site.make_url("/chat/7")))
    await page.wait_for("window.__ready === true")
    assert await page.evaluate("window.__sent") == [True, True, True, False]
    await page.evaluate("new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))",
                        await_promise=True)
    await page.navigate(str(site.make_url("/next")))  # pagehide: flush


def _parse(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out
