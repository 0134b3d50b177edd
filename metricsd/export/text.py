"""The one exposition writer: Prometheus text 0.0.4 and OpenMetrics 1.0 over the family model.

prometheus_client's generate_latest costs 10-12 us per sample (it sorts and escapes every
label of every sample); at 10,000 series that is seconds on the event loop. This writer
costs well under 1 us per sample: label strings are escaped once per series by the
source, numbers are formatted with repr, each series' text is kept between scrapes while
its change marks stand, and changed series are formatted RENDER_CHUNK at a time with a
yield to the event loop in between. Output is checked by `promtool check metrics`.

Rows that can hand out their values as arrays (the beacon store's, `ArrayRows`) are
formatted by a compiled kernel (export/kernel.py), a few microseconds per series instead
of one f-string per sample; the text is the same bytes (tests/export/test_kernel.py).
The writer produces bytes: the cache holds them, so an unchanged series is not encoded
again at every scrape.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterable, Iterator, Sequence

import numpy as np
import numpy.typing as npt
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from metricsd.export import kernel
from metricsd.export.family import (
    ArrayRows,
    Family,
    Marks,
    RowList,
    Rows,
    Source,
    Value,
    label_string,
)

TEXT_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS_CONTENT_TYPE = "application/openmetrics-text; version=1.0.0; charset=utf-8"
_SIMPLE_TYPES = frozenset({"counter", "gauge", "summary", "histogram", "unknown"})
# Changed series formatted between two yields to the event loop (about 1 ms of work),
# so a scrape never holds up a beacon for long.
RENDER_CHUNK = 200
# Series per part of a family's cached text: a change re-joins only its part (about 1 MB).
# The compiled path formats this many series between yields (a few microseconds each).
PART_ROWS = 1000


def wants_openmetrics(accept: str) -> bool:
    """True when the scraper lists application/openmetrics-text (Prometheus does)."""
    return any(
        part.split(";", 1)[0].strip() == "application/openmetrics-text"
        for part in accept.split(",")
    )


def format_number(value: float) -> str:
    """Go-style float text: +Inf, -Inf, NaN; integers without a trailing .0."""
    if value != value:
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def header(out: list[bytes], name: str, kind: str, doc: str, openmetrics: bool) -> None:
    """HELP and TYPE lines; text format names counters with their _total suffix."""
    shown = name
    if kind == "counter" and not openmetrics:
        shown = f"{name}_total"
    if kind == "unknown" and not openmetrics:
        kind = "untyped"
    out.append(f"# HELP {shown} {_escape_help(doc)}\n# TYPE {shown} {kind}\n".encode())


class Layout:
    """A family's per-column line prefixes, built once per family and reused every scrape."""

    def __init__(self, family: Family) -> None:
        self.omit_zero = family.omit_zero
        # (prefix before the series' labels, text after them, whole prefix when unlabelled)
        self.columns: list[tuple[str, str, str]] = []
        for column in family.columns:
            name = family.name + column.suffix
            extra = column.label_text
            self.columns.append((
                f"{name}{{",
                f",{extra}}} " if extra else "} ",
                f"{name}{{{extra}}} " if extra else f"{name} ",
            ))
        # The same pieces packed for the compiled kernel.
        self.pre = kernel.packed([c[0].encode() for c in self.columns])
        self.mid = kernel.packed([c[1].encode() for c in self.columns])
        self.bare = kernel.packed([c[2].encode() for c in self.columns])

    def lines(self, texts: Sequence[str], values: Sequence[Sequence[Value]]) -> list[str]:
        """One string per series: all its sample lines."""
        cols = self.columns
        omit_zero = self.omit_zero
        out = []
        for lab, row in zip(texts, values, strict=True):
            if lab:
                out.append("".join([
                    f"{pre}{lab}{mid}{v if type(v) is int else format_number(v)}\n"
                    for (pre, mid, _), v in zip(cols, row, strict=True)
                    if v or not omit_zero]))
            else:
                out.append("".join([
                    f"{bare}{v if type(v) is int else format_number(v)}\n"
                    for (_, _, bare), v in zip(cols, row, strict=True)
                    if v or not omit_zero]))
        return out

    def encoded(self, rows: Rows, which: npt.NDArray[np.int64]) -> Chunk:
        """`lines` of some rows as one UTF-8 text and where each row's text starts."""
        texts = [t.encode() for t in self.lines(rows.texts(which), rows.values(which))]
        return b"".join(texts), _offsets(texts).tolist()

    def compiled(self, rows: ArrayRows, which: npt.NDArray[np.int64]) -> Chunk:
        """What `encoded` gives, for rows that hand out arrays: floats go through
        format_number's rules here, everything else through the kernel."""
        arrays = rows.arrays(which)
        if arrays is None:
            return self.encoded(rows, which)
        ints, floats, float_col = arrays
        labels, label_off = kernel.packed(rows.label_bytes(which))
        texts = float_texts(floats)
        buffer, starts = kernel.render_lines(
            labels, label_off, *self.pre, *self.mid, *self.bare,
            np.ascontiguousarray(ints, dtype=np.int64), float_col,
            np.frombuffer("".join(texts).encode(), dtype=np.uint8), _offsets(texts),
            self.omit_zero)
        return buffer.tobytes(), starts.tolist()


# Some rows' text as one bytes object and the offset where each row starts (len + 1).
Chunk = tuple[bytes, list[int]]


def _offsets(pieces: Sequence[bytes | str]) -> npt.NDArray[np.int64]:
    """Start of each piece in their concatenation, and the end (len + 1 entries)."""
    offsets = np.zeros(len(pieces) + 1, dtype=np.int64)
    np.cumsum(np.fromiter(map(len, pieces), dtype=np.int64, count=len(pieces)),
              out=offsets[1:])
    return offsets


def float_texts(values: npt.NDArray[np.float64]) -> list[str]:
    """format_number of every value (row-major), without a Python call per value: repr,
    then format_number only where it differs (NaN, infinities, integral values)."""
    flat = values.ravel()
    texts = list(map(float.__repr__, flat.tolist()))
    with np.errstate(invalid="ignore"):
        special = ~np.isfinite(flat) | ((flat == np.trunc(flat)) & (np.abs(flat) < 1e15))
    for i in np.flatnonzero(special).tolist():
        texts[i] = format_number(float(flat[i]))
    return texts


class _Block:
    """The text of one block of rows in parts of PART_ROWS series, and where each series'
    text lies. A series is formatted again only when its marks moved, a part is joined
    again only when one of its series changed: one new sample re-joins one part, and an
    unchanged block is handed out as it is."""

    def __init__(self, size: int) -> None:
        self.version = np.full(size, -1, dtype=np.int64)
        self.stamp = np.full(size, np.nan)
        self.where = np.full(size, -1, dtype=np.int64)  # id -> its row in `ids`; -1: absent
        self.ids = np.zeros(0, dtype=np.int64)
        self.starts = np.zeros(1, dtype=np.int64)  # row -> offset, as if parts were joined
        self.parts: list[bytes] = []

    def stale(self, marks: Marks) -> npt.NDArray[np.int64]:
        """Rows (positions in marks.ids) whose text must be formatted again."""
        ids = marks.ids
        return np.nonzero((self.version[ids] != marks.version)
                          | (self.stamp[ids] != marks.stamp)
                          | (self.where[ids] < 0))[0]

    def same(self, marks: Marks) -> bool:
        """True when the block holds exactly these ids in this order."""
        return bool(np.array_equal(self.ids, marks.ids))

    def update(
        self, marks: Marks, stale: npt.NDArray[np.int64], chunks: list[Chunk], step: int
    ) -> Iterator[None]:
        """Build the new parts: the fresh text of the stale rows (in `chunks`, `step`
        stale rows each, in order), the old text of the others. Yields after each part
        joined, so the caller can let the event loop run."""
        ids = marks.ids
        n = len(ids)
        same = self.same(marks)
        changed = np.zeros(n, dtype=np.bool_)
        changed[stale] = True
        # Every row changed and each chunk is one part: the chunks are the parts.
        whole = len(stale) == n and step == PART_ROWS
        lengths = np.zeros(n, dtype=np.int64)
        if same:
            lengths[:] = np.diff(self.starts)
        position = np.full(n, -1, dtype=np.int64)  # row -> its index among the stale rows
        position[stale] = np.arange(len(stale))
        old_where = self.where[ids].tolist()
        old_starts = self.starts.tolist()
        views = [memoryview(part) for part in self.parts]
        fresh_views = [memoryview(data) for data, _ in chunks]
        parts: list[bytes] = []
        for k, first in enumerate(range(0, n, PART_ROWS)):
            last = min(n, first + PART_ROWS)
            if same and not changed[first:last].any():
                parts.append(self.parts[k])
                continue
            if whole:
                data, starts = chunks[k]
                parts.append(data)
                lengths[first:last] = np.diff(starts)
                continue
            pieces: list[bytes | memoryview] = []
            for row, p in zip(range(first, last), position[first:last].tolist(), strict=True):
                if p < 0:
                    w = old_where[row]
                    base = old_starts[w - w % PART_ROWS]
                    pieces.append(views[w // PART_ROWS][old_starts[w] - base
                                                        : old_starts[w + 1] - base])
                else:
                    starts = chunks[p // step][1]
                    i = p % step
                    pieces.append(fresh_views[p // step][starts[i] : starts[i + 1]])
            lengths[first:last] = np.fromiter(map(len, pieces), dtype=np.int64,
                                              count=last - first)
            parts.append(b"".join(pieces))
            yield
        self.version[ids[stale]] = marks.version[stale]
        self.stamp[ids[stale]] = marks.stamp[stale]
        self.where[self.ids] = -1
        self.where[ids] = np.arange(n)
        self.ids = ids.copy()
        self.starts = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(lengths, out=self.starts[1:])
        self.parts = parts


class Writer:
    """Writes sources as text; one per source, because it keeps that source's text cache."""

    def __init__(self, source: Source, compiled: bool = True) -> None:
        self.source = source
        self.compiled = compiled  # False: every row through Layout.lines (tests compare)
        self._layouts = {family.name: Layout(family) for family in source.families}
        self._blocks: dict[str, _Block] = {}

    async def write(self, out: list[bytes], openmetrics: bool) -> None:
        """Every family of the source; a family whose read returned no block is left out."""
        read = self.source.read()
        for family in self.source.families:
            blocks = read(family)
            if not blocks:
                continue
            header(out, family.name, family.type, family.help, openmetrics)
            layout = self._layouts[family.name]
            for rows in blocks:
                await self._rows(out, layout, rows)

    async def _rows(self, out: list[bytes], layout: Layout, rows: Rows) -> None:
        if isinstance(rows, RowList):  # a list block is formatted once (snapshots)
            if rows.text is None:
                everything = np.arange(len(rows), dtype=np.int64)
                rows.text = "".join(layout.lines(rows.texts(everything),
                                                 rows.values(everything))).encode()
            out.append(rows.text)
            return
        marks = rows.marks
        if marks is None:
            everything = np.arange(len(rows), dtype=np.int64)
            out.append("".join(layout.lines(rows.texts(everything),
                                            rows.values(everything))).encode())
            return
        block = self._blocks.get(marks.key)
        if block is None or len(block.version) != marks.size:
            block = self._blocks[marks.key] = _Block(marks.size)
        stale = block.stale(marks)
        if not len(stale) and block.same(marks):
            out.extend(block.parts)
            return
        fast = rows if self.compiled and isinstance(rows, ArrayRows) else None
        step = PART_ROWS if fast is not None else RENDER_CHUNK
        chunks: list[Chunk] = []
        for start in range(0, len(stale), step):
            if start:
                await asyncio.sleep(0)
            part = stale[start : start + step]
            chunks.append(layout.compiled(fast, part) if fast is not None
                          else layout.encoded(rows, part))
        for _ in block.update(marks, stale, chunks, step):
            await asyncio.sleep(0)
        out.extend(block.parts)


def write_metric(out: list[bytes], metric: Metric, openmetrics: bool) -> None:
    """A family from a plain prometheus_client collector; unusual ones go through the library."""
    created = any(s.name.endswith(("_created", "_gsum", "_gcount")) for s in metric.samples)
    if metric.type not in _SIMPLE_TYPES or created or any(s.exemplar for s in metric.samples):
        out.append(_via_library(metric, openmetrics).encode())
        return
    if not metric.samples and metric.type in ("histogram", "summary", "counter"):
        return  # nothing to say; an empty family only costs the scraper a parse
    header(out, metric.name, metric.type, metric.documentation, openmetrics)
    lines = []
    for sample in metric.samples:
        labels = sample.labels
        stamp = ""
        if sample.timestamp is not None:
            ts = float(sample.timestamp)
            stamp = f" {ts!r}" if openmetrics else f" {int(ts * 1000)}"
        value = format_number(sample.value)
        if labels:
            lines.append(f"{sample.name}{{{label_string(labels)}}} {value}{stamp}\n")
        else:
            lines.append(f"{sample.name} {value}{stamp}\n")
    out.append("".join(lines).encode())


class _One(Collector):
    """A collector of one family, to hand a single family to the library's writers."""

    def __init__(self, metric: Metric) -> None:
        self.metric = metric

    def collect(self) -> Iterable[Metric]:
        return [self.metric]


def _via_library(metric: Metric, openmetrics: bool) -> str:
    from prometheus_client import CollectorRegistry
    from prometheus_client.exposition import generate_latest
    from prometheus_client.openmetrics.exposition import generate_latest as om_generate_latest

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_One(metric))
    if openmetrics:
        text: bytes = om_generate_latest(registry)
        return text.decode().removesuffix("# EOF\n")
    return generate_latest(registry).decode()
