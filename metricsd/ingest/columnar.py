"""Columnar timings: one object per series with arrays, for clients that batch many samples.

    {"service": "shop", "route": "/orders/:id", "method": "GET",
     "status": [200, 200, 503] or 200, "duration_ms": [12.5, 8.1, 950.0],
     "timestamp": [1767225600.5, null, 1767225601.2]}      (timestamp optional)

Element j of an object is the row item {service, route, method, status[j],
duration_ms[j], timestamp[j]}, and is validated by exactly the rows' rules (the general
path expands it and calls the same parser); errors name the object (`index`) and the
element (`element`). The fast path handles objects of known series whose elements are all
valid: typed decoding in C, then one vectorised write per batch.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
import numpy as np

from metricsd.errors import BeaconError
from metricsd.ingest.base import (
    SERIES_LIMIT,
    BatchResult,
    BeaconType,
    Context,
    Sample,
    stamp_in_range,
)

Key = tuple[str, str, str]


def is_columnar(item: Any) -> bool:
    """A series object: its `duration_ms` is an array."""
    return type(item) is dict and type(item.get("duration_ms")) is list


def size(item: Any) -> int:
    """Samples an item stands for (what a reject of the whole object counts)."""
    if is_columnar(item):
        return max(1, len(item["duration_ms"]))
    return 1


def sample_count(items: list[Any]) -> int:
    """Samples in a batch of row items and series objects (what ingest.max_items bounds)."""
    return sum(size(item) for item in items)


def expand(
    item: dict[str, Any],
    fields: tuple[str, ...] = ("service", "route", "method"),
    per_element: str = "status",
) -> list[dict[str, Any]]:
    """The row items a series object stands for; BeaconError if its arrays do not line up.

    `fields` are shared by every element; `per_element` (timings' status, operations'
    outcome) is one value for all or an array of one per duration.
    """
    durations = item["duration_ms"]
    n = len(durations)
    if not n:
        raise BeaconError("duration_ms must be a non-empty array (or one number)", "empty")
    status = item.get(per_element)
    if type(status) is list:
        if len(status) != n:
            raise BeaconError(f"{per_element} has {len(status)} elements, duration_ms {n}: "
                              f"send one {per_element} per duration, or one for all",
                              "length_mismatch")
        statuses = status
    else:
        statuses = [status] * n
    stamps = item.get("timestamp")
    if stamps is not None and type(stamps) is not list:
        raise BeaconError("timestamp of a series object must be an array (or absent)",
                          "wrong_type")
    if stamps is not None and len(stamps) != n:
        raise BeaconError(f"timestamp has {len(stamps)} elements, duration_ms {n}: "
                          "send one per duration (null for none)", "length_mismatch")
    base = {k: item.get(k) for k in fields}
    rows = []
    for j in range(n):
        row = {**base, "duration_ms": durations[j]}
        if statuses[j] is not None:  # absent: the row's own default or missing_field
            row[per_element] = statuses[j]
        if stamps is not None and stamps[j] is not None:
            row["timestamp"] = stamps[j]
        rows.append(row)
    return rows


def ingest_series(
    beacon: BeaconType, items: list[Any], ctx: Context, fields: tuple[str, ...],
    per_element: str,
) -> BatchResult:
    """The general path of a batch with series objects (timings, operations): each element
    is parsed as the row it stands for; errors name the object and the element."""
    result = BatchResult()
    samples: list[Sample] = []
    where: list[tuple[int, int | None]] = []
    rejected = beacon.counters.rejected
    for index, item in enumerate(items):
        if not is_columnar(item):
            rows: list[Any] = [item]
            elements: list[int | None] = [None]
        else:
            try:
                rows = expand(item, fields, per_element)
            except BeaconError as exc:
                for _ in range(size(item)):
                    result.reject(index, exc)
                rejected[(beacon.name, exc.reason)] += size(item)
                continue
            elements = list(range(len(rows)))
        for row, element in zip(rows, elements, strict=True):
            try:
                samples.append(beacon.parse(row, ctx))
            except BeaconError as exc:
                result.reject(index, exc, element)
                rejected[(beacon.name, exc.reason)] += 1
                continue
            where.append((index, element))
    if samples:
        stored = beacon.store.observe_many(samples)
        limited = 0
        for ok, (index, element) in zip(stored, where, strict=True):
            if ok:
                result.accepted += 1
            else:
                result.reject(index, SERIES_LIMIT, element)
                limited += 1
        if limited:
            rejected[(beacon.name, "series_limit")] += limited
    beacon.counters.accepted[beacon.name] += result.accepted
    return result


class ColumnarDecoder:
    """Typed decoding of a body of series objects; None when anything needs the general
    path (unknown series, an invalid element, arrays that do not line up)."""

    def __init__(self, max_string_length: int, max_duration_ms: float) -> None:
        text = Annotated[str, msgspec.Meta(min_length=1, max_length=max_string_length)]
        status = Annotated[int, msgspec.Meta(ge=100, le=599)]
        duration = Annotated[float, msgspec.Meta(ge=0, le=max_duration_ms)]
        series = msgspec.defstruct(
            "TimingSeries",
            [
                ("service", text),
                ("route", text),
                ("method", text),
                ("status", status | list[status]),
                ("duration_ms", list[duration]),
                ("timestamp", list[float | None] | None, None),
            ],
            kw_only=True,
        )
        self._decode = msgspec.json.Decoder(list[series]).decode  # type: ignore[valid-type]
        self._decode_one = msgspec.json.Decoder(series).decode

    def decode(self, body: bytes) -> list[Any] | None:
        try:
            start = body.lstrip()[:1]
            return self._decode(body) if start == b"[" else [self._decode_one(body)]
        except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
            return None  # deep nesting too: the general path's decoder refuses it first


def columns(
    objects: list[Any], keys: dict[Key, Key], now: float
) -> tuple[list[Key], list[int], np.ndarray, np.ndarray, np.ndarray] | None:
    """(series keys, samples per series, values in seconds, stamps, HTTP statuses) of typed
    series objects, or None when one needs the general path. Columns are gathered as
    Python lists and converted once: a few numpy calls per batch, not per object."""
    out_keys: list[Key] = []
    counts: list[int] = []
    durations: list[float] = []
    statuses: list[int] = []
    stamps: list[float] | None = None
    for obj in objects:
        key = keys.get((obj.service, obj.route, obj.method))
        n = len(obj.duration_ms)
        if key is None or not n:
            return None
        status = obj.status
        if type(status) is list:
            if len(status) != n:
                return None
            statuses.extend(status)
        else:
            statuses.extend([status] * n)
        if obj.timestamp is not None:
            if len(obj.timestamp) != n:
                return None
            if stamps is None:
                stamps = [now] * len(durations)
            col = [now if t is None else stamp_in_range(t, now) for t in obj.timestamp]
            if None in col:
                return None
            stamps.extend(col)  # type: ignore[arg-type]
        elif stamps is not None:
            stamps.extend([now] * n)
        durations.extend(obj.duration_ms)
        out_keys.append(key)
        counts.append(n)
    values = np.array(durations, dtype=np.float64)
    values /= 1000.0  # the same IEEE division as the rows' duration_ms / 1000.0
    status_col = np.array(statuses, dtype=np.int64)
    stamp_col = np.full(len(values), now) if stamps is None else np.array(stamps, np.float64)
    return out_keys, counts, values, stamp_col, status_col
