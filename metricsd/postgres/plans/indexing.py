"""Index advice for one statement and its plan: candidates from the parsed statement,
checked against the catalog and, with hypopg, against the planner itself.

hypopg's hypothetical indexes live in the backend's memory only: nothing is written,
and every one is dropped (hypopg_reset) before the connection goes back to the pool.
"""

from __future__ import annotations

import logging
from typing import Any

import asyncpg

from metricsd.postgres.plans import advice, shape
from metricsd.postgres.plans.explain import ExplainError, generic_plan
from metricsd.postgres.targets import ServerInfo

log = logging.getLogger(__name__)

MAX_CANDIDATES = 3
# Index tuple overhead (header + item pointer) and btree leaf fill, for size estimates
# when hypopg cannot tell.
TUPLE_OVERHEAD_BYTES = 14
LEAF_FILL = 0.9

RELATION_SQL = """
SELECT c.oid, n.nspname, c.relname, greatest(c.reltuples, 0)::float8 AS reltuples
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.oid = to_regclass($1) AND c.relkind IN ('r', 'p', 'm')
"""
STATS_SQL = """
SELECT a.attname, s.n_distinct, s.avg_width
FROM pg_attribute a
LEFT JOIN pg_stats s ON s.schemaname = $2 AND s.tablename = $3 AND s.attname = a.attname
WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped
"""
LEADING_SQL = """
SELECT array_agg(a.attname ORDER BY k.i) AS columns
FROM pg_index x
CROSS JOIN LATERAL unnest(x.indkey::int2[]) WITH ORDINALITY AS k(attnum, i)
JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = k.attnum
WHERE x.indrelid = $1 AND x.indisvalid
GROUP BY x.indexrelid
"""


def _distinct(n_distinct: float | None, reltuples: float) -> float:
    """pg_stats.n_distinct as a count (negative values are a fraction of the rows)."""
    if n_distinct is None:
        return 0.0
    return -n_distinct * reltuples if n_distinct < 0 else n_distinct


async def advise(
    conn: asyncpg.Connection,
    query: str,
    plan: Any,
    info: ServerInfo,
    timeout_s: float,
    hypopg: bool,
) -> list[dict[str, Any]]:
    """Candidate indexes for the tables `plan` reads sequentially; [] when none fit."""
    scanned = shape.seq_scanned(plan)
    if not scanned:
        return []
    try:
        uses = advice.analyse(query)
    except advice.ParseError:
        return []
    out: list[dict[str, Any]] = []
    for use in uses:
        if use.table not in scanned or len(out) >= MAX_CANDIDATES:
            continue
        item = await _candidate(conn, use)
        if item is None:
            continue
        if hypopg:
            await _verify(conn, query, plan, info, timeout_s, item)
        out.append(item)
    return out


async def _candidate(conn: asyncpg.Connection, use: advice.TableUse) -> dict[str, Any] | None:
    name = f"{advice.quote_ident(use.schema)}.{advice.quote_ident(use.table)}" if use.schema \
        else advice.quote_ident(use.table)
    rel = await conn.fetchrow(RELATION_SQL, name)
    if rel is None:  # a CTE name, a view, or a table this role cannot see
        return None
    stats = {r["attname"]: r for r in await conn.fetch(
        STATS_SQL, rel["oid"], rel["nspname"], rel["relname"])}
    reltuples = float(rel["reltuples"])
    use.equality = [c for c in use.equality if c in stats]
    use.range = [c for c in use.range if c in stats]
    use.sort = [c for c in use.sort if c in stats]
    use.join = [c for c in use.join if c in stats]
    distinct = {c: _distinct(r["n_distinct"], reltuples) for c, r in stats.items()}
    columns = advice.candidate_columns(use, distinct)
    if not columns:
        return None
    existing = [list(r["columns"]) for r in await conn.fetch(LEADING_SQL, rel["oid"])]
    if any(idx[: len(columns)] == columns for idx in existing):
        return None  # an index already starts with these columns
    width = sum(int(stats[c]["avg_width"] or 8) for c in columns)
    return {
        "schema": rel["nspname"], "table": rel["relname"], "columns": columns,
        "create_sql": advice.create_index_sql(rel["nspname"], rel["relname"], columns),
        "estimated_size_bytes": int(reltuples * (width + TUPLE_OVERHEAD_BYTES) / LEAF_FILL),
        "verified": None, "cost_before": None,
        "cost_after": None, "gain": None,
        "note": "unverified: install hypopg to have the planner check this index",
    }


async def _verify(
    conn: asyncpg.Connection,
    query: str,
    plan: Any,
    info: ServerInfo,
    timeout_s: float,
    item: dict[str, Any],
) -> None:
    """Ask the planner: would it use the index, and at what estimated cost?"""
    ddl = advice.create_index_sql(item["schema"], item["table"], item["columns"]).replace(
        " CONCURRENTLY", "").rstrip(";")
    before = shape.total_cost(plan)
    try:
        row = await conn.fetchrow("SELECT indexrelid, indexname FROM hypopg_create_index($1)",
                                  ddl)
        if row is None:
            raise ExplainError("hypopg_create_index returned no row")
        size = await conn.fetchval("SELECT hypopg_relation_size($1)", row["indexrelid"])
        after_plan = await generic_plan(conn, query, info.version_num, timeout_s)
    except (asyncpg.PostgresError, ExplainError) as exc:
        item["note"] = f"hypopg could not check it: {exc}"
        return
    finally:
        try:
            await conn.execute("SELECT hypopg_reset()")
        except asyncpg.PostgresError:
            pass
    after = shape.total_cost(after_plan)
    used = str(row["indexname"]) in shape.index_names(after_plan)
    item.update(
        cost_before=before, cost_after=after,
        estimated_size_bytes=int(size) if size is not None else item["estimated_size_bytes"],
        verified=bool(used and before is not None and after is not None and after < before),
    )
    if before and after is not None:
        item["gain"] = 1.0 - after / before
    item["note"] = ("verified with hypopg: the planner would use it" if item["verified"]
                    else "checked with hypopg: the planner would not use it or gain nothing")
