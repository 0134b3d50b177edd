"""Index advice: which columns a statement filters, joins and sorts on, turned into
candidate indexes, ordered by selectivity and checked with hypopg when it is installed.

The statement is parsed with pglast (libpg_query, PostgreSQL's own parser), never with
regular expressions. metricsd never creates an index: it proposes the DDL.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pglast
from pglast import ast
from pglast.enums import A_Expr_Kind

EQUALITY_OPS = frozenset({"="})
RANGE_OPS = frozenset({"<", "<=", ">", ">=", "~~", "~~*"})
# Statements that EXPLAIN can plan without executing anything a reader must not run.
PLANNABLE = (ast.SelectStmt, ast.InsertStmt, ast.UpdateStmt, ast.DeleteStmt)
MAX_INDEX_COLUMNS = 3


class ParseError(ValueError):
    """The statement is not one PostgreSQL's parser accepts."""


@dataclass
class TableUse:
    """How one table of a statement is read: columns by role, in first-seen order."""

    schema: str | None
    table: str
    equality: list[str] = field(default_factory=list)
    range: list[str] = field(default_factory=list)
    join: list[str] = field(default_factory=list)
    sort: list[str] = field(default_factory=list)

    def add(self, role: str, column: str) -> None:
        bucket: list[str] = getattr(self, role)
        if column not in bucket:
            bucket.append(column)


def statement(sql: str) -> ast.Node:
    """The single statement of `sql`; ParseError when it does not parse or holds several."""
    try:
        parsed = pglast.parse_sql(sql)
    except pglast.parser.ParseError as exc:
        raise ParseError(str(exc)) from None
    if len(parsed) != 1:
        raise ParseError("expected exactly one statement")
    stmt = parsed[0].stmt
    assert stmt is not None
    return stmt


def is_plannable(sql: str) -> bool:
    """True for SELECT/INSERT/UPDATE/DELETE; utility statements are never explained."""
    try:
        return isinstance(statement(sql), PLANNABLE)
    except ParseError:
        return False


def is_read_only(sql: str) -> bool:
    """A plain SELECT: no data-modifying CTE, no SELECT INTO, no row locks."""
    try:
        stmt = statement(sql)
    except ParseError:
        return False
    if not isinstance(stmt, ast.SelectStmt) or stmt.intoClause is not None:
        return False
    for node in _nodes(stmt):
        if isinstance(node, ast.CommonTableExpr) and not isinstance(
            node.ctequery, ast.SelectStmt
        ):
            return False
        if isinstance(node, ast.LockingClause):
            return False
    return True


def _nodes(node: Any) -> Iterator[Any]:
    """Every AST node below `node`, depth first."""
    if isinstance(node, tuple | list):
        for item in node:
            yield from _nodes(item)
        return
    if not isinstance(node, ast.Node):
        return
    yield node
    for name in node:
        yield from _nodes(getattr(node, name))


def _column(node: Any) -> tuple[str | None, str] | None:
    """(qualifier, column) of a ColumnRef, else None."""
    if not isinstance(node, ast.ColumnRef):
        return None
    fields = node.fields or ()
    names: list[str] = [f.sval for f in fields if isinstance(f, ast.String) and f.sval]
    if not names or len(names) != len(fields):
        return None  # t.* and friends
    return (names[-2] if len(names) >= 2 else None), names[-1]


def _operand_is_value(node: Any) -> bool:
    return isinstance(node, ast.ParamRef | ast.A_Const | ast.TypeCast | ast.FuncCall)


def analyse(sql: str) -> list[TableUse]:
    """Tables read by the statement and their filtered, joined and sorted columns.

    Unqualified columns are attributed to the only table when there is one; with several
    tables they stay unattributed (the caller can resolve them from the catalog).
    """
    stmt = statement(sql)
    tables: dict[str, TableUse] = {}
    aliases: dict[str, TableUse] = {}
    use: TableUse | None
    for node in _nodes(stmt):
        if isinstance(node, ast.RangeVar) and node.relname:
            use = tables.setdefault(f"{node.schemaname}.{node.relname}",
                                    TableUse(node.schemaname, node.relname))
            aliases[node.relname] = use
            if node.alias is not None and node.alias.aliasname:
                aliases[node.alias.aliasname] = use
    only = next(iter(tables.values())) if len(tables) == 1 else None

    def owner(qualifier: str | None) -> TableUse | None:
        return aliases.get(qualifier) if qualifier else only

    for node in _nodes(stmt):
        if isinstance(node, ast.A_Expr):
            op = node.name[-1].sval if node.name and isinstance(node.name[-1], ast.String) else ""
            left: tuple[str | None, str] | None = _column(node.lexpr)
            right = _column(node.rexpr)
            if node.kind in (A_Expr_Kind.AEXPR_IN,) and left:
                role = "equality"
            elif node.kind in (A_Expr_Kind.AEXPR_BETWEEN, A_Expr_Kind.AEXPR_LIKE,
                               A_Expr_Kind.AEXPR_ILIKE) and left:
                role = "range"
            elif node.kind == A_Expr_Kind.AEXPR_OP and op in EQUALITY_OPS | RANGE_OPS:
                if left and right:
                    for col in (left, right):
                        if (use := owner(col[0])) is not None:
                            use.add("join", col[1])
                    continue
                role = "equality" if op in EQUALITY_OPS else "range"
                if left is None and right is not None and _operand_is_value(node.lexpr):
                    left = right
                elif left is None or not _operand_is_value(node.rexpr):
                    continue
            else:
                continue
            if left and (use := owner(left[0])) is not None:
                use.add(role, left[1])
        elif isinstance(node, ast.SortBy):
            sort_column = _column(node.node)
            if sort_column and (use := owner(sort_column[0])) is not None:
                use.add("sort", sort_column[1])
    return list(tables.values())


def candidate_columns(use: TableUse, distinct: dict[str, float]) -> list[str]:
    """Index columns: equality filters most selective first, then one range or sort column.

    `distinct` maps a column to its number of distinct values (pg_stats.n_distinct made
    absolute); more distinct values means a more selective equality.
    """
    equality = sorted(use.equality, key=lambda c: -distinct.get(c, 0.0))
    tail = [c for c in (use.range[:1] or use.sort[:1]) if c not in equality]
    columns = (equality + tail) or use.join[:1]
    return columns[:MAX_INDEX_COLUMNS]


def quote_ident(name: str) -> str:
    """An identifier as PostgreSQL would need it written."""
    if name.isidentifier() and name == name.lower() and name.isascii():
        return name
    return '"' + name.replace('"', '""') + '"'


def create_index_sql(schema: str | None, table: str, columns: list[str]) -> str:
    """The DDL to copy: CONCURRENTLY, so building it does not block writes."""
    rel = f"{quote_ident(schema)}.{quote_ident(table)}" if schema else quote_ident(table)
    return (f"CREATE INDEX CONCURRENTLY ON {rel} "
            f"({', '.join(quote_ident(c) for c in columns)});")
