"""deploy/prometheus/alerts.yml, the fleet rule file: promtool, parity with alerts.yml, and a
real Prometheus over two metricsd instances that fires one alert, not one per instance.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from tests.fixtures.binaries import require_binary

ROOT = Path(__file__).resolve().parents[2]
SINGLE = ROOT / "alerts.yml"
FLEET = ROOT / "deploy/prometheus/alerts.yml"
FLEET_TEST = ROOT / "deploy/prometheus/alerts_test.yml"
# Rules that read the cumulative series in the fleet file (the others are per target).
FLEET_RULES = {"ApiLatencyP95High", "ApiErrorRatioHigh", "WebVitalsLCPPoor",
               "WebVitalsLCPNeedsImprovement", "WebVitalsINPPoor",
               "WebVitalsINPNeedsImprovement", "WebVitalsCLSPoor",
               "WebVitalsCLSNeedsImprovement", "WebVitalsAssessmentFailing",
               "OperationObjectiveMissed", "CacheHitRatioLow"}


def _alerts(path: Path) -> dict[str, dict[str, Any]]:
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    return {r["alert"]: r for g in doc["groups"] for r in g["rules"] if "alert" in r}


def _promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([require_binary("promtool"), *args], capture_output=True,
                          text=True, cwd=cwd, timeout=120)


def test_fleet_file_is_generated_from_alerts_yml() -> None:
    """alerts.yml is the source: a rule added there must reach the fleet file."""
    result = subprocess.run([sys.executable, str(ROOT / "tools/fleet_rules.py"), "--check"],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr


def test_fleet_rules_pass_promtool_check_and_their_unit_tests() -> None:
    checked = _promtool("check", "rules", str(FLEET), cwd=ROOT)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = _promtool("test", "rules", str(FLEET_TEST), cwd=FLEET.parent)
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_fleet_records_every_quantile_an_objective_may_name() -> None:
    """An objective on any allowed quantile has a fleet quantile to be compared with."""
    from metricsd.config import OBJECTIVE_QUANTILES

    doc = yaml.safe_load(FLEET.read_text(encoding="utf-8"))
    recorded = {r["labels"]["quantile"] for g in doc["groups"] for r in g["rules"]
                if r.get("record", "").startswith("service_operation_quantile:")}
    assert recorded == {repr(q) for q in OBJECTIVE_QUANTILES}


def test_per_instance_rules_fail_the_fleet_unit_tests(tmp_path: Path) -> None:
    """The unit tests can fail: alerts.yml (per instance, window gauges) does not pass them."""
    shutil.copy(FLEET_TEST, tmp_path / "alerts_test.yml")
    shutil.copy(SINGLE, tmp_path / "alerts.yml")
    tested = _promtool("test", "rules", "alerts_test.yml", cwd=tmp_path)
    assert tested.returncode != 0


def test_same_alerts_labels_and_annotations_as_alerts_yml() -> None:
    single, fleet = _alerts(SINGLE), _alerts(FLEET)
    assert set(fleet) == set(single)
    for name, rule in single.items():
        assert fleet[name]["labels"] == rule["labels"], name
        assert fleet[name]["annotations"] == rule["annotations"], name
        assert fleet[name].get("for") == rule.get("for"), name
        if name in FLEET_RULES:
            assert fleet[name]["expr"] != rule["expr"], name
            assert "window" not in fleet[name]["expr"], name
        else:
            assert fleet[name]["expr"] == rule["expr"], name


def _instant(path: Path, tmp_path: Path) -> Path:
    """The fleet file with every `for` set to 0s, so a test sees alerts in seconds."""
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    for group in doc["groups"]:
        for rule in group["rules"]:
            if "alert" in rule:
                rule["for"] = "0s"
    out = tmp_path / "fleet-alerts.yml"
    out.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return out


async def test_prometheus_fires_one_alert_for_two_instances(
    tmp_path: Path, make_config: Any, serve_metricsd: Any, make_prometheus: Any
) -> None:
    config = make_config({"ingest": {"window": {"samples": 64}}})
    first, second = await serve_metricsd(config), await serve_metricsd(config)
    item = {"service": "shop", "route": "/slow", "method": "GET", "status": 200,
            "duration_ms": 900.0}
    async with aiohttp.ClientSession() as session:
        for address in (first, second):
            async with session.post(f"http://{address}/v1/beacons/timings",
                                    json=[item] * 64) as resp:
                assert resp.status == 202
    prometheus = await make_prometheus([first, second], rule_files=[_instant(FLEET, tmp_path)])
    await prometheus.wait_scrapes("metricsd", 3, within_s=30)
    # Keep traffic flowing so rate() has increases to see.
    async with aiohttp.ClientSession() as session:
        for address in (first, second):
            async with session.post(f"http://{address}/v1/beacons/timings",
                                    json=[item] * 64) as resp:
                assert resp.status == 202
    firing = await prometheus.wait_for(
        'ALERTS{alertname="ApiLatencyP95High", alertstate="firing"}', bool, within_s=30)
    assert len(firing) == 1, firing
    labels = firing[0]["metric"]
    assert "instance" not in labels and "job" not in labels
    assert {k: labels[k] for k in ("service", "route", "method", "severity")} == {
        "service": "shop", "route": "/slow", "method": "GET", "severity": "page"}
    # The per-instance expression of alerts.yml would have fired twice on the same data.
    per_instance = await prometheus.query(
        'metricsd_api_request_window_seconds{route="/slow", quantile="0.95"} > 0.5')
    assert len(per_instance) == 2
    rules = await prometheus.api("rules")
    broken = [r for g in rules["groups"] for r in g["rules"] if r.get("health") == "err"]
    assert broken == [], broken


def test_vmalert_loads_the_fleet_rules(tmp_path: Path) -> None:
    """docs/scaling.md names vmalert as an evaluator: Debian's vmalert 1.79 parses the file."""
    vmalert = require_binary("vmalert")

    def dry_run(path: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run([vmalert, "-dryRun", f"-rule={path}"], capture_output=True,
                              text=True, timeout=60, check=False)

    loaded = dry_run(FLEET)
    assert loaded.returncode == 0, loaded.stdout + loaded.stderr
    broken = tmp_path / "broken.yml"
    broken.write_text(FLEET.read_text(encoding="utf-8").replace(
        "> 0.5\n", "> (0.5\n", 1), encoding="utf-8")
    assert dry_run(broken).returncode != 0  # the check bites
