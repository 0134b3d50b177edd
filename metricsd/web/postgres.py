"""JSON views of PostgreSQL: GET /v1/postgres/statements, /indexes and /activity."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from yarl import URL

from metricsd.postgres import PG_STATE
from metricsd.postgres.blocking import blocking
from metricsd.postgres.state import STATEMENT_SORTS, PgState
from metricsd.postgres.transactions import oldest

MAX_LIMIT = 10_000
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}


def _flag(request: web.Request, name: str) -> bool:
    value = request.query.get(name, "").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise web.HTTPBadRequest(reason=f"{name} must be true or false, got {value!r}")


def _target(request: web.Request) -> str | None:
    target = request.query.get("target") or None
    if target is not None and target not in request.app[PG_STATE].targets:
        raise web.HTTPNotFound(reason=f"unknown target {target!r}")
    return target


def _targets_summary(state: PgState, target: str | None) -> dict[str, Any]:
    names = [target] if target else state.target_names()
    out: dict[str, Any] = {}
    for name in names:
        out[name] = {"up": state.up(name), "collectors": state.health(name)}
        databases = state.databases(name)
        if databases is not None:  # a multi-database target: each database's own status
            out[name]["databases"] = {**databases, "collectors": state.database_health(name)}
    return out


async def statements(request: web.Request) -> web.Response:
    """?target=&sort=total|mean|calls|rows|max&limit=50&slow=true"""
    state = request.app[PG_STATE]
    target = _target(request)
    sort = request.query.get("sort", "total")
    if sort not in STATEMENT_SORTS:
        raise web.HTTPBadRequest(
            reason=f"sort must be one of {', '.join(STATEMENT_SORTS)}, got {sort!r}")
    raw_limit = request.query.get("limit", "50")
    # ASCII digits only: "¹".isdigit() is True but int("¹") raises (a 500 the fuzz run found)
    if not (raw_limit.isascii() and raw_limit.isdigit()) or not 1 <= int(raw_limit) <= MAX_LIMIT:
        raise web.HTTPBadRequest(reason=f"limit must be an integer in 1..{MAX_LIMIT}")
    slow = _flag(request, "slow")
    rows = state.statements(target, sort=sort, limit=int(raw_limit), slow_only=slow)
    for row in rows:  # plans are tracked for slow statements (docs/plans.md)
        if row.get("slow") and row.get("queryid") != "other":
            row["plan_url"] = str(URL("/v1/postgres/plans").with_query(
                target=row["target"], queryid=row["queryid"]))
    meta = {name: state.statements_meta(name) for name in ([target] if target else state.targets)}
    return web.json_response({
        "slow_query_ms": state.config.slow_query_ms,
        "targets": _targets_summary(state, target),
        "intervals": meta,
        "statements": rows,
    })


async def indexes(request: web.Request) -> web.Response:
    """?target=&unused=true&invalid=true&bloated=true (any of them); missing-index tables."""
    state = request.app[PG_STATE]
    target = _target(request)
    unused, invalid, bloated = (_flag(request, n) for n in ("unused", "invalid", "bloated"))
    return web.json_response({
        "targets": _targets_summary(state, target),
        "indexes": state.indexes(target, unused=unused, invalid=invalid, bloated=bloated),
        "missing_indexes": state.missing_indexes(target),
    })


async def activity(request: web.Request) -> web.Response:
    """?target=&limit=: connections, the oldest open transactions, blocking chains."""
    state = request.app[PG_STATE]
    target = _target(request)
    raw_limit = request.query.get("limit", str(state.config.long_transactions))
    # ASCII digits only: "²".isdigit() is True, but int("²") raises.
    if not (raw_limit.isascii() and raw_limit.isdigit()) or not 1 <= int(raw_limit) <= MAX_LIMIT:
        raise web.HTTPBadRequest(reason=f"limit must be an integer in 1..{MAX_LIMIT}")
    selected = [state.targets[n] for n in ([target] if target else state.target_names())]
    return web.json_response({
        "targets": _targets_summary(state, target),
        "connections": {ts.name: state.connections(ts.name) for ts in selected},
        "long_transactions": oldest(selected, int(raw_limit)),
        "blocking": blocking(selected),
    })


def setup(app: web.Application) -> None:
    app.router.add_get("/v1/postgres/statements", statements)
    app.router.add_get("/v1/postgres/indexes", indexes)
    app.router.add_get("/v1/postgres/activity", activity)
