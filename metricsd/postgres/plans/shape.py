"""A plan's shape: a stable hash of what the planner chose, and the rows a person reads.

The hash covers node types, relations, indexes, join types and strategies, never costs
or row estimates: those move with every ANALYZE, while a change of shape (a sequential
scan instead of an index scan, a hash join instead of a nested loop) is what makes a
statement faster or slower from one day to the next.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

# The keys of a plan node that make up its shape; everything else is an estimate or a
# measurement that changes without the plan changing.
SHAPE_KEYS = (
    "Node Type", "Parent Relationship", "Relation Name", "Schema", "Index Name",
    "Join Type", "Strategy", "Partial Mode", "Scan Direction", "Operation",
    "Subplan Name", "CTE Name", "Function Name",
)  # fmt: skip
# A misestimate worth highlighting: actual rows off by this factor either way.
MISESTIMATE_FACTOR = 10.0
# A sequential scan reading at least this many rows (actual, else estimated) is marked.
LARGE_SEQ_SCAN_ROWS = 10_000


def root(plan: Any) -> Mapping[str, Any]:
    """The top node of EXPLAIN (FORMAT JSON) output: `[{"Plan": {...}}]` or the node."""
    if isinstance(plan, list) and plan and isinstance(plan[0], Mapping):
        plan = plan[0]
    if isinstance(plan, Mapping) and isinstance(plan.get("Plan"), Mapping):
        node: Mapping[str, Any] = plan["Plan"]
        return node
    if isinstance(plan, Mapping):
        return plan
    raise ValueError("not an EXPLAIN (FORMAT JSON) plan")


def _walk(node: Mapping[str, Any], depth: int = 0) -> Iterator[tuple[int, Mapping[str, Any]]]:
    yield depth, node
    for child in node.get("Plans") or ():
        if isinstance(child, Mapping):
            yield from _walk(child, depth + 1)


def shape_hash(plan: Any) -> str:
    """16 hex digits identifying the plan's shape (same shape, same hash, any costs)."""
    digest = hashlib.sha256()
    for depth, node in _walk(root(plan)):
        parts = [str(depth)] + [f"{k}={node[k]}" for k in SHAPE_KEYS if k in node]
        digest.update(("|".join(parts) + "\n").encode("utf-8", "replace"))
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class PlanRow:
    """One node as the plan view shows it."""

    depth: int
    node_type: str
    relation: str | None
    index: str | None
    estimated_rows: float | None
    actual_rows: float | None  # per loop x loops, as a person compares them
    misestimate: float | None  # actual / estimated (or its inverse), when both exist
    time_share: float | None  # exclusive time / total time, with ANALYZE
    shared_hit: int | None
    shared_read: int | None
    seq_scan_large: bool
    cost: float | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "depth": self.depth, "node_type": self.node_type, "relation": self.relation,
            "index": self.index, "estimated_rows": self.estimated_rows,
            "actual_rows": self.actual_rows, "misestimate": self.misestimate,
            "misestimated": self.misestimate is not None
            and self.misestimate >= MISESTIMATE_FACTOR,
            "time_share": self.time_share, "shared_hit_blocks": self.shared_hit,
            "shared_read_blocks": self.shared_read, "seq_scan_large": self.seq_scan_large,
            "total_cost": self.cost,
        }


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else None


def _exclusive_ms(node: Mapping[str, Any]) -> float | None:
    """Time spent in the node itself: its total minus its children's (times loops)."""
    total = _num(node.get("Actual Total Time"))
    if total is None:
        return None
    own = total * (_num(node.get("Actual Loops")) or 1.0)
    for child in node.get("Plans") or ():
        child_total = _num(child.get("Actual Total Time"))
        if child_total is not None and child.get("Parent Relationship") != "InitPlan":
            own -= child_total * (_num(child.get("Actual Loops")) or 1.0)
    return max(own, 0.0)


def rows(plan: Any) -> list[PlanRow]:
    """The plan tree, depth-first, with what to look at marked."""
    top = root(plan)
    nodes = list(_walk(top))
    exclusive = [_exclusive_ms(node) for _, node in nodes]
    total = sum(x for x in exclusive if x is not None)
    out = []
    for (depth, node), own in zip(nodes, exclusive, strict=True):
        estimated = _num(node.get("Plan Rows"))
        actual = _num(node.get("Actual Rows"))
        if actual is not None:
            actual *= _num(node.get("Actual Loops")) or 1.0
            if estimated is not None:
                estimated *= _num(node.get("Actual Loops")) or 1.0
        misestimate = None
        if actual is not None and estimated is not None:
            high, low = max(actual, estimated, 1.0), max(min(actual, estimated), 1.0)
            misestimate = high / low
        seen_rows = actual if actual is not None else estimated
        node_type = str(node.get("Node Type", "?"))
        out.append(PlanRow(
            depth=depth, node_type=node_type,
            relation=node.get("Relation Name"), index=node.get("Index Name"),
            estimated_rows=estimated, actual_rows=actual, misestimate=misestimate,
            time_share=(own / total) if own is not None and total > 0 else None,
            shared_hit=_int(node.get("Shared Hit Blocks")),
            shared_read=_int(node.get("Shared Read Blocks")),
            seq_scan_large=node_type == "Seq Scan" and (seen_rows or 0) >= LARGE_SEQ_SCAN_ROWS,
            cost=_num(node.get("Total Cost")),
        ))
    return out


def total_cost(plan: Any) -> float | None:
    """The planner's total cost of the top node."""
    return _num(root(plan).get("Total Cost"))


def seq_scanned(plan: Any) -> set[str]:
    """Relations the plan reads with a sequential scan."""
    return {str(node["Relation Name"]) for _, node in _walk(root(plan))
            if node.get("Node Type") == "Seq Scan" and node.get("Relation Name")}


def index_names(plan: Any) -> set[str]:
    """Indexes the plan uses (hypopg's hypothetical ones included)."""
    return {str(node["Index Name"]) for _, node in _walk(root(plan)) if node.get("Index Name")}
