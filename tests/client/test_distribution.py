"""metricsd-client installed alone: a fresh virtualenv with only clients/python (and Flask),
no server dependencies, runs a real Flask app against a real metricsd process.

Everything is installed offline from the wheelhouse `make test` fills (Makefile
WHEELHOUSE); without it the test is skipped locally and fails in CI.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.fixtures.binaries import missing

ROOT = Path(__file__).resolve().parents[2]
CLIENT = ROOT / "clients" / "python"
WHEELHOUSE = Path(os.environ.get("METRICSD_WHEELHOUSE", ROOT / ".venv" / "wheelhouse"))
TOKEN = "dist-token"
SERVER_ONLY = ("numpy", "asyncpg", "aiohttp", "metricsd", "msgspec", "orjson")


@pytest.fixture(scope="module")
def client_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """python -m venv, then the client from a copy of clients/python and Flask, offline."""
    if not any(WHEELHOUSE.glob("flask-*.whl")):
        missing(f"no Flask wheel in {WHEELHOUSE}: run `make test` (it fills the wheelhouse)")
    tmp = tmp_path_factory.mktemp("client-venv")
    source = tmp / "src"
    shutil.copytree(CLIENT, source, ignore=shutil.ignore_patterns("build", "*.egg-info",
                                                                  "__pycache__", "tests"))
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-index", "--find-links",
                    str(WHEELHOUSE), str(source), "flask"], check=True, timeout=300,
                   capture_output=True)
    return python


def test_only_the_client_is_installed(client_venv: Path) -> None:
    code = ("import importlib.util as u, json; "
            f"print(json.dumps({{m: u.find_spec(m) is not None for m in {SERVER_ONLY!r}}}))")
    found = json.loads(subprocess.run([str(client_venv), "-c", code], check=True,
                                      capture_output=True, text=True, timeout=60,
                                      cwd=client_venv.parents[2]).stdout)
    assert found == dict.fromkeys(SERVER_ONLY, False)
    freeze = subprocess.run([str(client_venv), "-m", "pip", "list", "--format=json"],
                            check=True, capture_output=True, text=True, timeout=60).stdout
    names = {p["name"].lower() for p in json.loads(freeze)}
    assert "metricsd-client" in names and "metricsd" not in names
    typed = subprocess.run([str(client_venv), "-c", "import metricsd_client, pathlib; print("
                            "(pathlib.Path(metricsd_client.__file__).parent / 'py.typed')"
                            ".exists())"], capture_output=True, text=True, timeout=60,
                           cwd=client_venv.parents[2])
    assert typed.stdout.strip() == "True"


def _samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def _value(samples, name: str, **labels: str) -> float:
    wanted = set(labels.items())
    return sum(v for (n, lbls), v in samples.items() if n == name and wanted <= lbls)


@pytest.mark.parametrize("seed", [1, 2])
async def test_flask_app_reports_operations_and_caches_to_a_real_metricsd(
    client_venv: Path, metricsd_proc, tmp_path: Path, seed: int
) -> None:
    proc = await metricsd_proc({"ingest": {"tokens": [TOKEN], "operations": {
        "ai.generate": {"objective_ms": 5000}}}}).start()
    try:
        run = await asyncio.to_thread(
            subprocess.run,
            [str(client_venv), str(ROOT / "tests" / "client" / "app_flask.py"), proc.url,
             TOKEN, str(seed)],
            capture_output=True, text=True, timeout=120, cwd=tmp_path,
            env={"PATH": os.environ.get("PATH", ""), "PYTHONPATH": ""})
        assert run.returncode == 0, run.stdout + run.stderr
        got = json.loads(run.stdout.strip().splitlines()[-1])
        async with aiohttp.ClientSession() as http, http.get(proc.url + "/metrics") as resp:
            samples = _samples(await resp.text())
    finally:
        await proc.stop()
    assert got["server_modules"] == []
    assert got["failed"] == got["rejected"] == got["dropped"] == 0
    labels = {"service": "flaskapp", "cache": "templates"}
    hits = _value(samples, "metricsd_cache_requests_total", **labels, result="hit")
    misses = _value(samples, "metricsd_cache_requests_total", **labels, result="miss")
    assert (hits, misses) == (got["hits"], got["misses"])
    assert hits / (hits + misses) == got["hits"] / (got["hits"] + got["misses"])
    assert _value(samples, "metricsd_cache_window_hit_ratio", **labels) == pytest.approx(
        got["hits"] / (got["hits"] + got["misses"]))
    assert _value(samples, "metricsd_cache_entries", **labels) == got["currsize"]
    assert _value(samples, "metricsd_cache_evictions_total", **labels) == (
        got["misses"] - got["currsize"])
    scen = {"service": "flaskapp", "cache": "scenarios"}
    assert _value(samples, "metricsd_cache_requests_total", **scen, result="hit") == \
        got["scenario_hits"]
    assert _value(samples, "metricsd_cache_requests_total", **scen, result="miss") == \
        got["scenario_misses"]
    ops = {"service": "flaskapp"}
    n = got["calls"]["generate"]
    assert _value(samples, "metricsd_operations_total", **ops, operation="ai.generate") == n
    assert _value(samples, "metricsd_operations_total", **ops,
                  operation="ai.generate_async") == n
    assert _value(samples, "metricsd_operations_total", **ops, operation="export.csv") == n
    assert _value(samples, "metricsd_operations_total", **ops, operation="ws.delivery",
                  outcome="error") == got["calls"]["fail"]
    assert _value(samples, "metricsd_operations_total", **ops, operation="export.pdf",
                  outcome="ok") == 1
    assert _value(samples, "metricsd_operation_duration_seconds_sum", **ops,
                  operation="export.pdf") == pytest.approx(1.25)
    # request timings went through the WSGI middleware and the same sender
    assert _value(samples, "metricsd_api_requests_total", service="flaskapp",
                  route="/templates/<name>") == pytest.approx(
        got["hits"] + got["misses"])
