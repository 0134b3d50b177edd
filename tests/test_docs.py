"""The README lists every metric name: the documented ones, and the ones /metrics serves."""

from __future__ import annotations

import re
from pathlib import Path

from metricsd.app import create_app
from metricsd.vitals import VITALS

ROOT = Path(__file__).resolve().parent.parent


def readme_names() -> set[str]:
    text = (ROOT / "README.md").read_text()
    names = set(re.findall(r"`(metricsd_[a-z_]+)`", text))
    # `metricsd_web_vitals_X_seconds ... for X in lcp, inp, ...` expands to real names.
    for template in [n for n in names if "_X_" in n.upper() and "_x_" not in n]:
        names.discard(template)
    for vital in VITALS:
        x = vital.lower()
        if x != "cls":
            names |= {f"metricsd_web_vitals_{x}_seconds", f"metricsd_web_vitals_{x}_window_seconds"}
    return names


def test_every_documented_metric_is_in_the_readme():
    documented = set(re.findall(r"^\| `(metricsd_[a-z_]+)`", (ROOT / "docs/metrics.md")
                                .read_text(), re.M))
    documented = {n for n in documented if "_x_" not in n}
    assert documented, "docs/metrics.md lists no metric"
    assert documented - readme_names() == set()


async def test_every_served_family_is_in_the_readme(aiohttp_client, make_config):
    client = await aiohttp_client(create_app(make_config()))
    await client.post("/v1/beacons/timings", json={"service": "s", "route": "/", "method": "GET",
                                                   "status": 200, "duration_ms": 1})
    await client.post("/v1/beacons/vitals", json=[
        {"name": name, "value": 1.0, "id": f"id-{name}"} for name in VITALS])
    text = await (await client.get("/metrics")).text()
    served = set(re.findall(r"^# TYPE (metricsd_[a-z_]+) ", text, re.M))
    assert len(served) > 20
    assert served - readme_names() == set()
