"""Read the dashboards the way Grafana does: panels, their PromQL, variables, allowed-empty.

Shared by the static checks (tests/deploy) and the end-to-end run against a real
Prometheus (tests/e2e), so both look at exactly the same queries.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = ROOT / "dashboards"
ALLOWED_EMPTY = DASHBOARDS / "allowed-empty.yml"

# What Grafana substitutes for its built-in variables, chosen for a test that scrapes every
# second for a few seconds: windows long enough to hold every scrape of the test.
BUILTINS = {
    "__rate_interval": "30s",
    "__interval": "2s",
    "__interval_ms": "2000",
    "__range": "5m",
    "__range_s": "300",
    "__range_ms": "300000",
}
# $name, ${name}, ${name:format} and [[name]], the forms Grafana accepts.
_VAR_RE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]")


@dataclass(frozen=True)
class PanelQuery:
    """One PromQL target of one panel."""

    dashboard: str  # dashboard uid
    panel: str  # panel title
    ref: str
    expr: str


def dashboard_files() -> list[Path]:
    return sorted(DASHBOARDS.glob("*.json"))


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def panels(board: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, including those nested in collapsed rows."""
    for panel in board.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def queries(board: dict[str, Any]) -> Iterator[PanelQuery]:
    for panel in panels(board):
        for target in panel.get("targets", []):
            if target.get("expr"):
                yield PanelQuery(board["uid"], panel["title"], target["refId"], target["expr"])


def variables(board: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {var["name"]: var for var in board.get("templating", {}).get("list", [])}


def variable_query(var: dict[str, Any]) -> str:
    query = var.get("query")
    return query.get("query", "") if isinstance(query, dict) else str(query or "")


def substitute(expr: str, values: dict[str, str] | None = None) -> str:
    """Replace Grafana variables: built-ins by BUILTINS, the others by `values` or '.*'."""
    values = values or {}

    def replace(match: re.Match[str]) -> str:
        name = next(group for group in match.groups() if group)
        if name in BUILTINS:
            return BUILTINS[name]
        return values.get(name, ".*")

    return _VAR_RE.sub(replace, expr)


_LABEL_VALUES_RE = re.compile(r"^label_values\((?:(?P<selector>.+),\s*)?(?P<label>\w+)\)$")


def parse_label_values(query: str) -> tuple[str | None, str]:
    """label_values(metric{...}, label) -> (selector or None, label)."""
    match = _LABEL_VALUES_RE.match(query.strip())
    if not match:
        raise ValueError(f"not a label_values() query: {query!r}")
    return match.group("selector"), match.group("label")


@dataclass(frozen=True)
class AllowedEmpty:
    dashboard: str
    panel: str
    reason: str


def allowed_empty() -> list[AllowedEmpty]:
    """Panels that may return no data in the end-to-end test, each with its reason."""
    raw = yaml.safe_load(ALLOWED_EMPTY.read_text(encoding="utf-8")) or {}
    return [AllowedEmpty(item["dashboard"], item["panel"], item["reason"])
            for item in raw.get("panels", [])]
