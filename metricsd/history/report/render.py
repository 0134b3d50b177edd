"""A report as HTML (inline SVG, no scripts), Markdown or JSON."""

from __future__ import annotations

import json
from collections.abc import Callable
from html import escape
from typing import Any

FORMATS = ("html", "markdown", "json")


def _num(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if abs(value) >= 100 or digits == 0:
            return f"{value:,.0f}"
        return f"{value:,.{digits}f}" if abs(value) >= 1 else f"{value:.3g}"
    return str(value)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:+.0%}" if abs(value) < 100 else "new"


def _met(value: bool | None) -> str:
    return {True: "met", False: "MISSED", None: "no data"}[value]


def _short(text: str, n: int = 80) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= n else flat[: n - 1] + "..."


Row = list[str]


def _sections(r: dict[str, Any]) -> list[tuple[str, Row, list[Row]]]:
    """(heading, header, rows) in reading order; shared by HTML and Markdown."""
    out: list[tuple[str, Row, list[Row]]] = []
    out.append(("Targets, week over week", ["target", "goal", "this period", "before", "",
                                             "before", "method"],
                [[t["name"], t["target"], _num(t["value"], 2), _num(t["previous"], 2),
                  _met(t["met"]), _met(t["previous_met"]), t["method"]] for t in r["targets"]]))
    out.append(("Routes", ["route", "requests", "5xx", "p95 (ms)", "p99 (ms)",
                           "p95 before (ms)", "source"],
                [[f"{x.get('method', '')} {x.get('route', '')} ({x.get('service', '')})",
                  _num(x["requests"]), _num(x["errors_5xx"]), _num(x["p95_ms"]),
                  _num(x["p99_ms"]), _num(x["previous_p95_ms"]),
                  "prometheus" if x.get("source") else "history"] for x in r["routes"]]))
    out.append(("Pages (Web Vitals p75)", ["vital", "page", "samples", "p75", "p75 before",
                                           "good / needs improvement / poor"],
                [[x["metric"], x["page"], _num(x["samples"]), _num(x["p75"], 3),
                  _num(x["previous_p75"], 3),
                  " / ".join(_num(v) for v in x["ratings"].values())] for x in r["pages"]]))
    reg, imp = r["regressions"], r["improvements"]
    route_row: Callable[[dict[str, Any]], Row] = lambda x: [  # noqa: E731
        f"{x.get('method', '')} {x.get('route', '')} ({x.get('service', '')})",
        _num(x["previous_p95_ms"]), _num(x["p95_ms"]), _num(x["p95_change_ms"]),
        _pct(x["p95_change_ratio"]), _num(x["requests"])]
    head = ["route", "p95 before (ms)", "p95 now (ms)", "change (ms)", "change", "requests"]
    out.append(("Biggest regressions: routes", head, [route_row(x) for x in reg["routes"]]))
    out.append(("Biggest improvements: routes", head, [route_row(x) for x in imp["routes"]]))
    page_row: Callable[[dict[str, Any]], Row] = lambda x: [  # noqa: E731
        x["metric"], x["page"], _num(x["previous_p75"], 3), _num(x["p75"], 3),
        _pct(x["p75_change_ratio"]), _num(x["samples"])]
    head = ["vital", "page", "p75 before", "p75 now", "change", "samples"]
    out.append(("Biggest regressions: pages", head, [page_row(x) for x in reg["pages"]]))
    out.append(("Biggest improvements: pages", head, [page_row(x) for x in imp["pages"]]))
    stmt_row: Callable[[dict[str, Any]], Row] = lambda x: [  # noqa: E731
        _short(x["query"]), x["target"], _num(x["previous_total_seconds"]),
        _num(x["total_seconds"]), _num(x["previous_mean_ms"], 2), _num(x["mean_ms"], 2)]
    head = ["statement", "target", "total before (s)", "total now (s)", "mean before (ms)",
            "mean now (ms)"]
    out.append(("Statements: more total time", head,
                [stmt_row(x) for x in reg["statements_total"]]))
    out.append(("Statements: slower per call", head,
                [stmt_row(x) for x in reg["statements_mean"]]))
    out.append(("Statements: less total time", head,
                [stmt_row(x) for x in imp["statements_total"]]))
    out.append(("New statements", ["statement", "target", "calls", "total (s)", "mean (ms)"],
                [[_short(x["query"]), x["target"], _num(x["calls"]), _num(x["total_seconds"]),
                  _num(x["mean_ms"], 2)] for x in r["new_statements"]]))
    out.append(("Plan changes", ["target", "queryid", "old plan", "new plan", "regression"],
                [[x["target"], x["queryid"], str(x["old_hash"]), str(x["new_hash"]),
                  _num(x["regression"])] for x in r["plan_changes"]]))
    out.append(("Top statements by total time", ["statement", "target", "calls", "total (s)",
                                                 "share", "mean (ms)"],
                [[_short(x["query"]), x["target"], _num(x["calls"]), _num(x["total_seconds"]),
                  "-" if x["share"] is None else f"{x['share']:.0%}", _num(x["mean_ms"], 2)]
                 for x in r["top_statements"]]))
    idx = r["indexes"]
    out.append(("Unused indexes (no scans in the period)", ["target", "index", "table"],
                [[x["target"], x["index"], x["table"]] for x in idx["unused"]]))
    out.append(("Invalid indexes", ["target", "index", "table"],
                [[x["target"], x["index"], x["table"]] for x in idx["invalid"]]))
    out.append(("Index advice", ["target", "statement", "advice"],
                [[str(x.get("target", "")), _short(str(x.get("query", ""))),
                  _short(str(x.get("advice", x.get("statement", ""))), 120)]
                 for x in idx["advice"]]))
    a = r["alerts"]
    out.append(("Alerts", ["fired", "resolved", "notifications", "time firing (h)",
                           "mean time to resolve (min)"],
                [[_num(a["fired"]), _num(a["resolved"]), _num(a["notified"]),
                  _num(a["firing_seconds"] / 3600.0, 2),
                  _num(None if a["mean_time_to_resolve_seconds"] is None
                       else a["mean_time_to_resolve_seconds"] / 60.0)]]))
    out.append(("Noisiest rules", ["rule", "fired", "time firing (h)"],
                [[x["name"], _num(x["fired"]), _num(x["firing_seconds"] / 3600.0, 2)]
                 for x in a["noisiest"]]))
    q = r["quality"]
    out.append(("Data quality", ["statements lost to eviction", "samples refused (series cap)",
                                 "samples not rolled up", "minutes metricsd was down"],
                [[_num(q["statements_evicted"]), _num(q["samples_refused"]),
                  _num(q["history_samples_dropped"]), _num(q["down_minutes"])]]))
    out.append(("Gaps (metricsd not running)", ["from", "to", "minutes"],
                [[g["from"], g["to"], _num(g["minutes"])] for g in q["gaps"]]))
    return out


def svg_chart(points: list[dict[str, Any]], label: str, limit: float | None = None,
              width: int = 320, height: int = 90) -> str:
    """A small bar chart of daily values with the target as a dashed line."""
    values = [p["value"] for p in points]
    known = [v for v in values if v is not None]
    top = max([*known, limit or 0.0, 1e-12]) * 1.1
    n = max(len(points), 1)
    bar = (width - 20) / n
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height + 18}" '
             f'role="img" aria-label="{escape(label)}">']
    for i, p in enumerate(points):
        v = p["value"]
        x = 10 + i * bar
        if v is not None:
            h = v / top * height
            parts.append(f'<rect x="{x + 2:.1f}" y="{height - h:.1f}" width="{bar - 4:.1f}" '
                         f'height="{h:.1f}" fill="#4a7bd0"><title>{escape(p["day"])}: '
                         f'{_num(v, 2)}</title></rect>')
        parts.append(f'<text x="{x + bar / 2:.1f}" y="{height + 13}" font-size="9" '
                     f'text-anchor="middle">{escape(p["day"][5:])}</text>')
    if limit is not None:
        y = height - limit / top * height
        parts.append(f'<line x1="5" x2="{width - 5}" y1="{y:.1f}" y2="{y:.1f}" '
                     'stroke="#c33" stroke-dasharray="4 3"/>')
    parts.append("</svg>")
    return "".join(parts)


_CSS = ("body{font:14px/1.4 system-ui,sans-serif;margin:2em;max-width:70em}"
        "table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;"
        "padding:.2em .5em;text-align:left}th{background:#f3f3f3}.MISSED{color:#b00;"
        "font-weight:bold}.met{color:#070}figure{display:inline-block;margin:0 1em 0 0}")


def html(r: dict[str, Any], targets: dict[str, float] | None = None) -> str:
    """A self-contained page: inline CSS and SVG, no scripts, no external resources."""
    limits = targets or {}
    src = r["source"]
    out = ["<!doctype html><html lang=en><meta charset=utf-8>",
           f"<title>{escape(r['title'])}</title><style>{_CSS}</style>",
           f"<h1>{escape(r['title'])}</h1>",
           f"<p>{escape(r['period']['from'])} to {escape(r['period']['to'])} "
           f"({escape(r['period']['timezone'])}), compared with {escape(r['previous']['id'])}."
           f" Source: {escape(str(src.get('kind')))}"
           f"{' ' + escape(str(src['url'])) if src.get('url') else ''}; "
           f"{escape(str(src.get('method', '')))}.</p>", "<div>"]
    charts = (("api_p95_ms", "API p95 per day (ms)", limits.get("api_p95_ms")),
              ("lcp_p75_s", "LCP p75 per day (s)", limits.get("lcp_p75_s")),
              ("inp_p75_ms", "INP p75 per day (ms)", limits.get("inp_p75_ms")))
    for key, label, limit in charts:
        points = r["daily"].get(key, [])
        if any(p["value"] is not None for p in points):
            out.append(f"<figure>{svg_chart(points, label, limit)}"
                       f"<figcaption>{escape(label)}</figcaption></figure>")
    out.append("</div>")
    for heading, header, rows in _sections(r):
        out.append(f"<h2>{escape(heading)}</h2>")
        if not rows:
            out.append("<p>None.</p>")
            continue
        out.append("<table><tr>" + "".join(f"<th>{escape(h)}</th>" for h in header) + "</tr>")
        for row in rows:
            out.append("<tr>" + "".join(
                f'<td class="{escape(c)}">{escape(c)}</td>' if c in ("met", "MISSED")
                else f"<td>{escape(c)}</td>" for c in row) + "</tr>")
        out.append("</table>")
    out.append("</html>\n")
    return "\n".join(out)


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown(r: dict[str, Any]) -> str:
    src = r["source"]
    out = [f"# {r['title']}", "",
           f"{r['period']['from']} to {r['period']['to']} ({r['period']['timezone']}), "
           f"compared with {r['previous']['id']}. Source: {src.get('kind')}"
           f"{' ' + str(src['url']) if src.get('url') else ''}; {src.get('method', '')}.", ""]
    for heading, header, rows in _sections(r):
        out += [f"## {heading}", ""]
        if not rows:
            out += ["None.", ""]
            continue
        out.append("| " + " | ".join(header) + " |")
        out.append("|" + "---|" * len(header))
        out += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
        out.append("")
    return "\n".join(out)


def render(r: dict[str, Any], fmt: str, targets: dict[str, float] | None = None) -> str:
    """`html`, `markdown` or `json`."""
    if fmt == "html":
        return html(r, targets)
    if fmt == "markdown":
        return markdown(r)
    if fmt == "json":
        return json.dumps(r, indent=2, default=str) + "\n"
    raise ValueError(f"unknown format {fmt!r}; one of {', '.join(FORMATS)}")
