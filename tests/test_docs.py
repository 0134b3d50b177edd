"""The README lists every metric name: the documented ones, and the ones /metrics serves."""

from __future__ import annotations

import re
from pathlib import Path

from metricsd.app import create_app
from metricsd.vitals import VITALS

ROOT = Path(__file__).resolve().parent.parent


NAME = r"metricsd_[A-Za-z_]+"  # `_X_` marks a template: one family per Web Vital
# Vitals whose families are named metricsd_web_vitals_<x>_seconds (CLS is unitless).
TIMED_VITALS = [name.lower() for name, spec in VITALS.items() if spec.unit]


def expand(templates: set[str], xs: list[str]) -> set[str]:
    return {t.replace("_X_", f"_{x}_") for t in templates for x in xs}


def readme_names() -> set[str]:
    """Every name the README lists; its `_X_` templates expanded by its own "for X in" list."""
    text = (ROOT / "README.md").read_text()
    names = set(re.findall(rf"`({NAME})`", text))
    templates = {n for n in names if "_X_" in n}
    assert templates, "README.md no longer lists the Web Vitals families"
    listed = re.search(r"for X in ((?:`[a-z]+`(?:, )?)+)", text)
    assert listed, "README.md has metricsd_..._X_... names but no 'for X in ...' list"
    xs = re.findall(r"`([a-z]+)`", listed.group(1))
    assert sorted(xs) == sorted(TIMED_VITALS), "README's X list is not the timed vitals"
    return (names - templates) | expand(templates, xs)


def test_every_documented_metric_is_in_the_readme():
    documented = set(re.findall(rf"^\| `({NAME})`", (ROOT / "docs/metrics.md").read_text(),
                                re.M))
    templates = {n for n in documented if "_X_" in n}
    assert templates, "docs/metrics.md no longer lists the Web Vitals families"
    documented = (documented - templates) | expand(templates, TIMED_VITALS)
    assert len(documented) > 20, "docs/metrics.md lists too few metrics"
    assert documented - readme_names() == set()


def test_templates_expand_to_what_is_served():
    """The template lines name real families: every expansion is a served name."""
    from metricsd.ingest import export_views, store_families
    from metricsd.store.series import Store

    store = Store(max_series=1, window_samples=8, window_seconds=60, idle_timeout=60,
                  families=store_families())
    served = {view.family.name for view in export_views(store)}
    readme = readme_names()
    for x in TIMED_VITALS:
        assert {f"metricsd_web_vitals_{x}_seconds",
                f"metricsd_web_vitals_{x}_window_seconds"} <= served & readme, x


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
