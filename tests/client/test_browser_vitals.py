"""Real browser, issue 17: web-vitals' attribution build, devices, and what metricsd makes of it.

Headless Chromium (Debian's, over CDP as in test_browser.py) loads pages from one loopback
origin with clients/js and the real web-vitals from npm, attribution on; metricsd listens on
another. A slow click handler on a known button must come back as INP's top target on
GET /v1/vitals/attribution with its processing duration; a late hero image as LCP's target
with its resource-load sub-part; a layout shift must name the element that moved. The same
page under Playwright's "Pixel 7" descriptor lands in device="mobile", under "Desktop
Chrome" in device="desktop" (the descriptors' values are copied below: the emulation is
CDP's, the same calls Playwright makes). Soft navigations: the client follows a metric's
navigationURL, through the route hook when given.
"""

from __future__ import annotations

import asyncio
import json
import random
import struct
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.client.conftest import Metricsd, value
from tests.client.test_browser import CLIENT_JS, _npm_install
from tests.fixtures.binaries import require_binary
from tests.fixtures.browser import Browser, Page, launch_chromium

HANDLER_MS = 300  # the click handler blocks the main thread this long
# INP's processing duration is the handler plus event dispatch; on a loaded 2-core machine
# a frame or two more. Tolerance: [HANDLER_MS, HANDLER_MS + 150 ms].
PROCESSING_TOLERANCE_MS = 150
HERO_DELAY_S = 1.0  # the hero image's response is held back this long by the server
HERO_SIZE = (600, 300)

# Playwright's device descriptors (playwright-core deviceDescriptorsSource.json).
DEVICES: dict[str, dict[str, Any]] = {
    "Pixel 7": {
        "userAgent": "Mozilla/5.0 (Linux; Android 14; Pixel 7) AppleWebKit/537.36 (KHTML, "
                     "like Gecko) Chrome/131.0.6778.33 Mobile Safari/537.36",
        "viewport": {"width": 412, "height": 839}, "deviceScaleFactor": 2.625,
        "isMobile": True, "hasTouch": True,
    },
    "Desktop Chrome": {
        "userAgent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, "
                     "like Gecko) Chrome/131.0.6778.33 Safari/537.36",
        "viewport": {"width": 1280, "height": 720}, "deviceScaleFactor": 1,
        "isMobile": False, "hasTouch": False,
    },
}

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>metricsd attribution test</title>
<script type="importmap">
{"imports": {"web-vitals": "/node_modules/web-vitals/dist/web-vitals.js",
             "web-vitals/attribution": "/node_modules/web-vitals/dist/web-vitals.attribution.js"}}
</script>
<style>
  body { margin: 0; display: flow-root; font: 14px sans-serif; }
  #banner { height: 0; background: #fd0; }
  #article { display: flow-root; width: 900px; height: 400px; margin: 20px;
             background: #dde; border: 1px solid #99a; }
  #hero { display: block; }
  #add-to-cart { position: fixed; right: 10px; bottom: 10px; width: 160px; height: 50px; }
</style></head>
<body>
%(body)s
<button id="add-to-cart">Add to cart</button>
<script type="module">
  import { initVitals } from '/client/metricsd-vitals.js';
  document.getElementById('add-to-cart').addEventListener('click', (event) => {
    const end = performance.now() + %(block)d;
    while (performance.now() < end) {}
    event.target.textContent = 'Added';
  });
  window.__reporter = initVitals(%(options)s);
  window.__reporter.ready.then(() => { window.__ready = true; });
</script>
</body></html>
"""
BODIES = {
    "/shop": f'<p>Shop</p><img id="hero" src="/img/hero.png" width="{HERO_SIZE[0]}" '
             f'height="{HERO_SIZE[1]}" alt="">',
    "/news": '<div id="banner"></div><div id="article"><p>News</p></div>',
}


def _png(width: int, height: int) -> bytes:
    """An RGB PNG of noise (no imaging library needed).

    Noise, because Chromium leaves low-entropy images (a solid colour) out of LCP.
    """
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    rng = random.Random(17)
    raw = b"".join(b"\x00" + rng.randbytes(3 * width) for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


@pytest.fixture
async def site(
    tmp_path: Path, metricsd: Metricsd, aiohttp_server: Callable[..., Awaitable[TestServer]]
) -> AsyncIterator[TestServer]:
    node_modules = await _npm_install(tmp_path / "npm")
    if not (node_modules / "web-vitals" / "dist" / "web-vitals.attribution.js").exists():
        pytest.fail("the web-vitals package has no attribution build")
    endpoint = f"{metricsd.url}/v1/beacons/vitals"
    hero = _png(*HERO_SIZE)

    async def page(request: web.Request) -> web.Response:
        options = {"endpoint": endpoint, "page": request.path, "attribution": True}
        html = PAGE % {"body": BODIES[request.path], "block": HANDLER_MS,
                       "options": json.dumps(options)}
        return web.Response(text=html, content_type="text/html")

    async def hero_png(request: web.Request) -> web.Response:
        await asyncio.sleep(HERO_DELAY_S)
        return web.Response(body=hero, content_type="image/png",
                            headers={"Cache-Control": "no-store"})

    async def elsewhere(request: web.Request) -> web.Response:
        return web.Response(text="<!doctype html><title>next</title><p>next</p>",
                            content_type="text/html")

    app = web.Application()
    for path in BODIES:
        app.router.add_get(path, page)
    app.router.add_get("/img/hero.png", hero_png)
    app.router.add_get("/next", elsewhere)
    app.router.add_static("/client", CLIENT_JS)
    app.router.add_static("/node_modules", node_modules)
    yield await aiohttp_server(app)


@pytest.fixture
async def chromium(tmp_path: Path) -> AsyncIterator[Browser]:
    require_binary("npm")
    async with launch_chromium(tmp_path / "browser") as browser:
        yield browser


async def _emulate(page: Page, name: str) -> None:
    """What Playwright does for a device descriptor: UA, metrics, touch."""
    device = DEVICES[name]
    # The client hints a real device sends with that User-Agent (navigator.userAgentData).
    metadata = {"brands": [{"brand": "Chromium", "version": "131"}], "platform":
                "Android" if device["isMobile"] else "Windows", "platformVersion": "",
                "architecture": "", "model": "", "mobile": device["isMobile"]}
    await page.send("Emulation.setUserAgentOverride", userAgent=device["userAgent"],
                    userAgentMetadata=metadata)
    await page.send("Emulation.setDeviceMetricsOverride", width=device["viewport"]["width"],
                    height=device["viewport"]["height"],
                    deviceScaleFactor=device["deviceScaleFactor"], mobile=device["isMobile"])
    await page.send("Emulation.setTouchEmulationEnabled", enabled=device["hasTouch"])


async def _frames(page: Page, ms: int = 0) -> None:
    await page.evaluate("new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))",
                        await_promise=True)
    if ms:
        await page.evaluate(f"new Promise(r => setTimeout(r, {ms}))", await_promise=True)


async def _open(page: Page, site: TestServer, path: str) -> None:
    await page.navigate(str(site.make_url(path)))
    await page.wait_for("window.__ready === true")
    if path == "/shop":
        await page.wait_for("document.getElementById('hero').complete", within=10)
    await _frames(page, 200)


async def _leave(page: Page, site: TestServer) -> None:
    await page.navigate(str(site.make_url("/next")))


async def _attribution(metricsd: Metricsd, path: str, want: set[str]) -> dict[str, Any]:
    """GET /v1/vitals/attribution?page=path, once the wanted vitals' targets are in."""
    got: dict[str, Any] = {}
    async with aiohttp.ClientSession() as session:
        for _ in range(100):
            async with session.get(f"{metricsd.url}/v1/vitals/attribution",
                                   params={"page": path}) as resp:
                assert resp.status == 200
                body = await resp.json()
            if body["pages"]:
                got = body["pages"][0]
                if want <= set(got["targets"]):
                    return got
            await asyncio.sleep(0.1)
    raise AssertionError(f"attribution for {path}: {got}; beacons: {metricsd.seen}")


async def _selects(page: Page, selector: str, js_element: str) -> bool:
    """Whether `selector` picks the element (or a descendant of it) in the live page."""
    return bool(await page.evaluate(
        f"(() => {{ const el = document.querySelector({json.dumps(selector)});"
        f" const want = {js_element}; return !!el && (el === want || want.contains(el)); }})()"))


@pytest.mark.timeout(120)
async def test_attribution_and_device_classes(chromium: Browser, site: TestServer,
                                              metricsd: Metricsd) -> None:
    desktop = await chromium.new_page()
    await _emulate(desktop, "Desktop Chrome")

    # /shop: a late hero image (LCP), then the slow click handler (INP). The button is
    # activated with Enter: this Chromium gives CDP-synthesised pointer events no
    # event-timing target (pointerdown.target is null), a keydown has the button.
    await _open(desktop, site, "/shop")
    await desktop.evaluate("document.getElementById('add-to-cart').focus()")
    await desktop.send("Input.dispatchKeyEvent", type="keyDown", key="Enter", code="Enter",
                       windowsVirtualKeyCode=13, text="\r")
    await desktop.send("Input.dispatchKeyEvent", type="keyUp", key="Enter", code="Enter",
                       windowsVirtualKeyCode=13)
    await desktop.wait_for("document.getElementById('add-to-cart').textContent === 'Added'")
    await _frames(desktop, 1200)  # web-vitals settles INP in an idle callback
    await desktop.set_hidden(True)
    shop = await _attribution(metricsd, "/shop", {"INP", "LCP"})
    await desktop.set_hidden(False)
    await _open(desktop, site, "/shop")  # for the selector checks below, same DOM
    inp_top = shop["targets"]["INP"][0]["target"]
    lcp_top = shop["targets"]["LCP"][0]["target"]
    assert await _selects(desktop, inp_top, "document.getElementById('add-to-cart')"), inp_top
    assert await _selects(desktop, lcp_top, "document.getElementById('hero')"), lcp_top
    assert shop["lcp_resources"][0]["target"] == "/img/hero.png"
    processing = shop["parts"]["inp_processing_duration"]["p75_seconds"] * 1000
    assert HANDLER_MS <= processing <= HANDLER_MS + PROCESSING_TOLERANCE_MS, shop["parts"]
    load = shop["parts"]["lcp_resource_load_duration"]["p75_seconds"]
    assert HERO_DELAY_S * 0.9 <= load <= HERO_DELAY_S + 2.0, shop["parts"]
    assert shop["inp_interaction_types"] == {"keyboard": 1}
    await _leave(desktop, site)

    # /news: the banner grows and pushes the article down: CLS names the article.
    await _open(desktop, site, "/news")
    await desktop.evaluate("document.getElementById('banner').style.height = '200px'")
    await _frames(desktop, 300)
    await _leave(desktop, site)
    news = await _attribution(metricsd, "/news", {"CLS"})
    await _open(desktop, site, "/news")
    cls_top = news["targets"]["CLS"][0]["target"]
    assert await _selects(desktop, cls_top, "document.getElementById('article')"), cls_top
    await _leave(desktop, site)

    # The same /shop page on an emulated Pixel 7: its LCP lands in device="mobile".
    phone = await chromium.new_page()
    await _emulate(phone, "Pixel 7")
    await _open(phone, site, "/shop")
    # Hidden, not left: a beacon sent while the page unloads leaves with Chromium's own
    # User-Agent, not the emulated one (a real phone has only one).
    await phone.set_hidden(True)
    samples: dict[Any, float] = {}
    for _ in range(100):
        samples = await metricsd.samples()
        if value(samples, "metricsd_web_vitals_lcp_seconds_count", page="/shop",
                 device="mobile"):
            break
        await asyncio.sleep(0.1)
    lcp = "metricsd_web_vitals_lcp_seconds_count"
    assert value(samples, lcp, page="/shop", device="mobile") == 1, [
        (k, v) for k, v in samples.items() if k[0] == lcp]
    # Two desktop views of /shop were reported (the second was loaded for the checks).
    assert value(samples, lcp, page="/shop", device="desktop") >= 1
    assert value(samples, lcp, page="/shop", device="tablet") == 0
    assert value(samples, lcp, page="/shop", device="unknown") == 0
    assert value(samples, "metricsd_web_vitals_lcp_seconds_count", page="/news",
                 device="desktop") >= 1
    part = "metricsd_web_vitals_attribution_window_seconds"
    assert value(samples, part, page="/shop", part="inp_processing_duration",
                 quantile="0.75") * 1000 >= HANDLER_MS


# The standard web-vitals build reports no soft navigations (Chromium's soft-navigation
# heuristics and web-vitals' soft-navs build are experimental), so the metric objects are
# shaped as that build reports them, and everything after it is the real client in a real
# browser: pageFor, withContext, toBodies, sendBeacon, and metricsd's ingest.
SOFT_NAVS_JS = """
(async () => {
  const m = await import('/client/metricsd-vitals.js');
  const route = (path) => (path.startsWith('/blog/') ? '/blog/:slug' : undefined);
  const soft = (name, value, id, path) => ({name, value, id, delta: value, rating: 'good',
    navigationType: 'soft-navigation', navigationURL: location.origin + path});
  const metrics = [
    soft('LCP', 900, 'soft-1', '/blog/first-post?utm_source=x#top'),
    soft('INP', 120, 'soft-2', '/cart'),
    {name: 'CLS', value: 0.01, id: 'hard-1', delta: 0.01, rating: 'good',
     navigationType: 'navigate'},
  ];
  const withRoute = metrics.map((metric) => m.pageFor(metric, '/news', route));
  const without = metrics.map((metric) => m.pageFor(metric, '/news'));
  const items = metrics.map((metric) => m.withContext(
    m.toBeacon(metric, m.pageFor(metric, '/news', route)), metric, {}));
  const sent = m.toBodies(items).map((body) => navigator.sendBeacon(%(endpoint)s, body));
  return {withRoute, without, sent};
})()
"""


@pytest.mark.timeout(60)
async def test_soft_navigations_follow_navigation_url_and_the_route_hook(
        chromium: Browser, site: TestServer, metricsd: Metricsd) -> None:
    page = await chromium.new_page()
    await _open(page, site, "/news")
    got = await page.evaluate(
        SOFT_NAVS_JS % {"endpoint": json.dumps(f"{metricsd.url}/v1/beacons/vitals")},
        await_promise=True)
    assert got["withRoute"] == ["/blog/:slug", "/cart", "/news"], got
    assert got["without"] == ["/blog/first-post", "/cart", "/news"], got  # no query, fragment
    assert got["sent"] == [True], got
    ratings = "metricsd_web_vitals_ratings_total"
    samples: dict[Any, float] = {}
    for _ in range(100):
        samples = await metricsd.samples()
        if value(samples, ratings, metric="INP", page="/cart"):
            break
        await asyncio.sleep(0.1)
    assert value(samples, "metricsd_web_vitals_lcp_seconds_count", page="/blog/:slug") == 1
    assert value(samples, ratings, metric="LCP", page="/blog/:slug",
                 navigation_type="soft-navigation") == 1
    assert value(samples, ratings, metric="INP", page="/cart",
                 navigation_type="soft-navigation") == 1
    assert value(samples, ratings, metric="CLS", page="/news", navigation_type="navigate") >= 1
    assert value(samples, "metricsd_web_vitals_lcp_seconds_count", page="/blog/first-post") == 0
