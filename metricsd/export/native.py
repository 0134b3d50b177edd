"""Native histograms in the family model: each classic histogram series of the store also
gets a sample carrying its exponential buckets (prometheus_client's NativeHistogram), which
only the protobuf writer reads; the text writers never see these families."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

import numpy as np
from prometheus_client.metrics_core import Metric
from prometheus_client.samples import BucketSpan, NativeHistogram, Sample

from metricsd.store import exponential
from metricsd.store.series import SeriesFamily


def native_histogram(family: SeriesFamily, slot: int, count: float,
                     total: float) -> NativeHistogram:
    """One series' exponential buckets (schema, zero bucket, spans, deltas)."""
    row = family.native.get(slot)
    sparse = exponential.sparse(
        row if row is not None else np.zeros(0, dtype=np.int64),
        int(family.native_zero[slot]))
    return NativeHistogram(
        count_value=count, sum_value=total, schema=sparse.schema,
        zero_threshold=sparse.zero_threshold, zero_count=float(sparse.zero_count),
        pos_spans=tuple(BucketSpan(offset, length) for offset, length in sparse.spans),
        pos_deltas=tuple(sparse.deltas))


def with_native(metrics: Iterable[Metric], histograms: Mapping[str, str],
                families: Mapping[str, SeriesFamily]) -> Iterator[Metric]:
    """The families as given; those in `histograms` (family name -> store family) get a
    native sample added per series."""
    for metric in metrics:
        store_name = histograms.get(metric.name) if metric.type == "histogram" else None
        if store_name is not None:
            family = families[store_name]
            names = family.spec.labels
            sums = {tuple(s.labels.values()): s.value for s in metric.samples
                    if s.name == f"{metric.name}_sum"}
            natives = []
            for sample in metric.samples:
                if sample.name != f"{metric.name}_count":
                    continue
                key = tuple(sample.labels[n] for n in names)
                slot = family.slot_of.get(key)
                if slot is None:
                    continue
                natives.append(Sample(metric.name, sample.labels, sample.value,
                                      native_histogram=native_histogram(
                                          family, slot, sample.value,
                                          sums.get(tuple(sample.labels.values()), 0.0))))
            metric.samples.extend(natives)
        yield metric
