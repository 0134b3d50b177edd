"""The /v1/summary document: every beacon series with its window count, rate and quantiles.

Built as JSON bytes once per snapshot (see snapshot.py), never per request. At 10,000
series the rows take tens of milliseconds of Python, so they are encoded a chunk at a
time with a yield to the event loop between chunks: a beacon waits for one chunk at most.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import numpy as np
import orjson

from metricsd.ingest.assessment import assess
from metricsd.store.series import QUANTILES, STATUS_CLASSES, Store
from metricsd.vitals import RATINGS, VITALS

Q_NAMES = [f"p{round(q * 100)}" for q in QUANTILES]
ROWS_PER_CHUNK = 500  # about 2 ms of Python per chunk on this machine


def _quantiles(row: list[float]) -> dict[str, float | None]:
    return {name: (None if v != v else v) for name, v in zip(Q_NAMES, row, strict=True)}


def _api_rows(keys: list[tuple[str, ...]], qs: list[list[float]], counts: list[int],
              rates: list[float], tags: list[list[int]]) -> list[dict[str, Any]]:
    rows = []
    for (service, route, method), q, count, rate, status in zip(
            keys, qs, counts, rates, tags, strict=True):
        classes = dict(zip(STATUS_CLASSES, status, strict=True))
        rows.append({"service": service, "route": route, "method": method, "count": count,
                     "rate": rate, "quantiles": _quantiles(q), "status": classes,
                     "error_ratio": classes["5xx"] / count if count else None})
    return rows


def _vital_rows(name: str, labels: tuple[str, ...], keys: list[tuple[str, ...]],
                qs: list[list[float]], counts: list[int], rates: list[float],
                tags: list[list[int]]) -> list[dict[str, Any]]:
    unit = VITALS[name].unit or "unitless"
    return [{"metric": name, "unit": unit, **dict(zip(labels, key, strict=True)),
             "count": count, "rate": rate, "quantiles": _quantiles(q),
             "ratings": dict(zip(RATINGS, rating, strict=True))}
            for key, q, count, rate, rating in zip(keys, qs, counts, rates, tags, strict=True)]


def _encode(rows: list[dict[str, Any]]) -> bytes:
    """orjson; the standard library (which escapes them) for labels holding surrogates."""
    try:
        return orjson.dumps(rows)
    except orjson.JSONEncodeError:
        return json.dumps(rows).encode()


def _encode_one(doc: dict[str, Any]) -> bytes:
    """The document's head (the assessment holds page labels, maybe surrogates)."""
    try:
        return orjson.dumps(doc)
    except orjson.JSONEncodeError:
        return json.dumps(doc).encode()


async def _family_rows(store: Store, name: str, now: float) -> list[bytes]:
    """One family's rows, busiest first, as comma-joinable JSON pieces of a chunk each."""
    family = store.families[name]
    stats = store.window_stats(family, now)
    rates = stats.rates(now, store.window_seconds, store.pool.capacity, store.started_at)
    order = np.argsort(-stats.counts, kind="stable")  # ties keep insertion order
    pieces: list[bytes] = []
    for start in range(0, len(order), ROWS_PER_CHUNK):
        idx = order[start : start + ROWS_PER_CHUNK]
        keys = [stats.keys[i] for i in idx.tolist()]
        columns = (stats.quantiles[idx].tolist(), stats.counts[idx].tolist(),
                   rates[idx].tolist(), stats.tag_counts[idx].tolist())
        if name == "api":
            rows = _api_rows(keys, *columns)
        else:
            rows = _vital_rows(name, family.spec.labels, keys, *columns)
        pieces.append(_encode(rows)[1:-1])
        await asyncio.sleep(0)
    return pieces


async def series_document(store: Store, now: float, min_views: int | None = None) -> bytes:
    """The JSON document; values in seconds (CLS unitless), rates per second.

    With `min_views` it also carries the Core Web Vitals assessment per page and device
    (ingest/assessment.py) under `web_vitals_assessment`.
    """
    await store.refresh(now)
    head: dict[str, Any] = {
        "generated_at": now,
        "window": {"samples": store.pool.capacity, "seconds": store.window_seconds},
        "series": store.series_count,
        "max_series": store.pool.slots,
    }
    async with store.reading:  # no slot changes hands (expiry) between chunks
        if min_views is not None:
            head["web_vitals_assessment"] = assess(store, now, min_views)
            await asyncio.sleep(0)
        api = await _family_rows(store, "api", now)
        vitals: list[bytes] = []
        for name in sorted(n for n in store.families if n in VITALS):  # not operations
            vitals += await _family_rows(store, name, now)
    head_bytes = _encode_one(head)
    return b"".join([head_bytes[:-1], b',"api":[', b",".join(p for p in api if p),
                     b'],"web_vitals":[', b",".join(p for p in vitals if p), b"]}"])
