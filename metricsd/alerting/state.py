"""Alert state on disk: one small JSON file, validated strictly, replaced atomically.

Holds the engine's alerts (state, active_at, fired_at...) and the notification log (what
each group last told each receiver, and when), which together make a restart neither page
again for an alert already delivered nor forget one that resolved while metricsd was down.

Reading is the one choke point for whatever is on disk: the whole file must match
`StateDocument` (a strict model of every field) or it is logged once, renamed aside to
`<file>.invalid-<UTC timestamp>` for a human, and ignored, so a foreign, truncated or
hand-edited file can never reach the engine, the page or /v1/alerts.

Writes go through a thread (os.fsync would block the loop) and coalesce: a burst of
changes becomes at most one write in flight and one queued.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from metricsd.alerting.rules.engine import fingerprint
from metricsd.alerting.stats import AlertingStats

log = logging.getLogger(__name__)

STATE_VERSION: Literal[1] = 1
MAX_STATE_BYTES = 64 * 1024 * 1024  # a state file larger than this is not ours


def _text(value: str) -> str:
    """Strings must be encodable UTF-8: JSON's \\udc80 escapes decode to lone surrogates."""
    value.encode("utf-8")  # UnicodeEncodeError is a ValueError: pydantic reports it
    return value


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError("must be a finite number")
    return value


Text = Annotated[str, AfterValidator(_text)]
Time = Annotated[float, Field(ge=0), AfterValidator(_finite)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class SavedAlert(_Strict):
    """One alert instance as the engine dumps it."""

    name: Text = Field(min_length=1)
    rule_key: Text = Field(min_length=1)
    fingerprint: Annotated[str, Field(pattern=r"^[0-9a-f]{16}$")]
    labels: dict[Text, Text]
    annotations: dict[Text, Text]
    state: Literal["pending", "firing", "resolved"]
    active_at: Time
    value: Annotated[float, AfterValidator(_finite)] | None = None
    fired_at: Time | None = None
    resolved_at: Time | None = None
    keep_firing_since: Time | None = None
    last_evaluated: Time = 0.0

    @model_validator(mode="after")
    def _consistent(self) -> SavedAlert:
        """The fingerprint is the labels' (else the engine would hold two of one alert)."""
        if fingerprint(self.labels) != self.fingerprint:
            raise ValueError("fingerprint does not match the labels")
        if self.labels.get("alertname") != self.name:
            raise ValueError("labels.alertname does not match name")
        return self


class SavedLogEntry(_Strict):
    """The last successful notification of one group to one receiver."""

    firing: list[Text]
    resolved: list[Text]
    sent_at: Time


class StateDocument(_Strict):
    """The whole state file."""

    version: Literal[1]
    saved_at: Time | None = None
    alerts: list[SavedAlert] = []
    notifications: dict[Text, SavedLogEntry] = {}


EMPTY = StateDocument(version=1)


def write_atomic(path: Path, data: dict[str, Any]) -> None:
    """Write to a temporary file in the same directory, fsync, then rename over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, separators=(",", ":"), allow_nan=False)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # make the rename itself durable
    finally:
        os.close(dir_fd)


def _problem(exc: Exception) -> str:
    """One short reason, never the file's content (it may be huge or binary)."""
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        return f"{exc.error_count()} problem(s), first at {where}: {first['msg']}"
    return f"{type(exc).__name__}: {str(exc)[:200]}"


def parse_state(raw: bytes) -> StateDocument:
    """The document in `raw`; ValueError (or ValidationError) when it is not ours."""
    if len(raw) > MAX_STATE_BYTES:
        raise ValueError(f"larger than {MAX_STATE_BYTES} bytes")
    text = raw.decode("utf-8")  # UnicodeDecodeError is a ValueError
    # json.loads accepts NaN/Infinity and deep nesting raises RecursionError: both foreign.
    try:
        data = json.loads(text, parse_constant=_refuse_constant)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None
    return StateDocument.model_validate(data)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def set_aside(path: Path, now: float) -> Path | None:
    """Rename an invalid file to `<file>.invalid-<timestamp>`; None when that fails."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
    target = path.with_name(f"{path.name}.invalid-{stamp}")
    n = 1
    while target.exists():
        target = path.with_name(f"{path.name}.invalid-{stamp}.{n}")
        n += 1
    try:
        os.replace(path, target)
    except OSError:
        return None
    return target


def read_state(path: Path, now: float | None = None) -> StateDocument:
    """The saved state, or an empty one when there is none or it is not a valid state file.

    An invalid file is logged once here and moved aside, so the next start does not
    trip over it again and the next write does not destroy what a human may want to read.
    """
    try:
        with path.open("rb") as handle:  # never more than the limit into memory
            raw = handle.read(MAX_STATE_BYTES + 1)
    except FileNotFoundError:
        return EMPTY
    except OSError as exc:
        log.warning("ignoring unreadable alert state file %s: %s", path, exc.strerror or exc)
        return EMPTY
    try:
        return parse_state(raw)
    except (ValueError, ValidationError) as exc:
        moved = set_aside(path, time.time() if now is None else now)
        where = f"renamed to {moved.name}" if moved else "could not be renamed aside"
        log.warning("ignoring invalid alert state file %s (%s; %s)", path, _problem(exc), where)
        return EMPTY


class StateFile:
    """Coalescing, atomic persistence of a snapshot the owner builds on demand."""

    def __init__(self, path: str | Path | None, snapshot: Callable[[], dict[str, Any]],
                 stats: AlertingStats) -> None:
        self.path = Path(path) if path else None
        self._snapshot = snapshot
        self._stats = stats
        self._dirty = False
        self._task: asyncio.Task[None] | None = None
        self._failing = False

    async def load(self) -> StateDocument:
        if self.path is None:
            return EMPTY
        return await asyncio.to_thread(read_state, self.path)

    def request_save(self) -> None:
        """Mark the state changed; a background task writes it soon (never blocks)."""
        if self.path is None:
            return
        self._dirty = True
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._writer())

    async def _writer(self) -> None:
        while self._dirty:
            self._dirty = False
            path = self.path  # a reload may change it, or turn persistence off
            if path is None:
                return
            data = {"version": STATE_VERSION, **self._snapshot()}
            try:
                await asyncio.to_thread(write_atomic, path, data)
            except (OSError, ValueError) as exc:
                self._stats.state_write_failures += 1
                if not self._failing:
                    log.error("cannot write alert state file %s: %s", self.path, exc)
                    self._failing = True
                continue
            self._stats.state_writes += 1
            if self._failing:
                log.info("alert state file %s is written again", self.path)
                self._failing = False

    async def flush(self) -> None:
        """Wait until every requested save is on disk (shutdown, tests)."""
        while self._task is not None and not self._task.done():
            await asyncio.shield(self._task)
        if self._dirty:
            self.request_save()
            await self.flush()
