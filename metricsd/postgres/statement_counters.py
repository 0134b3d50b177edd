"""Cumulative statement counters that Prometheus can trust: sums of metricsd's own deltas.

pg_stat_statements' lifetime values go backwards on pg_stat_statements_reset(), on an
eviction and on a restart that lost the stats file, so exporting them as counters would
make rate() and increase() lie. metricsd adds up its per-interval deltas instead
(statements.py computes them, resets and evictions already accounted for), per
(database, user, queryid, toplevel), and only ever adds: the series never go backwards.

Series stay bounded: only the exported top K get their own series and everything else is
added to `other`, so a sum over a target's series is every statement's work. A statement
that enters the top K starts its series at 0 and its first interval goes to `other` (a
new series' first sample is only a baseline for Prometheus); one that leaves keeps its
value for when it comes back, so a returning series continues where it stopped.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

Key = tuple[int, int, int, bool]  # userid, dbid, queryid, toplevel
OTHER = "other"
# Remembered values of statements that left the top K, per exported slot.
RETIRED_PER_SLOT = 10


@dataclass(frozen=True)
class CounterField:
    """One cumulative family: the delta column it sums and how to turn it into base units.

    `unit` is "count", "ms" (exported as seconds) or "blocks" (exported as bytes);
    `min_version` is the pg_stat_statements version that has the column; `io_timing`
    families only exist while track_io_timing is on (otherwise they would read 0).
    """

    name: str
    column: int
    unit: str
    doc: str
    min_version: tuple[int, ...] = (1, 8)
    io_timing: bool = False

    @property
    def family(self) -> str:
        return f"metricsd_pg_stat_statements_{self.name}"

    def scale(self, block_size: int) -> float:
        return {"count": 1.0, "ms": 0.001, "blocks": float(block_size)}[self.unit]


@dataclass(frozen=True)
class CounterRow:
    """One exported series' cumulative values (in the delta columns' units), frozen."""

    datname: str
    user: str
    queryid: str
    toplevel: str
    values: tuple[float, ...]


class StatementCounters:
    """Per-statement running sums of interval deltas, top-K keys plus an `other` bucket."""

    def __init__(self, columns: Sequence[int], top_k: int) -> None:
        self.columns = tuple(columns)
        self.values: dict[Key, list[float]] = {}
        self.other = [0.0] * len(self.columns)
        self.retired: OrderedDict[Key, list[float]] = OrderedDict()
        self.retired_limit = max(100, top_k * RETIRED_PER_SLOT)

    def add(self, deltas: Mapping[Key, Sequence[float | None]], exported: Iterable[Key]) -> None:
        """Add one interval: deltas of exported keys to their series, the rest to `other`."""
        wanted = set(exported)
        for key in [k for k in self.values if k not in wanted]:
            self.retired[key] = self.values.pop(key)
            self.retired.move_to_end(key)
        while len(self.retired) > self.retired_limit:
            self.retired.popitem(last=False)
        entering = set()
        for key in wanted:
            if key not in self.values:
                back = self.retired.pop(key) if key in self.retired else None
                self.values[key] = back or [0.0] * len(self.columns)
                entering.add(key)
        columns = self.columns
        for key, delta in deltas.items():
            target = self.other if key in entering else self.values.get(key, self.other)
            for i, column in enumerate(columns):
                value = delta[column]
                if value:
                    target[i] += max(0.0, float(value))

    def rows(self, names: Mapping[Key, tuple[str, str]]) -> tuple[CounterRow, ...]:
        """Frozen rows of every exported key and `other`; names: key -> (datname, user)."""
        out = []
        for key, values in self.values.items():
            datname, user = names.get(key, (str(key[1]), str(key[0])))
            out.append(CounterRow(datname, user, str(key[2]), "true" if key[3] else "false",
                                  tuple(values)))
        out.sort(key=lambda r: (r.datname, r.user, r.queryid, r.toplevel))
        out.append(CounterRow("", "", OTHER, "", tuple(self.other)))
        return tuple(out)

    def total(self) -> list[float]:
        """Every statement's work so far (exported, retired and other), for tests."""
        out = list(self.other)
        for values in (*self.values.values(), *self.retired.values()):
            for i, v in enumerate(values):
                out[i] += v
        return out
