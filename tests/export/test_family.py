"""The family model and its one writer: what is written parses back to what `samples()` says.

The check is against prometheus_client's own parsers (text and strict OpenMetrics), not
against a second renderer of ours, over any label value and any number.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Gauge
from prometheus_client.openmetrics.parser import text_string_to_metric_families as om_parse
from prometheus_client.parser import text_string_to_metric_families

from metricsd.export.family import (
    Family,
    Reader,
    RowList,
    Rows,
    histogram_columns,
    samples,
    value_columns,
)
from metricsd.export.read import Samples
from metricsd.export.registry import Registry, render


class ListSource:
    """A source over fixed blocks, built per test."""

    def __init__(self, blocks: dict[Family, list[RowList]]) -> None:
        self.blocks = blocks

    @property
    def families(self) -> list[Family]:
        return list(self.blocks)

    async def prepare(self, now: float) -> None:
        """Nothing to prepare."""

    def read(self) -> Reader:
        def rows(family: Family) -> list[Rows]:
            return list(self.blocks[family])

        return rows


label_values = st.text(min_size=0, max_size=12)  # any unicode: quotes, backslash, newline
numbers = st.one_of(
    st.integers(min_value=-(2**53), max_value=2**53),
    st.floats(allow_nan=True, allow_infinity=True),
)


def parsed(text: str, openmetrics: bool) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    parse = om_parse if openmetrics else text_string_to_metric_families
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in parse(text) for s in family.samples}


def expected(source: ListSource) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    read = source.read()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in source.families for rows in read(family)
            for s in samples(family, rows)}


def same(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


@settings(max_examples=60, deadline=None)
@given(rows=st.lists(st.tuples(label_values, label_values, numbers, numbers), max_size=6,
                     unique_by=lambda r: (r[0], r[1])),
       openmetrics=st.booleans())
async def test_any_labels_and_numbers_parse_back(rows, openmetrics):
    gauge = Family("demo_gauge", "gauge", 'help with "quotes", \\ and\nnewline', ("a", "b"))
    counter = Family("demo_events", "counter", "events", ("a", "b"),
                     value_columns("kind", "counter", ("x", "y")), omit_zero=True)
    gauges, counters = RowList(), RowList()
    for a, b, v1, v2 in rows:
        gauges.add({"a": a, "b": b}, v1)
        # counters are never negative or NaN; zeros are left out (omit_zero)
        counters.add({"a": a, "b": b}, abs(int(v1)) if isinstance(v1, int) else 0,
                     abs(int(v2)) if isinstance(v2, int) else 3)
    source = ListSource({gauge: [gauges] if rows else [], counter: [counters] if rows else []})
    registry = Registry()
    registry.add_source(source)
    text = b"".join(await render(registry, openmetrics)).decode()
    got, want = parsed(text, openmetrics), expected(source)
    assert got.keys() == want.keys()
    assert all(same(got[k], want[k]) for k in got), text
    assert all(not name.startswith("demo_events") or value != 0
               for (name, _), value in got.items())


async def test_histogram_columns_are_cumulative_buckets_then_count_and_sum():
    family = Family("demo_seconds", "histogram", "latency", ("route",),
                    histogram_columns((0.1, 1.0)))
    block = RowList()
    block.add({"route": "/a"}, 1, 3, 4, 4, 2.5)  # buckets 0.1, 1.0, +Inf, _count, _sum
    registry = Registry()
    registry.add_source(ListSource({family: [block]}))
    text = b"".join(await render(registry, True)).decode()
    [parsed_family] = [f for f in om_parse(text) if f.name == "demo_seconds"]
    assert parsed_family.type == "histogram"
    buckets = {s.labels["le"]: s.value for s in parsed_family.samples
               if s.name == "demo_seconds_bucket"}
    assert buckets == {"0.1": 1, "1.0": 3, "+Inf": 4}
    assert registry.get_sample_value("demo_seconds_sum", {"route": "/a"}) == 2.5


async def test_a_family_without_blocks_is_left_out_and_an_empty_block_keeps_its_header():
    present = Family("demo_present", "gauge", "present")
    absent = Family("demo_absent", "gauge", "absent")
    registry = Registry()
    registry.add_source(ListSource({present: [RowList()], absent: []}))
    text = b"".join(await render(registry, False)).decode()
    assert "# TYPE demo_present gauge" in text and "demo_absent" not in text


def test_duplicate_family_names_fail_at_registration():
    family = Family("demo_twice", "gauge", "once")
    registry = Registry()
    registry.add_source(ListSource({family: []}))
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        registry.add_source(ListSource({family: []}))


async def test_samples_current_reads_sources_and_plain_collectors():
    family = Family("demo_events", "counter", "events", ("a",))
    block = RowList()
    block.add({"a": "1"}, 7)
    registry = Registry()
    registry.add_source(ListSource({family: [block]}))
    gauge = Gauge("demo_plain", "a prometheus_client metric", ["b"], registry=registry)
    gauge.labels(b="2").set(3.5)
    reader = Samples(registry)
    await reader.prepare(0.0)
    assert reader.current(["demo_events_total", "demo_plain", "demo_missing"]) == {
        "demo_events_total": [({"a": "1"}, 7.0)], "demo_plain": [({"b": "2"}, 3.5)]}
    # A plain CollectorRegistry is read through its public collect().
    plain = CollectorRegistry()
    Gauge("demo_other", "other", registry=plain).set(1)
    assert Samples(plain).current(["demo_other"]) == {"demo_other": [({}, 1.0)]}


def test_rowlist_rows_are_read_by_position():
    block = RowList(const={"target": "main"})
    block.add({"db": "x"}, 1)
    block.add({"db": 'y"z'}, 2)
    rows = np.array([1], dtype=np.int64)
    assert block.texts(rows) == ['target="main",db="y\\"z"']
    assert block.labels(rows) == [{"target": "main", "db": 'y"z'}]
    assert [list(v) for v in block.values(rows)] == [[2]]
