"""Plans of slow statements: GET /v1/postgres/plans (JSON), GET /plans (the page), and the
admin-only EXPLAIN ANALYZE runner POST /v1/postgres/explain, which always rolls back.
"""

from __future__ import annotations

import base64
import binascii
import logging
import time
from typing import Any

import aiohttp_jinja2
import orjson
from aiohttp import hdrs, web

from metricsd.core import CONFIG
from metricsd.postgres import PG_STATE, PLANS
from metricsd.postgres.plans import advice
from metricsd.postgres.plans.explain import ExplainError, explain_analyze
from metricsd.postgres.plans.shape import rows as plan_rows
from metricsd.postgres.targets import TargetDown

log = logging.getLogger("metricsd.audit")

MAX_QUERY_CHARS = 100_000
MAX_PARAMS = 100


def _error(status: int, message: str, reason: str) -> web.Response:
    return web.json_response({"error": message, "reason": reason}, status=status)


def _target(request: web.Request, name: str | None) -> str:
    state = request.app[PG_STATE]
    if name is None:
        if len(state.targets) == 1:
            return next(iter(state.targets))
        if not state.targets:
            raise web.HTTPNotFound(reason="no PostgreSQL target is configured "
                                          "(postgres.targets)")
        raise web.HTTPBadRequest(reason="target is required when several are configured")
    if name not in state.targets:
        raise web.HTTPNotFound(reason=f"unknown target {name!r}")
    return name


async def get_plans(request: web.Request) -> web.Response:
    """?target=&queryid=: tracked statements, or one statement's plan, history and advice."""
    plans = request.app[PLANS]
    queryid = request.query.get("queryid")
    if queryid is None:
        target = request.query.get("target")
        if target is not None:
            _target(request, target)
        return web.json_response({"statements": plans.statements(target)})
    target = _target(request, request.query.get("target"))
    found = plans.find(target, queryid)
    if not found:
        raise web.HTTPNotFound(reason=f"statement {queryid} is not tracked on {target}: "
                                      "plans are kept for statements that were slow")
    return web.json_response({"target": target,
                              "statements": [t.as_dict(detail=True) for t in found]})


async def plan_page(request: web.Request) -> web.Response:
    """The plan view: tree, misestimates, time shares, history of changes, advice.

    Without `queryid` it lists the tracked statements (of `target`, or of every target),
    so the page is a place to start, not an error.
    """
    token = request.query.get("token")
    queryid = request.query.get("queryid")
    if queryid is None:
        target = request.query.get("target")
        if target is not None:
            _target(request, target)
        listing = sorted(request.app[PLANS].statements(target),
                         key=lambda s: (-s["last_slow"], s["target"], s["queryid"]))
        context = {"listing": listing, "targets": sorted(request.app[PG_STATE].targets),
                   "target": target, "token": token}
        response = aiohttp_jinja2.render_template("plans.html", request, context)
    else:
        target = _target(request, request.query.get("target"))
        found = request.app[PLANS].find(target, queryid)
        context = {"target": target, "queryid": queryid,
                   "statements": [t.as_dict(detail=True) for t in found], "token": token}
        response = aiohttp_jinja2.render_template("plan.html", request, context,
                                                  status=200 if found else 404)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def _who(request: web.Request) -> str:
    """Who asked, for the audit log: the Basic user name, or which credential was used."""
    scheme, _, credentials = request.headers.get(hdrs.AUTHORIZATION, "").partition(" ")
    if scheme.lower() == "basic":
        try:
            user = base64.b64decode(credentials.strip(), validate=True).decode().partition(":")[0]
            return f"basic:{user}"
        except (binascii.Error, UnicodeDecodeError):
            return "basic:?"
    return "admin-token" if scheme.lower() == "bearer" or "token" in request.query else "?"


async def post_explain(request: web.Request) -> web.Response:
    """{"target", "queryid" | "query", "params": [...]}: EXPLAIN (ANALYZE, BUFFERS), rolled back."""
    config = request.app[CONFIG]
    admin = config.admin
    if admin.token is None and admin.basic_auth is None:
        return _error(403, "the EXPLAIN ANALYZE runner needs admin auth (admin.token or "
                           "admin.basic_auth) to be configured", "admin_auth_not_configured")
    try:
        body = orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        return _error(400, "body must be a JSON object", "invalid_json")
    if not isinstance(body, dict):
        return _error(400, "body must be a JSON object", "not_object")
    try:
        target = _target(request, body.get("target") if isinstance(body.get("target"), str)
                         else None)
    except web.HTTPException as exc:
        return _error(exc.status, exc.reason, "bad_target")
    params = body.get("params", [])
    if not isinstance(params, list) or len(params) > MAX_PARAMS or any(
            isinstance(p, dict | list) for p in params):
        return _error(400, f"params must be a list of at most {MAX_PARAMS} scalars",
                      "bad_params")
    tracked = None
    query = body.get("query")
    if isinstance(body.get("queryid"), str):
        found = request.app[PLANS].find(target, body["queryid"])
        if not found:
            return _error(404, f"statement {body['queryid']} is not tracked on {target}",
                          "unknown_statement")
        tracked, query = found[0], found[0].query
    if not isinstance(query, str) or not query.strip() or len(query) > MAX_QUERY_CHARS:
        return _error(400, "send queryid (a tracked statement) or query (SQL text)",
                      "missing_query")
    if not advice.is_plannable(query):
        return _error(400, "only SELECT, INSERT, UPDATE and DELETE can be explained",
                      "not_plannable")
    plans_config = config.postgres.plans
    read_only = advice.is_read_only(query)
    if not read_only and not plans_config.explain_allow_writes:
        return _error(403, "the statement writes; EXPLAIN ANALYZE runs it for real (then rolls "
                           "back): allow it with postgres.plans.explain_allow_writes",
                      "writes_not_allowed")
    who = _who(request)
    log.info("explain analyze by %s on target %s (%s): %s", who, target,
             "read" if read_only else "write, rolled back", " ".join(query.split())[:500])
    ts = request.app[PG_STATE].targets[target]
    started = time.time()
    try:
        async with ts.pg.connection() as conn:
            plan = await explain_analyze(conn, query, params, plans_config.explain_timeout,
                                         read_only=read_only)
    except TargetDown as exc:
        return _error(503, str(exc), "target_down")
    except ExplainError as exc:
        return _error(422, str(exc), f"sqlstate_{exc.sqlstate or 'none'}")
    result: dict[str, Any] = {
        "target": target, "query": query, "params": params, "at": started, "by": who,
        "rolled_back": True, "plan": plan, "nodes": [r.as_dict() for r in plan_rows(plan)],
    }
    if tracked is not None:
        tracked.analyzed = result
    return web.json_response(result)


def setup(app: web.Application) -> None:
    app.router.add_get("/v1/postgres/plans", get_plans)
    app.router.add_post("/v1/postgres/explain", post_explain)
    app.router.add_get("/plans", plan_page)
