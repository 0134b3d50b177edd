"""The compiled /metrics text (export/kernel.py) is byte for byte what the line writer gives.

The line writer (`Layout.lines`, `Writer(compiled=False)`) is the writer main served
before the kernel: these tests diff the two, and a cached writer against a fresh one, on a
store with random label values (escapes, non-ASCII), NaN/Inf/-0.0/huge sums, empty
windows, sparse counters, Web Vitals, expired and reused slots.
"""

from __future__ import annotations

import asyncio
import math
import time
from itertools import pairwise

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from metricsd.app import create_app
from metricsd.export import kernel, text
from metricsd.export.beacons import ARRAYS, StoreSource
from metricsd.export.family import Family, value_columns
from metricsd.export.text import Layout, Writer
from metricsd.ingest import STORE, export_views, store_families
from metricsd.labels import clean
from metricsd.store.series import Store

ODD = ['a\\b', 'say "hi"', "é/ü", "日本/路由", "emoji 🚀", "trailing\\", '"', "x,y=z}", "{}",
       clean("bell\x07tab\tnl\nend")]


def _key(rng: np.random.Generator) -> tuple[str, str, str]:
    route = ODD[int(rng.integers(len(ODD)))] if rng.random() < 0.5 else f"/r/{rng.integers(50)}"
    return ("svc" if rng.random() < 0.7 else ODD[int(rng.integers(len(ODD)))], route,
            str(rng.choice(["GET", "POST", 'PU"T'])))


def _mutate(store: Store, rng: np.random.Generator, now: float) -> None:
    """New series, a few new samples, odd sums, samples of every other store family."""
    api = store.families["api"]
    for _ in range(int(rng.integers(1, 40))):
        value = float(rng.lognormal(-3, 2)) if rng.random() < 0.9 else float(rng.integers(3))
        store.observe("api", _key(rng), value, now - float(rng.uniform(0, 400)),
                      int(rng.integers(0, 5)))
    slots = list(api.slot_of.values())
    for slot in rng.choice(slots, size=min(3, len(slots)), replace=False).tolist():
        api.sums[slot] = rng.choice([math.nan, math.inf, -0.0, 1e15, 2.0**60, 7.0, 1e-320])
        store.pool.version[slot] += 1  # what a write does: the series' text is stale
    for name, family in store.families.items():  # Web Vitals and every other kind
        if name == "api":
            continue
        spec = family.spec
        for _ in range(int(rng.integers(0, 3))):
            key = tuple(ODD[int(rng.integers(len(ODD)))] for _ in spec.labels)
            store.observe(name, key, float(rng.uniform(0, 5000)),
                          now - float(rng.uniform(0, 400)),
                          int(rng.integers(0, max(1, len(spec.tags)))),
                          int(rng.integers(0, max(1, len(spec.extras)))))


async def _text(writer: Writer, openmetrics: bool) -> bytes:
    out: list[bytes] = []
    await writer.write(out, openmetrics)
    return b"".join(out)


@pytest.mark.parametrize("part_rows", [1, 7, 1000])
def test_compiled_writer_equals_line_writer_over_changes_expiry_and_slot_reuse(
        part_rows, monkeypatch):
    monkeypatch.setattr(text, "PART_ROWS", part_rows)  # many parts, or one

    async def run() -> None:
        rng = np.random.default_rng(12)
        store = Store(max_series=120, window_samples=32, window_seconds=300, idle_timeout=500,
                      families=store_families())
        now = [10_000.0]
        source = StoreSource(store, export_views(store), clock=lambda: now[0])
        cached, lines = Writer(source), Writer(source, compiled=False)
        unchanged_rounds = 0
        for step in range(40):
            if step % 5 != 4:  # every fifth round reads an unchanged store
                _mutate(store, rng, now[0])
            else:
                unchanged_rounds += 1
            if step % 7 == 6:
                now[0] += 450.0  # windows age out (NaN quantiles), idle series go
                store.expire(now[0])
            await store.refresh(now[0])
            for openmetrics in (False, True):
                a = await _text(cached, openmetrics)
                b = await _text(lines, openmetrics)
                c = await _text(Writer(source), openmetrics)  # no cache at all
                assert a == b == c, f"step {step}"
            parsed = sum(len(f.samples) for f in text_string_to_metric_families(a.decode()))
            assert parsed == sum(1 for line in a.split(b"\n") if line and line[:1] != b"#")
        assert unchanged_rounds == 8
        assert b'a\\\\b' in a and b'say \\"hi\\"' in a and "日本".encode() in a
        assert b"NaN" in a and b"+Inf" in a

    asyncio.run(run())


def test_every_array_form_gives_the_values_of_its_row_form():
    """Each store view's arrays() reproduce values() exactly: types and numbers."""
    rng = np.random.default_rng(3)
    store = Store(max_series=60, window_samples=16, window_seconds=300, idle_timeout=500,
                  families=store_families())
    for _ in range(4):
        _mutate(store, rng, 1000.0)
    covered = set()
    for view in export_views(store):
        if view.values not in ARRAYS:  # no array form: the writer formats its values
            continue
        covered.add(view.values)
        for name, _ in view.parts:
            family = store.families[name]
            stats = store.window_stats(family, 1000.0)
            rows = np.arange(len(stats.keys), dtype=np.int64)
            expected = view.values(family, stats, rows)
            ints, floats, float_col = ARRAYS[view.values](family, stats, rows)
            got = [[float(floats[r, f]) if f >= 0 else int(ints[r, j])
                    for j, f in enumerate(float_col.tolist())] for r in range(len(rows))]
            for want, have in zip(expected, got, strict=True):
                assert [type(v) for v in want] == [type(v) for v in have]
                np.testing.assert_array_equal(np.array(want, float), np.array(have, float))
    assert covered == set(ARRAYS)  # every array form is used by some exported view


class _Rows:
    """Rows given as arrays, to drive the kernel with any numbers."""

    def __init__(self, labels: list[str], ints: np.ndarray, floats: np.ndarray,
                 float_col: np.ndarray) -> None:
        self._labels, self._ints, self._floats, self._float_col = labels, ints, floats, float_col
        self.marks = None

    def __len__(self) -> int:
        return len(self._labels)

    def texts(self, rows: np.ndarray) -> list[str]:
        return [self._labels[i] for i in rows.tolist()]

    def labels(self, rows: np.ndarray) -> list[dict[str, str]]:
        return [{} for _ in rows.tolist()]

    def values(self, rows: np.ndarray) -> list[list[float | int]]:
        return [[float(self._floats[r, f]) if f >= 0 else int(self._ints[r, j])
                 for j, f in enumerate(self._float_col.tolist())] for r in rows.tolist()]

    def label_bytes(self, rows: np.ndarray) -> list[bytes]:
        return [t.encode() for t in self.texts(rows)]

    def arrays(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self._ints[rows], self._floats[rows], self._float_col


FLOATS = st.one_of(st.floats(allow_nan=True, allow_infinity=True),
                   st.sampled_from([0.0, -0.0, 1e15, 1e15 - 1, 1e16, 5e-324, 2.5]))
INTS = st.one_of(st.integers(-(2**63) + 1, 2**63 - 1), st.integers(-20, 20))


@settings(max_examples=150, deadline=None)
@given(data=st.data(), columns=st.integers(1, 6), rows=st.integers(0, 8),
       omit_zero=st.booleans(), extra=st.booleans())
def test_kernel_lines_equal_python_lines_for_any_numbers(data, columns, rows, omit_zero, extra):
    kinds = data.draw(st.lists(st.booleans(), min_size=columns, max_size=columns))
    float_col = np.full(columns, -1, dtype=np.int64)
    float_col[np.flatnonzero(kinds)] = np.arange(sum(kinds))
    ints = np.array(data.draw(st.lists(st.lists(INTS, min_size=columns, max_size=columns),
                                       min_size=rows, max_size=rows)), dtype=np.int64)
    floats = np.array(data.draw(st.lists(st.lists(FLOATS, min_size=sum(kinds),
                                                  max_size=sum(kinds)),
                                         min_size=rows, max_size=rows)), dtype=np.float64)
    labels = data.draw(st.lists(st.sampled_from(['', 'a="1"', 'r="日\\"本"', 'x="\\\\"']),
                                min_size=rows, max_size=rows))
    family = Family("m", "counter" if omit_zero else "gauge", "h", ("a",),
                    value_columns("k" if extra else "", "gauge",
                                  [str(i) for i in range(columns)] if extra else ()),
                    omit_zero=omit_zero)
    if not extra:
        family = Family(family.name, family.type, "h", ("a",),
                        tuple(family.columns) * columns, omit_zero=omit_zero)
    layout = Layout(family)
    rows_ = _Rows(labels, ints.reshape(rows, columns), floats.reshape(rows, sum(kinds)),
                  float_col)
    which = np.arange(rows, dtype=np.int64)
    expected = [t.encode() for t in layout.lines(rows_.texts(which), rows_.values(which))]
    data, starts = layout.compiled(rows_, which)
    assert [data[a:b] for a, b in pairwise(starts)] == expected
    assert (data, starts) == layout.encoded(rows_, which)


def test_warm_up_and_an_empty_call():
    kernel.warm_up()
    buffer, starts = kernel.render_lines(
        *kernel.packed([]), *kernel.packed([b"x "]), *kernel.packed([b""]),
        *kernel.packed([b"x "]), np.zeros((0, 1), np.int64), np.full(1, -1, np.int64),
        *kernel.packed([]), False)
    assert len(buffer) == 0 and starts.tolist() == [0]


async def test_metrics_handler_sends_big_cached_blocks_whole(aiohttp_client, make_config):
    """Blocks larger than WRITE_CHUNK go out in slices: the body still holds every byte of
    the line writer's text, in order, on the first (formatting) and a cached scrape."""
    from metricsd.core import REGISTRY
    from metricsd.web.metrics import WRITE_CHUNK

    app = create_app(make_config({"ingest": {"max_series": 1200,
                                             "budgets": {"timings": 1000}}}))
    store = app[STORE]
    rng = np.random.default_rng(4)
    for i in range(900):
        store.observe("api", ("svc", f"/route/{i}/{ODD[i % len(ODD)]}", "GET"),
                      float(rng.lognormal(-3, 1)), time.time(), 1)
    client = await aiohttp_client(app)
    source = next(s for s in app[REGISTRY].sources() if isinstance(s, StoreSource))
    await store.refresh(time.time())
    reference = await _text(Writer(source, compiled=False), False)
    assert len(reference) > 3 * WRITE_CHUNK
    for _ in range(2):
        body = await (await client.get("/metrics")).read()
        assert reference in body
