"""Dashboards and Grafana provisioning: structure, PromQL syntax and metric names.

The end-to-end test (tests/e2e/test_prometheus.py) runs every query against a real
Prometheus; these checks need nothing but the files and catch most mistakes in a second.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from typing import Any

import promql_parser
import pytest
import yaml

from tests.deploy import dashboards as db

ROOT = db.ROOT
DS_REF = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
# Variables each dashboard offers (the issue: service, route, page, target, instance).
REQUIRED_VARIABLES = {
    "metricsd-api": {"instance", "service", "route"},
    "metricsd-web-vitals": {"instance", "page"},
    "metricsd-postgres": {"instance", "target"},
    "metricsd-self": {"instance"},
    "metricsd-operations": {"instance", "service", "operation", "cache_service"},
}
# Series Prometheus makes itself for every target.
PROMETHEUS_BUILTINS = {"up", "scrape_duration_seconds", "scrape_samples_scraped",
                       "scrape_series_added", "scrape_samples_post_metric_relabeling"}
VITALS = ("lcp", "inp", "cls", "fcp", "ttfb", "fid")
SUFFIXES = ("_bucket", "_sum", "_count", "_total", "_created")
# docs/metrics.md is the contract; alerting documents its self-metrics next to the engine.
METRIC_DOCS = ("metrics.md", "alerting.md")


def _boards() -> dict[str, dict[str, Any]]:
    return {path.name: db.load(path) for path in db.dashboard_files()}


BOARDS = _boards()


def test_the_four_dashboards_exist() -> None:
    assert set(BOARDS) >= {"api.json", "web-vitals.json", "postgres.json", "metricsd.json"}
    assert {b["uid"] for b in BOARDS.values()} >= set(REQUIRED_VARIABLES)


def test_json_is_what_build_py_generates() -> None:
    spec = importlib.util.spec_from_file_location("dashboards_build", db.DASHBOARDS / "build.py")
    assert spec and spec.loader
    build = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = build  # dataclasses look their module up while building
    try:
        spec.loader.exec_module(build)
    finally:
        del sys.modules[spec.name]
    generated = build.render_all()
    assert set(generated) == set(BOARDS), "a dashboard JSON without a generator, or the reverse"
    for name, board in generated.items():
        assert build.dump(board) == (db.DASHBOARDS / name).read_text(encoding="utf-8"), (
            f"{name} differs from dashboards/build.py: run `.venv/bin/python dashboards/build.py`"
        )


def test_uids_and_titles_are_unique() -> None:
    uids = [b["uid"] for b in BOARDS.values()]
    titles = [b["title"] for b in BOARDS.values()]
    assert len(set(uids)) == len(uids) and len(set(titles)) == len(titles)
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{1,40}", uid) for uid in uids)


@pytest.mark.parametrize("name", sorted(BOARDS))
def test_importable_anywhere(name: str) -> None:
    """Datasource as ${DS_PROMETHEUS}: an __inputs entry for import, a variable for files."""
    board = BOARDS[name]
    inputs = {i["name"]: i for i in board["__inputs"]}
    assert inputs["DS_PROMETHEUS"]["type"] == "datasource"
    assert inputs["DS_PROMETHEUS"]["pluginId"] == "prometheus"
    assert board["id"] is None
    assert board["schemaVersion"] >= 41
    ds_var = db.variables(board)["DS_PROMETHEUS"]
    assert ds_var["type"] == "datasource" and ds_var["query"] == "prometheus"
    for panel in db.panels(board):
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == DS_REF, panel["title"]
        assert panel["targets"], f"{panel['title']} has no query"
        for target in panel["targets"]:
            assert target["datasource"] == DS_REF, panel["title"]
    for var in db.variables(board).values():
        if var["type"] == "query":
            assert var["datasource"] == DS_REF, var["name"]
    # No concrete datasource uid anywhere: import must not depend on the author's Grafana.
    assert '"uid": "prometheus"' not in (db.DASHBOARDS / name).read_text()


@pytest.mark.parametrize("name", sorted(BOARDS))
def test_template_variables(name: str) -> None:
    board = BOARDS[name]
    names = set(db.variables(board))
    assert REQUIRED_VARIABLES[board["uid"]] <= names
    for var in db.variables(board).values():
        if var["type"] != "query":
            continue
        selector, _label = db.parse_label_values(db.variable_query(var))
        assert selector is not None
        promql_parser.parse(db.substitute(selector))
        # Every variable is used by some query, and every query filters on instance.
        exprs = [q.expr for q in db.queries(board)]
        assert any(f"${var['name']}" in e for e in exprs) or var["name"] == "job", var["name"]
    for query in db.queries(board):
        assert 'instance=~"$instance"' in query.expr, (query.panel, query.expr)


@pytest.mark.parametrize("name", sorted(BOARDS))
def test_panel_ids_unique_and_grid_does_not_overlap(name: str) -> None:
    board = BOARDS[name]
    ids = [p["id"] for p in db.panels(board)]
    assert len(ids) == len(set(ids)), "duplicate panel ids"
    cells: dict[tuple[int, int], str] = {}
    for panel in db.panels(board):
        pos = panel["gridPos"]
        assert 0 <= pos["x"] and pos["x"] + pos["w"] <= 24, panel["title"]
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = panel["title"]
    titles = [p["title"] for p in db.panels(board) if p["type"] != "row"]
    assert len(titles) == len(set(titles)), "panel titles are the allowed-empty keys"


def _documented_names() -> list[re.Pattern[str]]:
    """Metric names in the docs' tables; `X` in a name stands for each Web Vital."""
    text = "".join((ROOT / "docs" / name).read_text(encoding="utf-8")
                   for name in METRIC_DOCS if (ROOT / "docs" / name).exists())
    names = set(re.findall(r"`(metricsd_[a-z0-9_X]+)`", text))
    vitals = "|".join(VITALS)
    return [re.compile(re.escape(n).replace("X", f"(?:{vitals})") + "$") for n in names]


def _base_names(name: str) -> list[str]:
    return [name] + [name[: -len(s)] for s in SUFFIXES if name.endswith(s)]


def test_every_metric_a_dashboard_uses_is_documented() -> None:
    documented = _documented_names()
    undocumented = set()
    for board in BOARDS.values():
        for query in db.queries(board):
            for metric in _selectors(query.expr):
                if metric in PROMETHEUS_BUILTINS:
                    continue
                if not any(p.match(base) for base in _base_names(metric) for p in documented):
                    undocumented.add(f"{board['uid']} / {query.panel}: {metric}")
    assert sorted(undocumented) == []


def _selectors(expr: str) -> list[str]:
    names: list[str] = []

    def visit(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector) and node.name:
            names.append(node.name)

    promql_parser.walk(promql_parser.parse(db.substitute(expr)), visit)
    return names


def test_every_query_parses() -> None:
    failures = []
    for board in BOARDS.values():
        for query in db.queries(board):
            try:
                promql_parser.parse(db.substitute(query.expr))
            except ValueError as exc:
                failures.append(f"{board['uid']} / {query.panel} {query.ref}: {exc}")
    assert failures == []


def test_substitution_covers_grafana_variable_forms() -> None:
    expr = 'rate(x{a=~"$a", b=~"${b}", c=~"${c:regex}", d=~"[[d]]"}[$__rate_interval])'
    assert db.substitute(expr, {"a": "1"}) == 'rate(x{a=~"1", b=~".*", c=~".*", d=~".*"}[30s])'


def test_api_percentiles_both_ways() -> None:
    """Aggregated from histograms across instances and exact window quantiles per instance."""
    api = next(b for b in BOARDS.values() if b["uid"] == "metricsd-api")
    exprs = [q.expr for q in db.queries(api)]
    assert any(re.search(r"histogram_quantile\(0\.95, sum by \(le[,)]", e) for e in exprs)
    assert any("metricsd_api_request_window_seconds" in e and "instance" in e for e in exprs)


def test_web_vitals_thresholds_are_coloured_steps() -> None:
    vitals = next(b for b in BOARDS.values() if b["uid"] == "metricsd-web-vitals")
    steps = {}
    for panel in db.panels(vitals):
        match = re.match(r"(\w+) p75 by page", panel["title"])
        if match:
            thresholds = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
            steps[match.group(1)] = [(s["color"], s["value"]) for s in thresholds]
    # Google's good / poor boundaries (web.dev/articles/vitals).
    assert steps["LCP"] == [("green", None), ("orange", 2.5), ("red", 4.0)]
    assert steps["INP"] == [("green", None), ("orange", 0.2), ("red", 0.5)]
    assert steps["CLS"] == [("green", None), ("orange", 0.1), ("red", 0.25)]


def test_allowed_empty_entries_name_real_panels() -> None:
    titles = {(b["uid"], p["title"]) for b in BOARDS.values() for p in db.panels(b)}
    for entry in db.allowed_empty():
        assert (entry.dashboard, entry.panel) in titles, entry
        assert len(entry.reason) > 10, entry


def _yaml(path: str) -> Any:
    return yaml.safe_load((ROOT / path).read_text(encoding="utf-8"))


def test_grafana_provisioning_matches_dashboards_and_compose() -> None:
    datasources = _yaml("grafana/provisioning/datasources/prometheus.yml")["datasources"]
    prometheus = next(d for d in datasources if d["type"] == "prometheus")
    for board in BOARDS.values():
        ds_var = db.variables(board)["DS_PROMETHEUS"]
        assert ds_var["current"]["value"] == prometheus["uid"], board["uid"]
    compose = _yaml("docker-compose.yml")
    services = compose["services"]
    host = re.match(r"https?://([^:/]+)", prometheus["url"]).group(1)  # type: ignore[union-attr]
    assert host in services
    grafana_mounts = {}
    for volume in services["grafana"]["volumes"]:
        source, target = volume.split(":")[:2]
        grafana_mounts[target] = source
    assert grafana_mounts["/etc/grafana/provisioning"] == "./grafana/provisioning"
    providers = _yaml("grafana/provisioning/dashboards/metricsd.yml")["providers"]
    paths = {p["options"]["path"] for p in providers}
    assert any(grafana_mounts.get(path) == "./dashboards" for path in paths)
    home = services["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    directory, _, filename = home.rpartition("/")
    assert grafana_mounts[directory] == "./dashboards" and (db.DASHBOARDS / filename).exists()


def test_substitute_is_used_for_builtin_windows() -> None:
    assert "$" not in db.substitute("increase(x[$__range]) / $__range_s")
    assert Path(db.ALLOWED_EMPTY).exists()
