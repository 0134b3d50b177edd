"""Every write path of the store feeds the history exactly once per accepted sample.

Random mixes of every beacon shape (one row, small and large lists, known and new series,
columnar objects alone and mixed with rows, invalid items and elements, series refused by
the budget, repeated Web Vitals ids) go through a running app; the history file's counts
per series and status class / rating must equal what an independent model of the same
requests says was accepted, and what the store itself counted.
"""

from __future__ import annotations

import json
import random
import sqlite3
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from metricsd.app import create_app
from metricsd.config import Config
from metricsd.core import REGISTRY
from metricsd.history import HISTORY_DB

WORDS = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india",
         "juliet", "kilo", "lima", "mike", "november", "oscar")
BUDGET = 12  # series per beacon kind: the mixes below ask for up to 30 of each
LCP_MS = {1000.0: 0, 3000.0: 1, 5000.0: 2}  # well inside good / needs-improvement / poor

Series = tuple[str, ...]


class Model:
    """What metricsd should accept: slots go to series in arrival order, up to BUDGET."""

    def __init__(self) -> None:
        self.slots: dict[str, set[Series]] = {"timings": set(), "vitals": set()}
        self.counts: Counter[tuple[str, Series, int]] = Counter()  # (family, key, tag)
        self.seen_ids: set[str] = set()
        self.accepted: Counter[str] = Counter()

    def store(self, kind: str, family: str, key: Series, tag: int) -> None:
        taken = self.slots[kind]
        if key not in taken:
            if len(taken) >= BUDGET:
                return  # refused: series_limit
            taken.add(key)
        self.counts[(family, key, tag)] += 1
        self.accepted[kind] += 1

    def timing(self, route: str, method: str, status: int, duration_ms: float) -> None:
        if duration_ms >= 0:
            self.store("timings", "api", ("shop", route, method), status // 100 - 1)

    def vital(self, page: str, ident: str, value: float) -> None:
        if ident in self.seen_ids:  # a repeated id updates its sample: one page view
            self.accepted["vitals"] += 1
            return
        before = self.accepted["vitals"]
        # Vitals series are (page, device); a client that is no browser is "unknown".
        self.store("vitals", "LCP", (page, "unknown"), LCP_MS[value])
        if self.accepted["vitals"] > before:
            self.seen_ids.add(ident)


def row(rng: random.Random, model: Model, bad: float, known: bool = False) -> dict[str, Any]:
    if known and model.slots["timings"]:  # only series that have a slot already
        _, route, method = rng.choice(sorted(model.slots["timings"]))
    else:
        route, method = f"/{rng.choice(WORDS)}", rng.choice(("GET", "POST"))
    status = rng.choice((200, 201, 304, 404, 503))
    duration = -1.0 if rng.random() < bad else round(rng.uniform(0.5, 2000.0), 3)
    model.timing(route, method, status, duration)
    return {"service": "shop", "route": route, "method": method, "status": status,
            "duration_ms": duration}


def series_object(rng: random.Random, model: Model, bad: float) -> dict[str, Any]:
    route, method = f"/{rng.choice(WORDS)}", rng.choice(("GET", "POST"))
    n = rng.choice((1, 2, 5, 40, 300))
    statuses = [rng.choice((200, 404, 500)) for _ in range(n)]
    durations = [-1.0 if rng.random() < bad else round(rng.uniform(0.5, 900.0), 3)
                 for _ in range(n)]
    for status, duration in zip(statuses, durations, strict=True):
        model.timing(route, method, status, duration)
    one_status = len(set(statuses)) == 1 and rng.random() < 0.5
    return {"service": "shop", "route": route, "method": method,
            "status": statuses[0] if one_status else statuses, "duration_ms": durations}


def timings_body(rng: random.Random, model: Model) -> Any:
    """One request body of a randomly chosen shape; the model learns its items in order."""
    bad = rng.choice((0.0, 0.0, 0.1))
    shape = rng.choice(("row", "few", "many", "known", "object", "objects", "mixed"))
    if shape == "row":
        return row(rng, model, bad)
    if shape == "few":  # under the store's VECTOR_BATCH: the scalar path
        return [row(rng, model, bad) for _ in range(rng.randint(1, 3))]
    if shape == "many":  # vectorised: the store allocates slots and applies the budget
        return [row(rng, model, bad) for _ in range(rng.randint(4, 400))]
    if shape == "known":  # every series has a slot: ingest's compiled write, no lookup
        return [row(rng, model, 0.0, known=True) for _ in range(rng.randint(4, 400))]
    if shape == "object":
        return series_object(rng, model, bad)
    if shape == "objects":
        return [series_object(rng, model, bad) for _ in range(rng.randint(1, 4))]
    return [row(rng, model, bad) if rng.random() < 0.5 else series_object(rng, model, bad)
            for _ in range(rng.randint(2, 6))]


def vitals_body(rng: random.Random, model: Model, ids: list[str]) -> list[dict[str, Any]]:
    out = []
    for _ in range(rng.choice((1, 2, 3, 10, 120))):
        if ids and rng.random() < 0.15:
            ident = rng.choice(ids)  # reported again (web-vitals does, on page hide)
        else:
            ident = f"v5-{len(ids)}-{rng.random():.6f}"
            ids.append(ident)
        page, value = f"/{rng.choice(WORDS)}", rng.choice(tuple(LCP_MS))
        model.vital(page, ident, value)
        out.append({"name": "LCP", "value": value, "rating": "good", "delta": value,
                    "id": ident, "navigationType": "navigate", "page": page})
    return out


def history_counts(path: Path) -> Counter[tuple[str, Series, int]]:
    """(family, key, tag) -> samples, summed over hours, straight from the file."""
    out: Counter[tuple[str, Series, int]] = Counter()
    conn = sqlite3.connect(path)
    try:
        for family, key, count, tags in conn.execute(
                "SELECT s.family, s.key, b.count, b.tags FROM beacon_hours b "
                "JOIN series s ON s.id = b.series"):
            per_tag = np.frombuffer(tags, dtype="<u4")
            assert int(per_tag.sum()) == count
            for tag, n in enumerate(per_tag.tolist()):
                if n:
                    out[(family, tuple(json.loads(key)), tag)] += n
    finally:
        conn.close()
    return out


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
async def test_history_counts_equal_what_was_accepted_on_every_path(
        aiohttp_client: Any, make_config: Callable[..., Config], tmp_path: Path,
        seed: int) -> None:
    path = tmp_path / "h.sqlite"
    config = make_config({"history": {"path": str(path), "flush_interval": 3600},
                          # The other kinds (operations, cache) get what is left over.
                          "ingest": {"max_series": 2 * BUDGET + 8,
                                     "budgets": {"timings": BUDGET, "vitals": BUDGET},
                                     "rate_limit": {"enabled": False}}})
    app = create_app(config)
    client = await aiohttp_client(app)
    rng, model = random.Random(seed), Model()
    ids: list[str] = []
    for i in range(40):
        if i % 4 == 3:
            resp = await client.post("/v1/beacons/vitals", json=vitals_body(rng, model, ids))
        else:
            resp = await client.post("/v1/beacons/timings", json=timings_body(rng, model))
        assert resp.status in (202, 400), await resp.text()
        if i % 13 == 0:
            await app[HISTORY_DB].flush()  # some rows merge into rows already written
    await app[HISTORY_DB].flush()
    got = history_counts(path)
    assert sum(got.values()) > 500  # the mix really sent something
    assert got == model.counts
    registry = app[REGISTRY]
    for kind in ("timings", "vitals"):
        accepted = registry.get_sample_value("metricsd_ingest_accepted_total", {"type": kind})
        assert accepted == model.accepted[kind]
    per_series: Counter[tuple[str, Series]] = Counter()
    for (family, key, _), n in got.items():
        per_series[(family, key)] += n
    for (family, key), n in per_series.items():  # the store's own histogram agrees
        if family == "api":
            labels = dict(zip(("service", "route", "method"), key, strict=True))
            name = "metricsd_api_request_duration_seconds_count"
        else:
            labels = {"page": key[0], "device": key[1]}
            name = "metricsd_web_vitals_lcp_seconds_count"
        assert registry.get_sample_value(name, labels) == n, (family, key)
    assert app[HISTORY_DB].tap.dropped == 0 and app[HISTORY_DB].tap.unmapped == 0
