"""EXPLAIN, safely: generic plans for statements metricsd saw, and an always-rolled-back
EXPLAIN ANALYZE for admins.

Generic plans need no parameter values: PostgreSQL 16+ has `EXPLAIN (GENERIC_PLAN)`; on
13-15 the statement is prepared and explained with `plan_cache_mode =
force_generic_plan` and NULL arguments, which the generic plan never looks at. Both run
in a READ ONLY transaction under a statement timeout, and the transaction is rolled back.
"""

from __future__ import annotations

import datetime as dt
import decimal
import itertools
import json
from collections.abc import Sequence
from typing import Any

import asyncpg

from metricsd.errors import MetricsdError

GENERIC_PLAN_VERSION = 160000
_names = itertools.count()


class ExplainError(MetricsdError):
    """EXPLAIN failed; `sqlstate` (when the server gave one) is what failures are keyed by."""

    def __init__(self, message: str, sqlstate: str = "") -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


class _Rollback(Exception):
    """Raised inside a transaction block so asyncpg rolls it back."""


def _as_plan(raw: Any) -> Any:
    return json.loads(raw) if isinstance(raw, str) else raw


def _error(exc: BaseException) -> ExplainError:
    state = getattr(exc, "sqlstate", "") or ""
    return ExplainError(f"{type(exc).__name__}: {exc}", state)


async def _timeout(conn: asyncpg.Connection, timeout_s: float) -> None:
    await conn.execute(f"SET LOCAL statement_timeout = {max(1, int(timeout_s * 1000))}")


# A SECURITY DEFINER function a DBA may create (docs/plans.md) so that plans of tables
# metricsd's role cannot read are built with its owner's rights (PostgreSQL 16+).
HELPER_FUNCTION = "metricsd_generic_plan(text)"


async def has_helper(conn: asyncpg.Connection) -> bool:
    """Whether the documented helper function exists and this role may execute it."""
    return bool(await conn.fetchval(
        "SELECT to_regprocedure($1) IS NOT NULL"
        " AND has_function_privilege(to_regprocedure($1), 'EXECUTE')", HELPER_FUNCTION))


async def generic_plan(
    conn: asyncpg.Connection, query: str, version_num: int, timeout_s: float,
    helper: bool = False,
) -> Any:
    """The generic plan (EXPLAIN FORMAT JSON) of a normalised statement with $n parameters."""
    try:
        if helper and version_num >= GENERIC_PLAN_VERSION:
            async with conn.transaction(readonly=True):
                await _timeout(conn, timeout_s)
                return _as_plan(await conn.fetchval(
                    "SELECT metricsd_generic_plan($1)::text", query))
        if version_num >= GENERIC_PLAN_VERSION:
            return await _generic_16(conn, query, timeout_s)
        return await _generic_prepared(conn, query, timeout_s)
    except _Rollback:
        raise AssertionError("unreachable") from None
    except (asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise _error(exc) from exc


# EXPLAIN (GENERIC_PLAN) must see no parameter values: bound values would be planned
# with (a NULL makes `a = $1` a constant false). So the statement is run by plpgsql's
# EXECUTE, which binds nothing; the text travels in a transaction-local setting (no
# quoting), and so does the plan on its way back.
_GENERIC_16_DO = """
DO $metricsd$
DECLARE plan text;
BEGIN
  EXECUTE 'EXPLAIN (GENERIC_PLAN, FORMAT JSON) ' || current_setting('metricsd.query')
    INTO plan;
  PERFORM set_config('metricsd.plan', plan, true);
END
$metricsd$
"""


async def _generic_16(conn: asyncpg.Connection, query: str, timeout_s: float) -> Any:
    async with conn.transaction(readonly=True):
        await _timeout(conn, timeout_s)
        await conn.execute("SELECT set_config('metricsd.query', $1, true)", query)
        await conn.execute(_GENERIC_16_DO)
        raw = await conn.fetchval("SELECT current_setting('metricsd.plan')")
    return _as_plan(raw)


async def _generic_prepared(conn: asyncpg.Connection, query: str, timeout_s: float) -> Any:
    name = f"metricsd_plan_{next(_names)}"
    prepared = False
    try:
        async with conn.transaction(readonly=True):
            await _timeout(conn, timeout_s)
            await conn.execute("SET LOCAL plan_cache_mode = force_generic_plan")
            await conn.execute(f"PREPARE {name} AS {query}")  # simple protocol: $n kept
            prepared = True
            types = await conn.fetchval(
                "SELECT cardinality(parameter_types) FROM pg_prepared_statements"
                " WHERE name = $1", name)
            args = f"({', '.join(['NULL'] * types)})" if types else ""
            raw = await conn.fetchval(f"EXPLAIN (FORMAT JSON) EXECUTE {name}{args}")
    finally:
        # Prepared statements outlive a rolled-back transaction.
        if prepared and not conn.is_closed():
            try:
                await conn.execute(f"DEALLOCATE {name}")
            except asyncpg.PostgresError:
                pass
    return _as_plan(raw)


def _convert(value: Any, type_name: str) -> Any:
    """A JSON value as the Python value asyncpg expects for a parameter of `type_name`."""
    if value is None:
        return None
    if type_name in ("int2", "int4", "int8", "oid"):
        return int(value)
    if type_name in ("float4", "float8"):
        return float(value)
    if type_name == "numeric":
        return decimal.Decimal(str(value))
    if type_name == "bool":
        if isinstance(value, bool):
            return value
        return str(value).lower() in ("true", "t", "1", "yes", "on")
    if type_name == "date":
        return dt.date.fromisoformat(str(value))
    if type_name in ("timestamp", "timestamptz"):
        stamp = dt.datetime.fromisoformat(str(value))
        if type_name == "timestamptz" and stamp.tzinfo is None:
            stamp = stamp.replace(tzinfo=dt.UTC)
        return stamp
    if type_name in ("text", "varchar", "bpchar", "name", "unknown"):
        return str(value)
    if type_name in ("json", "jsonb"):
        return value if isinstance(value, str) else json.dumps(value)
    raise ExplainError(f"parameter of type {type_name} is not supported by the runner; "
                       "write the value into the statement instead", "22023")


async def explain_analyze(
    conn: asyncpg.Connection,
    query: str,
    params: Sequence[Any],
    timeout_s: float,
    read_only: bool,
) -> Any:
    """EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) in a transaction that is always rolled back."""
    plan: Any = None
    try:
        async with conn.transaction(readonly=read_only):
            await _timeout(conn, timeout_s)
            stmt = await conn.prepare(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {query}")
            types = stmt.get_parameters()
            if len(types) != len(params):
                raise ExplainError(f"the statement has {len(types)} parameter(s), "
                                   f"{len(params)} given", "07001")
            try:
                args = [_convert(v, t.name) for v, t in zip(params, types, strict=True)]
            except (ValueError, TypeError, decimal.InvalidOperation) as exc:
                raise ExplainError(f"bad parameter value: {exc}", "22023") from None
            plan = _as_plan(await stmt.fetchval(*args))
            raise _Rollback
    except _Rollback:
        return plan
    except (asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.DataError) as exc:
        raise _error(exc) from exc
