"""The one model of a metric family: described once, read as rows, written by one writer.

A `Family` says what Prometheus will see (name, type, help, label names, and the samples
each series has: buckets, quantiles, _sum, _count, or one value). A `Source` (the beacon
store, the PostgreSQL views, the daemon's counters) lists its families once and, at read
time, hands out `Rows` for each of them. Everything else is derived from these two:
the text/OpenMetrics writer (export/text.py), the prometheus_client adapter
(export/adapter.py) and the in-process read interface (export/read.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

Value = float | int
Labels = dict[str, str]
TYPES = frozenset({"counter", "gauge", "histogram", "summary", "unknown"})


def escape_label_value(value: str) -> str:
    """Escape backslash, double quote and newline, as both text formats require."""
    if "\\" in value or '"' in value or "\n" in value:
        return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return value


def label_string(labels: Mapping[str, str]) -> str:
    """`a="1",b="2"` (no braces), keys in the order given."""
    return ",".join(f'{k}="{escape_label_value(v)}"' for k, v in labels.items())


@dataclass(frozen=True)
class Column:
    """One sample every series of a family has: a name suffix and the labels it adds."""

    suffix: str = ""  # "_bucket", "_sum", "_count", "_total" or ""
    labels: tuple[tuple[str, str], ...] = ()  # (("le", "0.5"),), (("quantile", "0.95"),)

    @property
    def label_text(self) -> str:
        return label_string(dict(self.labels))


def value_columns(name: str, kind: str, values: Sequence[str] = ()) -> tuple[Column, ...]:
    """One column per value of an extra label (or one plain column); counters end in _total."""
    suffix = "_total" if kind == "counter" else ""
    if not values:
        return (Column(suffix),)
    return tuple(Column(suffix, ((name, v),)) for v in values)


def histogram_columns(bounds: Sequence[float]) -> tuple[Column, ...]:
    """Cumulative buckets (le), then _count and _sum: values come in this order."""
    les = [*(repr(float(b)) for b in bounds), "+Inf"]
    return (*(Column("_bucket", (("le", le),)) for le in les), Column("_count"), Column("_sum"))


def summary_columns(quantiles: Sequence[float]) -> tuple[Column, ...]:
    """Quantile samples, then _count and _sum: values come in this order."""
    return (*(Column("", (("quantile", repr(q)),)) for q in quantiles),
            Column("_count"), Column("_sum"))


@dataclass(frozen=True)
class Family:
    """One exported family: name (counters without _total), type, help, label names, columns.

    `labels` are the per-series label names; a column may add one more (le, quantile,
    status_class). `omit_zero` leaves out zero samples (sparse counters: a label
    combination that never happened is not exported).
    """

    name: str
    type: str
    help: str
    labels: tuple[str, ...] = ()
    columns: tuple[Column, ...] = ()
    omit_zero: bool = False

    def __post_init__(self) -> None:
        if self.type not in TYPES:
            raise ValueError(f"{self.name}: unknown metric type {self.type!r}")
        if not self.columns:
            object.__setattr__(self, "columns", value_columns("", self.type))

    @property
    def sample_names(self) -> frozenset[str]:
        """Every sample name this family can produce (what PromQL selectors use)."""
        return frozenset({self.name, *(self.name + c.suffix for c in self.columns)})


class Sample(NamedTuple):
    """One sample as readers (alerts, the page, tests) see it."""

    name: str
    labels: Labels
    value: float


class Marks(NamedTuple):
    """Per-series change marks: equal (version, stamp) for an id means the same output.

    The writer keeps each series' text by id and formats again only series whose marks
    moved, so an unchanged series costs a list lookup per scrape.
    """

    key: str  # unique per (source, family, block): the cache's name
    size: int  # ids are in range(size)
    ids: npt.NDArray[np.int64]
    version: npt.NDArray[np.int64]
    stamp: npt.NDArray[np.float64]


class Rows(Protocol):
    """Some series of one family, read lazily by row index (a numpy array of positions)."""

    @property
    def marks(self) -> Marks | None:
        """Change marks for the writer's per-series text cache; None: no caching by id."""
        ...

    def __len__(self) -> int: ...

    def texts(self, rows: npt.NDArray[np.int64]) -> list[str]:
        """Escaped label strings (no braces) of these rows, `Family.labels` in order."""
        ...

    def labels(self, rows: npt.NDArray[np.int64]) -> list[Labels]:
        """The same labels as dicts, for readers."""
        ...

    def values(self, rows: npt.NDArray[np.int64]) -> Sequence[Sequence[Value]]:
        """One value per `Family.columns` entry for each row."""
        ...


@runtime_checkable
class ArrayRows(Rows, Protocol):
    """Rows that also hand out their values as arrays, for the compiled writer."""

    def label_bytes(self, rows: npt.NDArray[np.int64]) -> list[bytes]:
        """`texts(rows)` encoded as UTF-8."""
        ...

    def arrays(
        self, rows: npt.NDArray[np.int64]
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64], npt.NDArray[np.int64]] | None:
        """`values(rows)` as (ints: rows x columns, floats: rows x float columns, float_col:
        per column its index among the float columns, -1 for an integer column); None when
        these rows have no array form (the writer formats `values` instead)."""
        ...


@dataclass
class RowList:
    """Rows held as plain lists: small families and immutable snapshots (PostgreSQL).

    `text` memoises the formatted lines: the writer fills it the first time, so a snapshot
    that is scraped many times is formatted once. Build a fresh RowList for data that
    changes.
    """

    const: Labels = field(default_factory=dict)  # labels of every row, first (target)
    label_texts: list[str] = field(default_factory=list)  # include `const`, escaped
    label_dicts: list[Labels] = field(default_factory=list)  # without `const`
    rows: list[tuple[Value, ...]] = field(default_factory=list)
    text: bytes | None = None
    marks: Marks | None = None  # never cached by id: the whole block is memoised instead

    def add(self, labels: Labels, *values: Value, text: str | None = None) -> None:
        """One series; `text` is its escaped label string when the caller already has it."""
        if text is None:
            text = label_string({**self.const, **labels})
        self.label_texts.append(text)
        self.label_dicts.append(labels)
        self.rows.append(values)

    def __len__(self) -> int:
        return len(self.rows)

    def texts(self, rows: npt.NDArray[np.int64]) -> list[str]:
        return [self.label_texts[i] for i in rows.tolist()]

    def labels(self, rows: npt.NDArray[np.int64]) -> list[Labels]:
        const = self.const
        if not const:
            return [self.label_dicts[i] for i in rows.tolist()]
        return [{**const, **self.label_dicts[i]} for i in rows.tolist()]

    def values(self, rows: npt.NDArray[np.int64]) -> Sequence[Sequence[Value]]:
        return [self.rows[i] for i in rows.tolist()]


# A source's read at one instant: the rows of one family (one block per target, vital...).
Reader = Callable[[Family], Sequence[Rows]]


class Source(Protocol):
    """A group of families described once and read at scrape time; no I/O in `read`."""

    @property
    def families(self) -> Sequence[Family]: ...

    async def prepare(self, now: float) -> None:
        """Slow work a read needs (the store sorts rings off the loop); may be a no-op."""
        ...

    def read(self) -> Reader:
        """A consistent view for one scrape or one evaluation (computed lazily per family)."""
        ...


def samples(family: Family, rows: Rows) -> list[Sample]:
    """Every sample of some rows, in exposition order (the readers' view of the writer's)."""
    everything = np.arange(len(rows), dtype=np.int64)
    out: list[Sample] = []
    columns = [(family.name + c.suffix, c.labels) for c in family.columns]
    omit_zero = family.omit_zero
    for labels, values in zip(rows.labels(everything), rows.values(everything), strict=True):
        for (name, extra), value in zip(columns, values, strict=True):
            if omit_zero and not value:
                continue
            full = {**labels, **dict(extra)} if extra else labels
            out.append(Sample(name, full, float(value)))
    return out
