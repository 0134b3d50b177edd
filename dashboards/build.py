"""Generate the Grafana dashboards in this folder from one source.

One generator keeps panel ids unique, the grid packed, the datasource a variable and the
label filters identical on every query; hand-edited JSON drifts on all four. Run
`.venv/bin/python dashboards/build.py` after editing and commit the JSON it writes
(tests/deploy/test_dashboards.py fails when the JSON and this file disagree).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from metricsd.vitals import CORE, VITALS

HERE = Path(__file__).resolve().parent
# The classic JSON model that Grafana 12 writes (v42 is the last v1-API schema version).
SCHEMA_VERSION = 42
DS_VAR = "DS_PROMETHEUS"
DS = {"type": "prometheus", "uid": "${" + DS_VAR + "}"}
# uid of the datasource grafana/provisioning/datasources/prometheus.yml creates.
PROVISIONED_DS_UID = "prometheus"
GRID_WIDTH = 24

GREEN, ORANGE, RED, BLUE = "green", "orange", "red", "blue"
RATING_COLORS = {"good": GREEN, "needs-improvement": ORANGE, "poor": RED}

Json = dict[str, Any]


# --- targets and panels ----------------------------------------------------------------


@dataclass
class Q:
    """One PromQL query of a panel."""

    expr: str
    legend: str = ""
    instant: bool = False
    table: bool = False


def _target(query: Q, ref: str) -> Json:
    target: Json = {
        "datasource": DS,
        "editorMode": "code",
        "expr": query.expr,
        "legendFormat": query.legend or "__auto",
        "range": not query.instant,
        "instant": query.instant,
        "refId": ref,
    }
    if query.table:
        target["format"] = "table"
    return target


def _steps(*steps: tuple[str, float | None]) -> Json:
    return {"mode": "absolute", "steps": [{"color": c, "value": v} for c, v in steps]}


def _color_overrides(colors: dict[str, str]) -> list[Json]:
    return [
        {
            "matcher": {"id": "byName", "options": name},
            "properties": [{"id": "color", "value": {"fixedColor": color, "mode": "fixed"}}],
        }
        for name, color in colors.items()
    ]


@dataclass
class Panel:
    """A panel before layout: its kind, queries and the options Grafana keeps."""

    title: str
    kind: str
    queries: list[Q]
    description: str
    width: int = 12
    height: int = 8
    unit: str = "short"
    thresholds: Json | None = None
    options: Json = field(default_factory=dict)
    custom: Json = field(default_factory=dict)
    overrides: list[Json] = field(default_factory=list)
    transformations: list[Json] = field(default_factory=list)
    decimals: int | None = None
    min: float | None = None
    max: float | None = None

    def render(self, panel_id: int, x: int, y: int) -> Json:
        defaults: Json = {
            "unit": self.unit,
            "color": {"mode": "thresholds" if self.thresholds else "palette-classic"},
            "thresholds": self.thresholds or _steps((GREEN, None)),
            "custom": self.custom,
            "mappings": [],
        }
        if self.decimals is not None:
            defaults["decimals"] = self.decimals
        if self.min is not None:
            defaults["min"] = self.min
        if self.max is not None:
            defaults["max"] = self.max
        refs = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
        panel: Json = {
            "id": panel_id,
            "type": self.kind,
            "title": self.title,
            "description": self.description,
            "datasource": DS,
            "gridPos": {"h": self.height, "w": self.width, "x": x, "y": y},
            "fieldConfig": {"defaults": defaults, "overrides": self.overrides},
            "options": self.options,
            "targets": [_target(q, refs[i]) for i, q in enumerate(self.queries)],
        }
        if self.transformations:
            panel["transformations"] = self.transformations
        return panel


def timeseries(
    title: str, queries: list[Q], description: str, *, unit: str = "short", width: int = 12,
    stack: str | None = None, thresholds: Json | None = None, colors: dict[str, str] | None = None,
    min: float | None = 0, max: float | None = None,
) -> Panel:
    """Lines over time; thresholds, when given, are drawn as coloured areas."""
    custom: Json = {
        "drawStyle": "line",
        "lineWidth": 1,
        "fillOpacity": 10 if not stack else 60,
        "showPoints": "never",
        "spanNulls": False,
        "stacking": {"group": "A", "mode": stack or "none"},
        "thresholdsStyle": {"mode": "line+area" if thresholds else "off"},
        "axisSoftMin": 0,
    }
    return Panel(
        title, "timeseries", queries, description, width=width, unit=unit,
        thresholds=thresholds, custom=custom, min=min, max=max,
        overrides=_color_overrides(colors or {}),
        options={
            "legend": {"displayMode": "table", "placement": "bottom", "showLegend": True,
                       "calcs": ["lastNotNull", "max"]},
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
    )


def stat(
    title: str, query: Q, description: str, *, unit: str = "short", width: int = 6,
    thresholds: Json | None = None, decimals: int | None = None, height: int = 4,
) -> Panel:
    """One big number (or one per series) coloured by thresholds."""
    panel = Panel(
        title, "stat", [query], description, width=width, height=height, unit=unit,
        thresholds=thresholds or _steps((BLUE, None)), decimals=decimals,
        options={
            "colorMode": "background",
            "graphMode": "area",
            "justifyMode": "auto",
            "textMode": "value_and_name",
            "orientation": "auto",
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
        },
    )
    return panel


def bargauge(
    title: str, queries: list[Q], description: str, *, unit: str = "short", width: int = 12,
    thresholds: Json | None = None, height: int = 8, colors: dict[str, str] | None = None,
    max: float | None = None,
) -> Panel:
    """Horizontal bars, one per series, coloured by thresholds."""
    return Panel(
        title, "bargauge", queries, description, width=width, height=height, unit=unit,
        thresholds=thresholds, min=0, max=max, overrides=_color_overrides(colors or {}),
        options={
            "displayMode": "gradient",
            "orientation": "horizontal",
            "showUnfilled": True,
            "valueMode": "color",
            "namePlacement": "left",
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
        },
    )


def table(
    title: str, queries: list[Q], description: str, *, columns: dict[str, str],
    units: dict[str, str] | None = None, width: int = 24, height: int = 9,
    sort_by: str | None = None, hide: Iterable[str] = (),
) -> Panel:
    """Instant queries merged on their labels; `columns` renames 'Value #A' and labels."""
    if len(queries) == 1:  # Grafana names a single query's column "Value", not "Value #A"
        columns = {("Value" if k == "Value #A" else k): v for k, v in columns.items()}
        units = {("Value" if k == "Value #A" else k): v for k, v in (units or {}).items()}
        hide = ["Value" if name == "Value #A" else name for name in hide]
    renames = dict(columns)
    excluded = {"Time": True, "__name__": True, **{name: True for name in hide}}
    overrides = [
        {"matcher": {"id": "byName", "options": renames.get(name, name)},
         "properties": [{"id": "unit", "value": unit}]}
        for name, unit in (units or {}).items()
    ]
    options: Json = {"showHeader": True, "cellHeight": "sm",
                     "footer": {"show": False, "reducer": ["sum"], "fields": ""}}
    if sort_by:
        options["sortBy"] = [{"displayName": sort_by, "desc": True}]
    return Panel(
        title, "table", [Q(q.expr, q.legend, instant=True, table=True) for q in queries],
        description, width=width, height=height, overrides=overrides, options=options,
        custom={"align": "auto", "cellOptions": {"type": "auto"}, "inspect": False},
        transformations=[
            {"id": "merge", "options": {}},
            {"id": "organize", "options": {"excludeByName": excluded, "indexByName": {},
                                           "renameByName": renames}},
        ],
    )


# --- dashboards --------------------------------------------------------------------------


@dataclass
class Var:
    """A query template variable (multi-select, with All as the regex .*)."""

    name: str
    label: str
    query: str  # label_values(metric{...}, label)

    def render(self) -> Json:
        return {
            "name": self.name,
            "label": self.label,
            "type": "query",
            "datasource": DS,
            "definition": self.query,
            "query": {"query": self.query, "refId": "StandardVariableQuery"},
            "refresh": 2,  # on time range change: new services appear without a reload
            "regex": "",
            "sort": 1,
            "multi": True,
            "includeAll": True,
            "allValue": ".*",
            "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
            "options": [],
            "hide": 0,
        }


def _ds_variable() -> Json:
    return {
        "name": DS_VAR,
        "label": "Data source",
        "type": "datasource",
        "query": "prometheus",
        "regex": "",
        "refresh": 1,
        "hide": 0,
        "current": {"selected": False, "text": "Prometheus", "value": PROVISIONED_DS_UID},
        "options": [],
    }


@dataclass
class Dashboard:
    """Panels laid out in rows of the 24-column grid, with the shared variables."""

    uid: str
    title: str
    description: str
    tags: list[str]
    variables: list[Var]
    sections: list[tuple[str, list[Panel]]] = field(default_factory=list)

    def section(self, title: str, *panels: Panel) -> None:
        self.sections.append((title, list(panels)))

    def render(self) -> Json:
        panels: list[Json] = []
        next_id = 1
        y = 0
        for title, members in self.sections:
            panels.append({"id": next_id, "type": "row", "title": title, "collapsed": False,
                           "gridPos": {"h": 1, "w": GRID_WIDTH, "x": 0, "y": y}, "panels": []})
            next_id += 1
            y += 1
            x, row_height = 0, 0
            for panel in members:
                if x + panel.width > GRID_WIDTH:
                    x, y, row_height = 0, y + row_height, 0
                panels.append(panel.render(next_id, x, y))
                next_id += 1
                x += panel.width
                row_height = max(row_height, panel.height)
            y += row_height
        return {
            "__inputs": [{
                "name": DS_VAR,
                "label": "Prometheus",
                "description": "The Prometheus (or Thanos/Mimir) that scrapes metricsd",
                "type": "datasource",
                "pluginId": "prometheus",
                "pluginName": "Prometheus",
            }],
            "__requires": [
                {"type": "grafana", "id": "grafana", "name": "Grafana", "version": "11.0.0"},
                {"type": "datasource", "id": "prometheus", "name": "Prometheus",
                 "version": "1.0.0"},
                *({"type": "panel", "id": kind, "name": kind, "version": ""}
                  for kind in sorted({p["type"] for p in panels if p["type"] != "row"})),
            ],
            "annotations": {"list": [{
                "builtIn": 1,
                "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                "enable": True,
                "hide": True,
                "iconColor": "rgba(0, 211, 255, 1)",
                "name": "Annotations & Alerts",
                "type": "dashboard",
            }]},
            "description": self.description,
            "editable": True,
            "fiscalYearStartMonth": 0,
            "graphTooltip": 1,
            "id": None,
            "links": [{"asDropdown": True, "icon": "external link", "includeVars": True,
                       "keepTime": True, "tags": ["metricsd"], "title": "metricsd",
                       "type": "dashboards"}],
            "panels": panels,
            "refresh": "30s",
            "schemaVersion": SCHEMA_VERSION,
            "tags": self.tags,
            "templating": {"list": [_ds_variable(), *(v.render() for v in self.variables)]},
            "time": {"from": "now-1h", "to": "now"},
            "timepicker": {},
            "timezone": "browser",
            "title": self.title,
            "uid": self.uid,
            "version": 1,
        }


JOB = Var("job", "Job", "label_values(metricsd_build_info, job)")
INSTANCE = Var("instance", "Instance", 'label_values(metricsd_build_info{job=~"$job"}, instance)')
SCOPE = 'job=~"$job", instance=~"$instance"'
RATE = "$__rate_interval"


def api_dashboard() -> Dashboard:
    """Latency, traffic and errors of the services that post timings."""
    service = Var("service", "Service",
                  f"label_values(metricsd_api_requests_total{{{SCOPE}}}, service)")
    route = Var("route", "Route", f'label_values(metricsd_api_requests_total{{{SCOPE}, '
                                  f'service=~"$service"}}, route)')
    board = Dashboard(
        "metricsd-api", "metricsd / API latency",
        "Server-side API timings posted to /v1/beacons/timings: percentiles aggregated over "
        "every metricsd instance from the histograms, exact window percentiles per instance, "
        "traffic and errors.",
        ["metricsd", "api"], [JOB, INSTANCE, service, route],
    )
    sel = f'{SCOPE}, service=~"$service", route=~"$route"'
    buckets = f"rate(metricsd_api_request_duration_seconds_bucket{{{sel}}}[{RATE}])"
    requests = f"rate(metricsd_api_requests_total{{{sel}}}[{RATE}])"
    errors = f'rate(metricsd_api_requests_total{{{sel}, status_class="5xx"}}[{RATE}])'

    def hq(q: float, by: str, window: str = RATE) -> str:
        series = buckets.replace(f"[{RATE}]", f"[{window}]")
        return f"histogram_quantile({q}, sum by (le{by}) ({series}))"

    def error_ratio(by: str) -> str:
        # `or ... * 0` keeps routes with no 5xx at 0 instead of dropping them from the ratio.
        by_clause = f"sum by ({by}) " if by else "sum "
        return (f"({by_clause}({errors}) or {by_clause}({requests}) * 0) "
                f"/ {by_clause}({requests})")

    latency_steps = _steps((GREEN, None), (ORANGE, 0.3), (RED, 1.0))
    board.section(
        "Overview",
        stat("Requests / s", Q(f"sum({requests})"), "Requests per second over all "
             "selected services, routes and instances.", unit="reqps", decimals=1),
        stat("5xx error ratio", Q(error_ratio("")), "Share of requests answered 5xx.",
             unit="percentunit", decimals=2,
             thresholds=_steps((GREEN, None), (ORANGE, 0.01), (RED, 0.05))),
        stat("p95 latency (all instances)", Q(hq(0.95, "")), "histogram_quantile over the "
             "buckets summed across instances: the correct way to aggregate percentiles.",
             unit="s", thresholds=latency_steps),
        stat("p99 latency (all instances)", Q(hq(0.99, "")), "histogram_quantile over the "
             "buckets summed across instances.", unit="s", thresholds=latency_steps),
    )
    board.section(
        "Latency",
        timeseries("p50 / p95 / p99 per route (histograms, all instances)", [
            Q(hq(0.5, ", service, route"), "p50 {{service}} {{route}}"),
            Q(hq(0.95, ", service, route"), "p95 {{service}} {{route}}"),
            Q(hq(0.99, ", service, route"), "p99 {{service}} {{route}}"),
        ], "histogram_quantile over sum by (le, service, route): buckets of every instance "
           "are added first, so the percentile is that of all requests together. Accurate "
           "to the bucket width (5 ms … 30 s).", unit="s"),
        timeseries("p50 / p95 / p99 per instance (exact window)", [
            Q(f'max by (instance, service, route) (metricsd_api_request_window_seconds'
              f'{{{sel}, quantile="{q}"}})', f"p{int(q * 100)} {{{{instance}}}} "
              "{{service}} {{route}}")
            for q in (0.5, 0.95, 0.99)
        ], "Exact percentiles over each instance's sliding window (last N samples, no older "
           "than T). Exact per instance, but never average them across instances: use the "
           "panel on the left for that. max by drops the method label.", unit="s"),
        timeseries("Mean latency per route", [
            Q(f"sum by (service, route) (rate(metricsd_api_request_duration_seconds_sum"
              f"{{{sel}}}[{RATE}])) / sum by (service, route) (rate("
              f"metricsd_api_request_duration_seconds_count{{{sel}}}[{RATE}]))",
              "{{service}} {{route}}"),
        ], "Sum over count of the histograms: the mean, dominated by the slow tail.",
            unit="s"),
        timeseries("Latency distribution (share of requests per bucket)", [
            Q(f"sum by (le) ({buckets}) / scalar(sum({requests}))", "le {{le}}"),
        ], "Cumulative share of requests at or below each bucket bound (the SLO view: "
           "'95% under 300 ms').", unit="percentunit", max=1),
    )
    board.section(
        "Traffic and errors",
        timeseries("Request rate by status class", [
            Q(f"sum by (status_class) ({requests})", "{{status_class}}"),
        ], "Requests per second by status class (1xx … 5xx).", unit="reqps",
            stack="normal", colors={"2xx": GREEN, "3xx": BLUE, "4xx": ORANGE, "5xx": RED}),
        timeseries("5xx error ratio per route", [
            Q(error_ratio("service, route"), "{{service}} {{route}}"),
        ], "Share of requests answered 5xx, per route.", unit="percentunit",
            thresholds=_steps((GREEN, None), (ORANGE, 0.01), (RED, 0.05))),
        timeseries("Request rate per instance", [
            Q(f"sum by (instance) ({requests})", "{{instance}}"),
        ], "How the load balancer spreads requests over metricsd instances.", unit="reqps"),
        timeseries("5xx share of the current window per instance", [
            Q(f'sum by (instance, service, route) (metricsd_api_window_requests{{{sel}, '
              f'status_class="5xx"}}) / sum by (instance, service, route) '
              f"(metricsd_api_window_requests{{{sel}}})", "{{instance}} {{service}} {{route}}"),
        ], "The instant error ratio each instance's window sees (what metricsd's own alert "
           "rules use).", unit="percentunit"),
    )
    # The other columns are limited to the same 20 routes, or the merged table lists all.
    slowest = f"topk(20, {hq(0.95, ', service, route, method', '$__range')})"
    board.section(
        "Routes",
        table("Slowest routes (selected time range)", [
            Q(slowest),
            Q(f"{hq(0.99, ', service, route, method', '$__range')} and {slowest}"),
            Q(f"sum by (service, route, method) (increase(metricsd_api_requests_total"
              f"{{{sel}}}[$__range])) and {slowest}"),
            Q(f"(sum by (service, route, method) (increase(metricsd_api_requests_total{{{sel}, "
              f'status_class="5xx"}}[$__range])) or sum by (service, route, method) '
              f"(increase(metricsd_api_requests_total{{{sel}}}[$__range])) * 0) / "
              f"sum by (service, route, method) (increase(metricsd_api_requests_total"
              f"{{{sel}}}[$__range])) and {slowest}"),
        ], "The 20 routes with the highest p95 over the time range (all instances), with "
           "their p99, request count and 5xx ratio.",
            columns={"Value #A": "p95", "Value #B": "p99", "Value #C": "requests",
                     "Value #D": "5xx ratio"},
            units={"Value #A": "s", "Value #B": "s", "Value #D": "percentunit"},
            sort_by="p95"),
    )
    return board


# web-vitals name: (metric stem, window summary, Grafana unit, good, poor), from the one
# home of the thresholds (metricsd/vitals.py), for the vitals shown by default.
VITAL_THRESHOLDS = {
    name: (VITALS[name].histogram_name, VITALS[name].window_name,
           "s" if VITALS[name].unit else "none", VITALS[name].good, VITALS[name].poor)
    for name in CORE
}


def vitals_dashboard() -> Dashboard:
    """Core Web Vitals at p75 per page, rating shares and navigation types."""
    page = Var("page", "Page",
               f"label_values(metricsd_web_vitals_ratings_total{{{SCOPE}}}, page)")
    board = Dashboard(
        "metricsd-web-vitals", "metricsd / Web Vitals",
        "Browser Web Vitals posted to /v1/beacons/vitals: the 75th percentile per page "
        "(the one Google's Core Web Vitals assessment uses) against the good / poor "
        "thresholds, rating shares and navigation types.",
        ["metricsd", "web-vitals"], [JOB, INSTANCE, page],
    )
    sel = f'{SCOPE}, page=~"$page"'
    p75_range: list[Panel] = []
    p75_time: list[Panel] = []
    for name, (stem, _, unit, good, poor) in VITAL_THRESHOLDS.items():
        steps = _steps((GREEN, None), (ORANGE, good), (RED, poor))
        shown = f"{good:g} s / {poor:g} s" if unit == "s" else f"{good:g} / {poor:g}"
        p75_range.append(bargauge(
            f"{name} p75 by page", [Q(
                f"histogram_quantile(0.75, sum by (le, page) (increase({stem}_bucket{{{sel}}}"
                f"[$__range])))", "{{page}}", instant=True)],
            f"p75 of {name} over the time range, all instances (histogram_quantile). Green up "
            f"to good, orange to poor, red beyond: {shown}.",
            unit=unit, thresholds=steps, width=8, max=poor * 1.5))
        p75_time.append(timeseries(
            f"{name} p75 over time", [
                Q(f"histogram_quantile(0.75, sum by (le, page) (rate({stem}_bucket{{{sel}}}"
                  f"[{RATE}])))", "{{page}}"),
            ], f"p75 of {name} per page (all instances); the coloured bands are Google's "
               f"good / needs-improvement / poor ranges ({shown}).",
            unit=unit, thresholds=steps, width=8))
    board.section("p75 per page (time range)", *p75_range)
    board.section("p75 over time", *p75_time)
    window_queries = [
        Q(f'max by (instance, page) ({window}{{{sel}, quantile="0.75"}})')
        for _, window, *_ in VITAL_THRESHOLDS.values()
    ]
    board.section(
        "Per instance (exact window)",
        table("Window p75 per instance and page", window_queries,
              "Exact p75 over each instance's sliding window. Per instance only: "
              "percentiles cannot be averaged across instances.",
              columns={f"Value #{chr(65 + i)}": name for i, name in enumerate(VITAL_THRESHOLDS)},
              units={f"Value #{chr(65 + i)}": unit
                     for i, (_, _, unit, *_rest) in enumerate(VITAL_THRESHOLDS.values())}),
    )
    ratings = f"metricsd_web_vitals_ratings_total{{{sel}}}"
    board.section(
        "Ratings",
        bargauge("Share of good / needs-improvement / poor", [
            Q(f"sum by (metric, rating) (increase({ratings}[$__range])) / ignoring (rating) "
              f"group_left sum by (metric) (increase({ratings}[$__range]))",
              "{{metric}} {{rating}}", instant=True),
        ], "Share of reports by rating and metric over the time range, as web-vitals rated "
           "them in the browser.", unit="percentunit", max=1, height=10,
            thresholds=_steps((BLUE, None))),
        timeseries("Poor share over time", [
            Q(f'(sum by (metric) (rate(metricsd_web_vitals_ratings_total{{{sel}, '
              f'rating="poor"}}[{RATE}])) or sum by (metric) (rate({ratings}[{RATE}])) * 0) '
              f"/ sum by (metric) (rate({ratings}[{RATE}]))", "{{metric}}"),
        ], "Share of reports rated poor, per metric.", unit="percentunit",
            thresholds=_steps((GREEN, None), (ORANGE, 0.1), (RED, 0.25))),
        timeseries("Reports by rating", [
            Q(f"sum by (rating) (rate({ratings}[{RATE}]))", "{{rating}}"),
        ], "Reports per second, stacked by rating.", unit="reqps", stack="normal",
            colors=RATING_COLORS),
        timeseries("Rating share in the current window per instance", [
            Q(f'sum by (instance, rating) (metricsd_web_vitals_window_ratings{{{sel}}}) / '
              f"ignoring (rating) group_left sum by (instance) "
              f"(metricsd_web_vitals_window_ratings{{{sel}}})", "{{instance}} {{rating}}"),
        ], "What each instance's sliding window holds, by rating.", unit="percentunit"),
    )
    # vitals (issue 17): the assessment per page and device, devices and connections, and
    # what the attribution build says about slow page views.
    board.section(
        "Core Web Vitals assessment (per page and device)",
        table("Pass / fail per page and device", [
            Q(f"max by (page, device) (metricsd_web_vitals_cwv_pass{{{sel}}})"),
        ], "1 when the window p75 of LCP, INP and CLS are all good on that page and device "
           "class, 0 when not (any instance failing shows 0). Pages with fewer than "
           "ingest.vitals_min_page_views page views in the window are not judged.",
            columns={"Value #A": "passes"}, width=12),
        bargauge("Good share per vital and device (window)", [
            Q(f'avg by (metric, device) (metricsd_web_vitals_window_rating_ratio{{{sel}, '
              f'rating="good", metric=~"LCP|INP|CLS"}})', "{{metric}} {{device}}",
              instant=True),
        ], "Share of the window's page views rated good; CrUX's view of the p75 rule is that "
           "at least 75 % are good.", unit="percentunit", max=1,
            thresholds=_steps((RED, None), (ORANGE, 0.5), (GREEN, 0.75))),
        bargauge("Reports by device and connection type", [
            Q(f"sum by (device, connection) (increase({ratings}[$__range]))",
              "{{device}} {{connection}}", instant=True),
        ], "Device class (from the client, client hints or the User-Agent) and effective "
           "connection type (navigator.connection).", thresholds=_steps((BLUE, None))),
        table("Attribution sub-parts p75 per page", [
            Q(f'max by (page, part) (metricsd_web_vitals_attribution_window_seconds{{{sel}, '
              f'quantile="0.75"}})'),
        ], "Window p75 of INP's input delay, processing duration and presentation delay, and "
           "of LCP's time to first byte, resource load delay and duration and render delay "
           "(web-vitals attribution build). Which elements: GET /v1/vitals/attribution.",
            columns={"Value #A": "p75"}, units={"Value #A": "s"}, width=12),
    )
    board.section(
        "Navigation types",
        bargauge("Reports by navigation type", [
            Q(f"sum by (navigation_type) (increase({ratings}[$__range]))",
              "{{navigation_type}}", instant=True),
        ], "navigate, reload, back-forward, back-forward-cache, prerender, restore: a "
           "bfcache restore is instant, so many of those pull the percentiles down.",
            thresholds=_steps((BLUE, None))),
        table("Rating share per navigation type", [
            Q(f"sum by (metric, navigation_type) (increase(metricsd_web_vitals_ratings_total"
              f'{{{sel}, rating="good"}}[$__range])) / sum by (metric, navigation_type) '
              f"(increase({ratings}[$__range]))"),
            Q(f"sum by (metric, navigation_type) (increase(metricsd_web_vitals_ratings_total"
              f'{{{sel}, rating="poor"}}[$__range])) / sum by (metric, navigation_type) '
              f"(increase({ratings}[$__range]))"),
            Q(f"sum by (metric, navigation_type) (increase({ratings}[$__range]))"),
        ], "Good and poor share per metric and navigation type over the time range.",
            columns={"Value #A": "good", "Value #B": "poor", "Value #C": "reports"},
            units={"Value #A": "percentunit", "Value #B": "percentunit"}, width=12),
    )
    return board


def self_dashboard() -> Dashboard:
    """The daemon's own health: ingest, series budget, scrapes and alert delivery."""
    board = Dashboard(
        "metricsd-self", "metricsd / daemon",
        "metricsd itself: beacons accepted and rejected, the series budget, PostgreSQL "
        "collector and /metrics scrape durations, and alert notifications.",
        ["metricsd", "self"], [JOB, INSTANCE],
    )
    board.section(
        "Targets",
        stat("metricsd up", Q(f"up{{{SCOPE}}}", "{{instance}}"), "1 when Prometheus "
             "scraped the instance successfully.", width=8,
             thresholds=_steps((RED, None), (GREEN, 1))),
        stat("Series used", Q(f"sum by (instance) (metricsd_series{{{SCOPE}}}) / on (instance) "
                              f"metricsd_series_limit{{{SCOPE}}}", "{{instance}}"),
             "Live series over ingest.max_series; at 100% new series are dropped.",
             unit="percentunit", width=8,
             thresholds=_steps((GREEN, None), (ORANGE, 0.8), (RED, 0.95))),
        stat("Version", Q(f"count by (version) (metricsd_build_info{{{SCOPE}}})",
                          "{{version}}"), "Instances per metricsd version.", width=8),
    )
    board.section(
        "Ingest",
        timeseries("Items accepted / s", [
            Q(f"sum by (instance, type) (rate(metricsd_ingest_accepted_total{{{SCOPE}}}"
              f"[{RATE}]))", "{{instance}} {{type}}"),
        ], "Beacon items written to the store, per instance and beacon type.", unit="cps"),
        timeseries("Rejected / s by reason", [
            Q(f"sum by (type, reason) (rate(metricsd_ingest_rejected_total{{{SCOPE}}}"
              f"[{RATE}]))", "{{type}} {{reason}}"),
        ], "Items or whole requests refused, by reason (bad JSON, missing field, "
           "unauthorised, too large...).", unit="cps"),
        timeseries("Beacon requests by response code", [
            Q(f"sum by (type, code) (rate(metricsd_ingest_requests_total{{{SCOPE}}}"
              f"[{RATE}]))", "{{type}} {{code}}"),
        ], "HTTP requests to /v1/beacons/* per response code.", unit="reqps"),
        timeseries("Rate limited and duplicate reports", [
            Q(f"sum by (type) (rate(metricsd_ingest_rate_limited_total{{{SCOPE}}}[{RATE}]))",
              "429 {{type}}"),
            Q(f"sum by (action) (rate(metricsd_ingest_vitals_duplicates_total{{{SCOPE}}}"
              f"[{RATE}]))", "duplicate vitals {{action}}"),
        ], "Requests answered 429, and web-vitals reports of an id already seen (updated "
           "in place or ignored).", unit="cps"),
    )
    board.section(
        "Series budget",
        timeseries("Live series per family", [
            Q(f"sum by (family) (metricsd_series{{{SCOPE}}})", "{{family}}"),
            Q(f"max(metricsd_series_limit{{{SCOPE}}})", "limit (per instance)"),
        ], "Series kept per family against ingest.max_series (shared by all families).",
            stack=None),
        timeseries("Dropped samples and expired series / s", [
            Q(f"sum by (family) (rate(metricsd_series_dropped_samples_total{{{SCOPE}}}"
              f"[{RATE}]))", "dropped {{family}}"),
            Q(f"sum by (family) (rate(metricsd_series_expired_total{{{SCOPE}}}[{RATE}]))",
              "expired {{family}}"),
        ], "Samples refused because max_series was reached (raise it or normalise routes), "
           "and idle series removed.", unit="cps"),
    )
    board.section(
        "Scrapes",
        timeseries("/metrics scrape duration (seen by Prometheus)", [
            Q(f"scrape_duration_seconds{{{SCOPE}}}", "{{instance}}"),
        ], "How long Prometheus waits for metricsd's /metrics.", unit="s"),
        timeseries("Samples per /metrics scrape", [
            Q(f"scrape_samples_scraped{{{SCOPE}}}", "{{instance}}"),
        ], "Grows with the number of series; check against max_series."),
        timeseries("PostgreSQL collector duration", [
            Q(f"max by (instance, target, collector) "
              f"(metricsd_pg_collector_duration_seconds{{{SCOPE}}})",
              "{{instance}} {{target}} {{collector}}"),
        ], "Wall time of each collector's latest scrape of each target (the scheduled "
           "jobs; /metrics only reads their snapshots).", unit="s"),
        timeseries("PostgreSQL collectors failing", [
            Q(f"count by (instance) (metricsd_pg_collector_success{{{SCOPE}}} == 0) "
              f"or count by (instance) (metricsd_pg_collector_success{{{SCOPE}}}) * 0",
              "{{instance}}"),
        ], "Collectors whose latest scrape did not succeed (0 when all are fine)."),
    )
    board.section(
        "Alerting (metricsd's own rule evaluation)",
        timeseries("Alert notifications / s", [
            Q(f"sum by (receiver, outcome) (rate(metricsd_alert_notifications_total"
              f"{{{SCOPE}}}[{RATE}]))", "{{receiver}} {{outcome}}"),
        ], "Notifications sent per receiver and outcome: success, failure (after every "
           "attempt), fallback, dead_letter.", unit="cps",
            colors={"success": GREEN, "failure": RED}),
        timeseries("Alerts by state", [
            Q(f"sum by (state) (metricsd_alerts{{{SCOPE}}})", "{{state}}"),
        ], "Alerts pending, firing and resolved in metricsd's engine.", stack="normal",
            colors={"firing": RED, "pending": ORANGE, "resolved": GREEN}),
        timeseries("Receivers up", [
            Q(f"min by (receiver) (metricsd_alert_receiver_up{{{SCOPE}}})", "{{receiver}}"),
        ], "0 from a receiver's first failed attempt until it delivers again.", min=0, max=1,
            thresholds=_steps((RED, None), (GREEN, 1))),
        timeseries("Rule evaluation duration", [
            Q(f"sum by (instance) (rate(metricsd_alert_evaluation_duration_seconds_sum"
              f"{{{SCOPE}}}[{RATE}])) / sum by (instance) (rate("
              f"metricsd_alert_evaluation_duration_seconds_count{{{SCOPE}}}[{RATE}]))",
              "{{instance}}"),
        ], "Mean time per evaluation tick of alerts.yml.", unit="s"),
    )
    return board


def postgres_dashboard() -> Dashboard:
    """Statements, indexes, connections, cache and replication of each PostgreSQL target."""
    target = Var("target", "Target", f"label_values(metricsd_pg_up{{{SCOPE}}}, target)")
    board = Dashboard(
        "metricsd-postgres", "metricsd / PostgreSQL",
        "What metricsd's collectors read from each PostgreSQL target: statements "
        "(pg_stat_statements), indexes, tables, connections, cache and replication.",
        ["metricsd", "postgres"], [JOB, INSTANCE, target],
    )
    sel = f'{SCOPE}, target=~"$target"'
    stmt = f'{sel}, queryid!="other"'
    statement_keys = "target, datname, user, queryid, toplevel"
    # datname: set only on targets with `databases:` (empty elsewhere, which matches too).
    index_keys = "target, datname, schema, table, index"
    table_keys = "target, datname, schema, table"
    interval = f"metricsd_pg_statements_interval_seconds{{{sel}}}"

    def per_second(metric: str, window: str | None = None) -> str:
        # Statement gauges hold one collector interval each: divide by its length for a
        # rate; over a range, ratio of sums weighs every interval by its length.
        if window is None:
            return f"{metric}{{{stmt}}} / on (target) group_left {interval}"
        return (f"sum_over_time({metric}{{{stmt}}}[{window}]) / on (target) group_left "
                f"sum_over_time({interval}[{window}])")

    board.section(
        "Targets",
        stat("Target up", Q(f"metricsd_pg_up{{{sel}}}", "{{target}}"), "1 when every "
             "collector's latest scrape reached the server and succeeded.", width=6,
             thresholds=_steps((RED, None), (GREEN, 1))),
        stat("Connections used", Q(f"metricsd_pg_activity_utilization_ratio{{{sel}}}",
                                   "{{target}}"),
             "Client backends over max_connections (minus the reserved ones).",
             unit="percentunit", width=6,
             thresholds=_steps((GREEN, None), (ORANGE, 0.7), (RED, 0.9))),
        stat("Cache hit ratio (time range)", Q(
            f"sum by (target) (increase(metricsd_pg_database_blocks_hit_bytes_total{{{sel}}}"
            f"[$__range])) / (sum by (target) (increase("
            f"metricsd_pg_database_blocks_hit_bytes_total{{{sel}}}[$__range])) + sum by "
            f"(target) (increase(metricsd_pg_database_blocks_read_bytes_total{{{sel}}}"
            f"[$__range])))", "{{target}}"),
             "Buffer hits over hits + reads in the time range; below ~99% on an OLTP "
             "database, the working set does not fit in shared_buffers.",
             unit="percentunit", width=6, decimals=2,
             thresholds=_steps((RED, None), (ORANGE, 0.9), (GREEN, 0.99))),
        stat("Standbys connected", Q(f"metricsd_pg_replication_standbys{{{sel}}}",
                                     "{{target}}"),
             "Standbys streaming from this primary.", width=6),
    )
    board.section(
        "Connections, cache and replication",
        timeseries("Connections vs max", [
            Q(f"sum by (target, state) (metricsd_pg_activity_connections{{{sel}}})",
              "{{target}} {{state}}"),
            Q(f"metricsd_pg_activity_max_connections{{{sel}}}", "{{target}} max"),
        ], "Client backends by state against max_connections (minus reserved slots).",
            width=8),
        timeseries("Cache hit ratio per database", [
            Q(f"sum by (target, datname) (rate(metricsd_pg_database_blocks_hit_bytes_total"
              f"{{{sel}}}[{RATE}])) / (sum by (target, datname) (rate("
              f"metricsd_pg_database_blocks_hit_bytes_total{{{sel}}}[{RATE}])) + sum by "
              f"(target, datname) (rate(metricsd_pg_database_blocks_read_bytes_total"
              f"{{{sel}}}[{RATE}])))", "{{target}} {{datname}}"),
        ], "Buffer hit ratio per database.", unit="percentunit", width=8, min=None, max=1),
        timeseries("Oldest transaction and locks", [
            Q(f"metricsd_pg_activity_oldest_transaction_seconds{{{sel}}}",
              "{{target}} oldest transaction"),
            Q(f"metricsd_pg_activity_oldest_query_seconds{{{sel}}}", "{{target}} oldest query"),
        ], "Long transactions hold back vacuum and replication; long queries hold locks.",
            unit="s", width=8),
        timeseries("Replication lag (time)", [
            Q(f"max by (target, standby, stage) (metricsd_pg_replication_lag_seconds"
              f"{{{sel}}})", "{{target}} → {{standby}} {{stage}}"),
            Q(f"metricsd_pg_replication_replay_delay_seconds{{{sel}}}",
              "{{target}} replay delay (standby)"),
        ], "On a primary: write/flush/replay lag of each standby. On a standby: time since "
           "the last replayed commit.", unit="s"),
        timeseries("Replication lag (bytes)", [
            Q(f"max by (target, standby, stage) (metricsd_pg_replication_lag_bytes{{{sel}}})",
              "{{target}} → {{standby}} {{stage}}"),
            Q(f"metricsd_pg_replication_replay_lag_bytes{{{sel}}}",
              "{{target}} received, not replayed (standby)"),
        ], "WAL each standby is behind.", unit="bytes"),
    )
    # Other columns are limited to the same 20 statements, or the merged table lists all.
    top_time = f"topk(20, {per_second('metricsd_pg_statements_time_seconds', '$__range')})"
    top_calls = f"topk(20, {per_second('metricsd_pg_statements_calls', '$__range')})"
    board.section(
        "Statements",
        table("Top statements by time", [
            Q(top_time),
            Q(f"{per_second('metricsd_pg_statements_calls', '$__range')} and {top_time}"),
            Q(f"max_over_time(metricsd_pg_statements_mean_seconds{{{stmt}}}[$__range]) "
              f"and {top_time}"),
        ], "Statements by execution time per second over the time range (1.0 = one "
           "backend busy all the time), from pg_stat_statements via metricsd's top-N.",
            columns={"Value #A": "time / s", "Value #B": "calls / s",
                     "Value #C": "max interval mean"},
            units={"Value #A": "s", "Value #B": "cps", "Value #C": "s"}, width=12,
            sort_by="time / s"),
        table("Top statements by calls", [
            Q(top_calls),
            Q(f"{per_second('metricsd_pg_statements_time_seconds', '$__range')} "
              f"and {top_calls}"),
            Q(f"{per_second('metricsd_pg_statements_rows', '$__range')} and {top_calls}"),
        ], "Statements by calls per second over the time range.",
            columns={"Value #A": "calls / s", "Value #B": "time / s", "Value #C": "rows / s"},
            units={"Value #A": "cps", "Value #B": "s"}, width=12, sort_by="calls / s"),
        table("Slow statements", [
            Q(f"metricsd_pg_statements_mean_seconds{{{stmt}}} and on ({statement_keys}) "
              f"(metricsd_pg_statements_slow{{{stmt}}} == 1)"),
            Q(f"metricsd_pg_statements_calls{{{stmt}}} and on ({statement_keys}) "
              f"(metricsd_pg_statements_slow{{{stmt}}} == 1)"),
            Q(f"metricsd_pg_statements_query_info{{{stmt}}} and on ({statement_keys}) "
              f"(metricsd_pg_statements_slow{{{stmt}}} == 1)"),
        ], "Statements whose mean time in the latest interval exceeds postgres.slow_query_ms, "
           "with their (normalised) query text.",
            columns={"Value #A": "mean", "Value #B": "calls"}, units={"Value #A": "s"},
            hide=["Value #C"], sort_by="mean", height=10),
        timeseries("Statement time per second (top 10)", [
            Q(f"topk(10, {per_second('metricsd_pg_statements_time_seconds')})",
              "{{datname}} {{queryid}}"),
        ], "Execution time per second of the ten busiest statements.", unit="s"),
        timeseries("pg_stat_statements entries", [
            Q(f"metricsd_pg_statements_tracked{{{sel}}} / on (target) "
              f"metricsd_pg_statements_max_entries{{{sel}}}", "{{target}} used"),
        ], "Entries over pg_stat_statements.max: when full, entries are evicted and "
           "statistics get lost (see metricsd_pg_statements_dealloc_total).",
            unit="percentunit", max=1),
    )
    board.section(
        "Indexes and tables",
        table("Unused indexes", [
            Q(f"metricsd_pg_indexes_size_bytes{{{sel}}} and on ({index_keys}) "
              f"(metricsd_pg_indexes_unused{{{sel}}} == 1)"),
        ], "No scan since the statistics were reset and no constraint behind them: each "
           "costs writes and space. Check metricsd_pg_indexes_stats_age_seconds first.",
            columns={"Value #A": "size"}, units={"Value #A": "bytes"}, width=12,
            sort_by="size"),
        table("Invalid indexes", [
            Q(f"metricsd_pg_indexes_size_bytes{{{sel}}} and on ({index_keys}) "
              f"(metricsd_pg_indexes_valid{{{sel}}} == 0)"),
        ], "Left by a failed CREATE INDEX CONCURRENTLY: maintained on every write, never "
           "used. Drop and recreate.", columns={"Value #A": "size"},
            units={"Value #A": "bytes"}, width=12),
        table("Bloated indexes", [
            Q(f"topk(20, metricsd_pg_indexes_bloat_bytes{{{sel}}})"),
            Q(f"metricsd_pg_indexes_bloat_ratio{{{sel}}}"),
            Q(f"metricsd_pg_indexes_size_bytes{{{sel}}} and on ({index_keys}) "
              f"metricsd_pg_indexes_bloat_bytes{{{sel}}}"),
        ], "Estimated bloat of btree indexes at least postgres.bloat_min_bytes large "
           "(statistics-based): REINDEX CONCURRENTLY the big ones.",
            columns={"Value #A": "bloat", "Value #B": "bloat ratio", "Value #C": "size"},
            units={"Value #A": "bytes", "Value #B": "percentunit", "Value #C": "bytes"},
            width=12, sort_by="bloat"),
        table("Missing-index candidates", [
            Q(f"metricsd_pg_tables_live_tuples{{{sel}}} and on ({table_keys}) "
              f"(metricsd_pg_tables_missing_index{{{sel}}} == 1)"),
            Q(f"rate(metricsd_pg_tables_seq_scans_total{{{sel}}}[$__range]) and on "
              f"({table_keys}) (metricsd_pg_tables_missing_index{{{sel}}} == 1)"),
            Q(f"rate(metricsd_pg_tables_seq_tuples_read_total{{{sel}}}[$__range]) and on "
              f"({table_keys}) (metricsd_pg_tables_missing_index{{{sel}}} == 1)"),
        ], "Tables with at least postgres.missing_index_min_rows rows read mostly by "
           "sequential scans: look at the slow statements that touch them.",
            columns={"Value #A": "live rows", "Value #B": "seq scans / s",
                     "Value #C": "rows read by seq scans / s"},
            units={"Value #B": "cps", "Value #C": "cps"}, width=12,
            sort_by="rows read by seq scans / s"),
        timeseries("Rows read by sequential scans / s (top 10 tables)", [
            Q(f"topk(10, rate(metricsd_pg_tables_seq_tuples_read_total{{{sel}}}[{RATE}]))",
              "{{target}} {{schema}}.{{table}}"),
        ], "Where the sequential-scan I/O goes.", unit="cps"),
        timeseries("Dead tuples (top 10 tables)", [
            Q(f"topk(10, metricsd_pg_tables_dead_tuples{{{sel}}})",
              "{{target}} {{schema}}.{{table}}"),
        ], "Rows waiting for vacuum; steady growth means autovacuum is not keeping up."),
    )
    board.section(
        "Transactions and collectors",
        timeseries("Commits and rollbacks / s", [
            Q(f"sum by (target, datname) (rate(metricsd_pg_database_commits_total{{{sel}}}"
              f"[{RATE}]))", "{{target}} {{datname}} commits"),
            Q(f"sum by (target, datname) (rate(metricsd_pg_database_rollbacks_total{{{sel}}}"
              f"[{RATE}]))", "{{target}} {{datname}} rollbacks"),
        ], "Transactions per second by outcome.", unit="cps", width=8),
        timeseries("Collector duration", [
            Q(f"max by (target, collector) (metricsd_pg_collector_duration_seconds{{{sel}}})",
              "{{target}} {{collector}}"),
        ], "Wall time of each collector's latest scrape (runs on metricsd's schedule, "
           "never at /metrics time).", unit="s", width=8),
        table("Collector status", [
            Q(f"metricsd_pg_collector_status{{{sel}}} == 1"),
        ], "Current status of each collector: ok, connection_error, timeout, "
           "missing_extension, insufficient_privilege, query_error, unsupported_version.",
            columns={}, hide=["Value #A"], width=8),
    )
    return board


def operations_dashboard() -> Dashboard:
    """Operations against their objectives, and cache hit ratios (issue 16)."""
    service = Var("service", "Service",
                  f"label_values(metricsd_operations_total{{{SCOPE}}}, service)")
    operation = Var("operation", "Operation",
                    f'label_values(metricsd_operations_total{{{SCOPE}, service=~"$service"}}, '
                    "operation)")
    cache_service = Var("cache_service", "Cache service",
                        f"label_values(metricsd_cache_requests_total{{{SCOPE}}}, service)")
    board = Dashboard(
        "metricsd-operations", "metricsd / Operations and caches",
        "Operations posted to /v1/beacons/operations (WebSocket delivery, AI generation, "
        "exports) against their objectives, and cache statistics posted to "
        "/v1/beacons/cache.",
        ["metricsd", "operations", "cache"], [JOB, INSTANCE, service, operation, cache_service],
    )
    sel = f'{SCOPE}, service=~"$service", operation=~"$operation"'
    buckets = f"rate(metricsd_operation_duration_seconds_bucket{{{sel}}}[{RATE}])"
    total = f"rate(metricsd_operations_total{{{sel}}}[{RATE}])"
    board.section(
        "Operations",
        timeseries("p50 / p95 / p99 per operation (histograms, all instances)", [
            Q(f"histogram_quantile({q}, sum by (le, service, operation) ({buckets}))",
              f"p{int(q * 100)} {{{{service}}}} {{{{operation}}}}")
            for q in (0.5, 0.95, 0.99)
        ], "histogram_quantile over the buckets of every instance: accurate to the bucket "
           "width (1 ms … 60 s plus each objective).", unit="s"),
        timeseries("Window quantile against objective (per instance)", [
            Q(f"max by (instance, service, operation, quantile) "
              f"(metricsd_operation_window_seconds{{{sel}}} and on (operation, quantile) "
              f"metricsd_operation_objective_seconds{{{SCOPE}}})",
              "{{instance}} {{service}} {{operation}} q{{quantile}}"),
            Q(f'max by (operation, quantile) (metricsd_operation_objective_seconds{{{SCOPE}, '
              f'operation=~"$operation"}})', "objective {{operation}} q{{quantile}}"),
        ], "The exact window quantile each objective is set for, and the objective "
           "(ingest.operations.<name>.objective_ms): the shipped alert "
           "OperationObjectiveMissed fires after 5 minutes above it.", unit="s"),
        timeseries("Operations by outcome", [
            Q(f"sum by (outcome) ({total})", "{{outcome}}"),
        ], "ok, error, timeout, cancelled per second.", unit="ops", stack="normal",
            colors={"ok": GREEN, "error": RED, "timeout": ORANGE, "cancelled": BLUE}),
        timeseries("Failed share per operation", [
            Q(f'(sum by (service, operation) (rate(metricsd_operations_total{{{sel}, '
              f'outcome!="ok"}}[{RATE}])) or sum by (service, operation) ({total}) * 0) / '
              f"sum by (service, operation) ({total})", "{{service}} {{operation}}"),
        ], "Share of operations that ended in error, timeout or cancellation.",
            unit="percentunit", max=1),
    )
    csel = f'{SCOPE}, service=~"$cache_service"'
    requests = f"rate(metricsd_cache_requests_total{{{csel}}}[{RATE}])"
    ratio_steps = _steps((RED, None), (ORANGE, 0.8), (GREEN, 0.9))
    board.section(
        "Caches",
        timeseries("Hit ratio per cache (all instances)", [
            Q(f'sum by (service, cache) (rate(metricsd_cache_requests_total{{{csel}, '
              f'result="hit"}}[{RATE}])) / sum by (service, cache) ({requests})',
              "{{service}} {{cache}}"),
        ], "Hits over lookups from the counters; the alert CacheHitRatioLow uses each "
           "instance's window ratio (under 80% for 15 minutes).", unit="percentunit",
            min=0, max=1, thresholds=ratio_steps),
        timeseries("Lookups per cache", [
            Q(f"sum by (service, cache, result) ({requests})",
              "{{service}} {{cache}} {{result}}"),
        ], "Hits and misses per second.", unit="ops", colors={}),
        timeseries("Entries", [
            Q(f"max by (service, cache) (metricsd_cache_entries{{{csel}}})",
              "{{service}} {{cache}}"),
        ], "Entries at each cache's last report.", unit="short"),
        timeseries("Size", [
            Q(f"max by (service, cache) (metricsd_cache_size_bytes{{{csel}}})",
              "{{service}} {{cache}}"),
        ], "Bytes at each cache's last report (when the client knows it).", unit="bytes"),
        timeseries("Evictions per second", [
            Q(f"sum by (service, cache) (rate(metricsd_cache_evictions_total{{{csel}}}"
              f"[{RATE}]))", "{{service}} {{cache}}"),
        ], "Evictions reported by clients; many, with entries at the cache's maximum, "
           "mean the cache is too small. Top keys: the overview page or GET /v1/cache.",
            unit="ops"),
        timeseries("Window hit ratio (per instance)", [
            Q(f"metricsd_cache_window_hit_ratio{{{csel}}}",
              "{{instance}} {{service}} {{cache}}"),
        ], "What the alert rule reads: hits over lookups in the reports of the window.",
            unit="percentunit", min=0, max=1, thresholds=ratio_steps),
    )
    return board


def render_all() -> dict[str, Json]:
    """File name -> dashboard JSON."""
    return {
        "api.json": api_dashboard().render(),
        "web-vitals.json": vitals_dashboard().render(),
        "postgres.json": postgres_dashboard().render(),
        "metricsd.json": self_dashboard().render(),
        "operations.json": operations_dashboard().render(),
    }


def dump(board: Json) -> str:
    return json.dumps(board, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    """Write every dashboard; with --check, only report files that differ."""
    check = "--check" in argv
    stale = []
    for name, board in render_all().items():
        path = HERE / name
        text = dump(board)
        if check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(name)
        else:
            path.write_text(text, encoding="utf-8")
    if stale:
        print(f"out of date: {', '.join(stale)} (run dashboards/build.py)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
