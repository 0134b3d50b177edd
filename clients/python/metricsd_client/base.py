"""What every sender shares: the bounded queues, the payloads, the retry policy and the counts.

The request path only calls `record()` or `record_operation()`: one tuple appended to a
deque, or one counter bumped when the queue is full. Everything that can be slow
(encoding, the network, backoff, reading cache statistics) happens on the sender's own
task or thread.
"""

from __future__ import annotations

import enum
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sized
from dataclasses import dataclass
from typing import TypeVar, cast
from urllib.parse import urlsplit

from metricsd_client.cache import CacheStats, LruCached, LruStats, TrackedCache
from metricsd_client.retry import Backoff
from metricsd_client.timer import OUTCOMES, Timer


def _json_dumps(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


_dumps: Callable[[object], bytes] = _json_dumps
try:  # orjson, when the app has it, encodes a batch about 3x faster than json
    from orjson import dumps as _orjson_dumps
except ImportError:  # pragma: no cover - no required dependencies: json it is
    pass
else:
    _dumps = _orjson_dumps


log = logging.getLogger("metricsd.client")

# route, method, status, duration in seconds, unix time when the request ended
Timing = tuple[str, str, int, float, float]
# operation, outcome, duration in seconds, unix time when it ended
Operation = tuple[str, str, float, float]
# a cache report, ready to encode
CacheReport = dict[str, object]
Item = Timing | Operation | CacheReport

F = TypeVar("F", bound=LruCached)
C = TypeVar("C")

TIMINGS_PATH = "/v1/beacons/timings"
# The beacon kinds this client sends, in delivery order: the route is /v1/beacons/<kind>.
KINDS = ("timings", "operations", "cache")


class Outcome(enum.Enum):
    """What to do with a batch after one attempt."""

    SENT = "sent"
    RETRY = "retry"  # connection error, timeout, 5xx, 429
    SPLIT = "split"  # 413: the batch is over metricsd's body limit
    REJECTED = "rejected"  # other 4xx: sending it again cannot help


def outcome_of(status: int) -> Outcome:
    """Map metricsd's answer to a next step (202 accepted, 429 and 5xx retried)."""
    if 200 <= status < 300:
        return Outcome.SENT
    if status == 413:
        return Outcome.SPLIT
    if status == 429 or status >= 500:
        return Outcome.RETRY
    return Outcome.REJECTED


@dataclass(frozen=True)
class SenderStats:
    """Counts of beacon items since start; `dropped` were refused because a queue was full."""

    queued: int
    sent: int
    dropped: int
    failed: int  # items given up after max_attempts (metricsd down too long)
    rejected: int  # items metricsd refused with a 4xx
    retries: int
    batches: int


@dataclass(frozen=True)
class Endpoint:
    """Where beacons go, split once so both transports can use it (`path` is the timings')."""

    url: str
    scheme: str
    host: str
    port: int
    path: str

    @classmethod
    def parse(cls, base_url: str) -> Endpoint:
        """Accept the metricsd base URL or the full timings URL."""
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"metricsd url must be http(s)://host[:port], got {base_url!r}")
        path = parts.path.rstrip("/")
        if not path.endswith(TIMINGS_PATH):
            path += TIMINGS_PATH
        port = parts.port or (443 if parts.scheme == "https" else 80)
        url = f"{parts.scheme}://{parts.netloc}{path}"
        return cls(url=url, scheme=parts.scheme, host=parts.hostname, port=port, path=path)

    def path_for(self, kind: str) -> str:
        """The route of a beacon kind beside the timings route: /v1/beacons/<kind>."""
        return self.path[: -len("timings")] + kind

    def url_for(self, kind: str) -> str:
        """The full URL of a beacon kind."""
        return self.url[: -len("timings")] + kind


class TimingSender:
    """Bounded queues plus delivery policy; subclasses provide the transport and the loop.

    Request timings, operations (`record_operation`, `timer`) and cache reports
    (`track_cache`, `track_lru`) share one connection and one retry policy.
    """

    def __init__(
        self,
        url: str,
        *,
        service: str,
        token: str | None = None,
        batch_size: int = 500,
        interval: float = 1.0,
        max_queue: int = 10_000,
        timeout: float = 5.0,
        max_attempts: int = 5,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        send_timestamps: bool = False,
        close_timeout: float = 5.0,
        cache_interval: float = 10.0,
    ) -> None:
        if batch_size < 1 or max_queue < 1 or interval <= 0 or max_attempts < 1:
            raise ValueError("batch_size, max_queue, max_attempts and interval must be positive")
        if cache_interval <= 0:
            raise ValueError("cache_interval must be positive")
        self.endpoint = Endpoint.parse(url)
        self.service = service
        self.batch_size = batch_size
        self.interval = interval
        self.max_queue = max_queue
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self._backoff = Backoff(backoff_initial, backoff_max, backoff_max)
        self.send_timestamps = send_timestamps
        self.close_timeout = close_timeout
        self.headers = {"Content-Type": "application/json", "User-Agent": "metricsd-client/1"}
        if token:
            self.headers["Authorization"] = f"Bearer {token}"
        self.cache_interval = cache_interval
        self._queue: deque[Timing] = deque()
        self._operations: deque[Operation] = deque()
        self._reports: deque[CacheReport] = deque()
        self._caches: list[CacheStats] = []
        self._last_cache_report = time.monotonic()
        self._inflight: list[Item] = []  # the batch being delivered, for shutdown accounting
        self._count_lock = threading.Lock()  # counters may be bumped from app threads (WSGI)
        self._dropped = 0
        self._sent = 0
        self._failed = 0
        self._rejected = 0
        self._retries = 0
        self._batches = 0
        self._warned: set[str] = set()

    # --- the request path -------------------------------------------------------------

    def record(self, route: str, method: str, status: int, duration: float) -> None:
        """Queue one timing; never blocks, never raises, counts it when the queue is full."""
        queue = self._queue
        if len(queue) >= self.max_queue:
            with self._count_lock:
                self._dropped += 1
            return
        queue.append((route, method, status, duration, time.time()))
        if len(queue) >= self.batch_size:
            self._wake()

    def record_operation(self, operation: str, duration: float, outcome: str = "ok") -> None:
        """Queue one operation measured elsewhere (seconds); never blocks, never raises."""
        if outcome not in OUTCOMES:
            outcome = "error"
        queue = self._operations
        if len(queue) >= self.max_queue:
            with self._count_lock:
                self._dropped += 1
            return
        queue.append((operation, outcome, duration, time.time()))
        if len(queue) >= self.batch_size:
            self._wake()

    def timer(self, operation: str) -> Timer:
        """`with sender.timer("ai.generate"):` or `@sender.timer(...)` (sync or async)."""
        return Timer(operation, self.record_operation)

    def add_cache(self, stats: CacheStats) -> CacheStats:
        """Report this cache's counts every `cache_interval` seconds (and at close)."""
        self._caches.append(stats)
        return stats

    def track_lru(self, func: F, name: str | None = None) -> F:
        """Report a functools.lru_cache's hits, misses, evictions and size; returns `func`."""
        label = name or str(getattr(func, "__qualname__", "lru_cache"))
        self.add_cache(LruStats(label, func))
        return func

    def track_cache(self, cache: C, name: str, *, size_bytes: Callable[[], int] | None = None,
                    top_keys: int = 10) -> TrackedCache[C]:
        """Wrap a get/set cache object: use the wrapper where the app used the cache."""
        sized = cast(Sized, cache)
        entries = (lambda: len(sized)) if hasattr(cache, "__len__") else None
        stats = CacheStats(name, entries=entries, size_bytes=size_bytes, top_keys=top_keys)
        self.add_cache(stats)
        return TrackedCache(cache, stats)

    def _wake(self) -> None:
        """Ask the background loop to send now instead of at the next interval."""

    # --- shared delivery logic --------------------------------------------------------

    def stats(self) -> SenderStats:
        """A consistent-enough snapshot for logs, tests and the Prometheus collector."""
        return SenderStats(
            queued=len(self._queue) + len(self._operations) + len(self._reports),
            sent=self._sent, dropped=self._dropped,
            failed=self._failed, rejected=self._rejected, retries=self._retries,
            batches=self._batches,
        )  # fmt: skip

    def _take(self) -> tuple[str, list[Item]]:
        """Pop up to batch_size items of one kind (popleft is atomic: app threads may append).

        The kind is "" when every queue is empty.
        """
        for kind, queue in (("timings", self._queue), ("operations", self._operations),
                            ("cache", self._reports)):
            if queue:
                batch: list[Item] = []
                for _ in range(min(self.batch_size, len(queue))):
                    batch.append(queue.popleft())
                return kind, batch
        return "", []

    def collect_caches(self, force: bool = False) -> None:
        """Queue one report per tracked cache once `cache_interval` has passed (or `force`)."""
        now = time.monotonic()
        if not self._caches or (not force and now - self._last_cache_report < self.cache_interval):
            return
        self._last_cache_report = now
        for stats in self._caches:
            try:
                report = stats.report()
            except Exception as exc:  # a cache whose size cannot be read must not stop the rest
                self._warn_once(f"cache:{stats.name}", "metricsd client: cache %s: %s: %s",
                                stats.name, type(exc).__name__, exc)
                continue
            if report is not None:
                report["service"] = self.service
                if len(self._reports) < self.max_queue:
                    self._reports.append(report)
                else:
                    with self._count_lock:
                        self._dropped += 1

    def encode_kind(self, kind: str, batch: list[Item], retry: bool = False) -> bytes:
        """The JSON array that /v1/beacons/<kind> takes."""
        if kind == "timings":
            return self.encode(cast(list[Timing], batch), retry)
        if kind == "operations":
            stamped = self.send_timestamps or retry
            service = self.service
            items = []
            for operation, outcome, duration, stamp in cast(list[Operation], batch):
                item: dict[str, object] = {
                    "service": service, "operation": operation, "outcome": outcome,
                    "duration_ms": round(duration * 1000.0, 4),
                }  # fmt: skip
                if stamped:
                    item["timestamp"] = round(stamp, 3)
                items.append(item)
            return _dumps(items)
        return _dumps(batch)

    def encode(self, batch: list[Timing], retry: bool = False) -> bytes:
        """The columnar JSON metricsd's /v1/beacons/timings takes: one object per route and
        method, with arrays of statuses (one number when all are equal) and durations.

        Timestamps are left out by default: metricsd stamps on arrival, at most one interval
        later, and objects without them take its fast path. A retried batch is late, so it
        carries them.
        """
        stamped = self.send_timestamps or retry
        service = self.service
        series: dict[tuple[str, str], dict[str, list[object]]] = {}
        for route, method, status, duration, stamp in batch:
            columns = series.get((route, method))
            if columns is None:
                columns = series[(route, method)] = {"status": [], "duration_ms": []}
                if stamped:
                    columns["timestamp"] = []
            columns["status"].append(status)
            columns["duration_ms"].append(round(duration * 1000.0, 4))
            if stamped:
                columns["timestamp"].append(round(stamp, 3))
        objects = []
        for (route, method), columns in series.items():
            statuses = columns["status"]
            first = statuses[0]
            obj: dict[str, object] = {
                "service": service, "route": route, "method": method,
                "status": first if statuses.count(first) == len(statuses) else statuses,
                "duration_ms": columns["duration_ms"],
            }  # fmt: skip
            if stamped:
                obj["timestamp"] = columns["timestamp"]
            objects.append(obj)
        return _dumps(objects)

    def backoff(self, attempt: int, retry_after: float | None = None) -> float:
        """metricsd.retry's policy: equal-jitter backoff; a longer Retry-After wins (capped)."""
        return self._backoff.delay(attempt, retry_after)

    def after_attempt(
        self, batch: list[Item], attempt: int, status: int, retry_after: float | None,
        detail: str, closing: bool,
    ) -> NextStep:
        """What one POST's result means, shared by the async and the thread sender.

        Sans I/O: it notes the outcome in the stats and says whether to stop, to deliver
        two halves instead (413), or to wait and try again.
        """
        outcome = outcome_of(status) if status else Outcome.RETRY
        if outcome is Outcome.SENT:
            self._note_sent(batch)
            return NextStep()
        if outcome is Outcome.SPLIT and len(batch) > 1:
            return NextStep(halves=split(batch))
        if outcome in (Outcome.REJECTED, Outcome.SPLIT):
            self._note_rejected(batch, status, detail)
            return NextStep()
        problem = detail if not status else f"HTTP {status}"
        self._note_retry(problem)
        if closing or attempt >= self.max_attempts - 1:
            self._note_failed(batch, problem)
            return NextStep()
        return NextStep(wait=self.backoff(attempt, retry_after))

    def _note_sent(self, batch: list[Item]) -> None:
        with self._count_lock:
            self._sent += len(batch)
            self._batches += 1
        if self._warned:
            log.info("metricsd client: delivering to %s again", self.endpoint.url)
            self._warned.clear()

    def _note_rejected(self, batch: list[Item], status: int, reason: str) -> None:
        with self._count_lock:
            self._rejected += len(batch)
        self._warn_once(f"rejected:{status}", "metricsd rejected %d beacon items with %s: %s",
                        len(batch), status, reason[:200])

    def _note_retry(self, problem: str) -> None:
        with self._count_lock:
            self._retries += 1
        self._warn_once(f"retry:{problem.split(':', 1)[0]}",
                        "metricsd client: %s (%s); retrying with backoff, the app is not slowed",
                        problem, self.endpoint.url)

    def _note_failed(self, batch: list[Item], problem: str) -> None:
        with self._count_lock:
            self._failed += len(batch)
        self._warn_once("failed",
                        "metricsd client: gave up on %d beacon items after %d attempts (%s)",
                        len(batch), self.max_attempts, problem)

    def _warn_once(self, key: str, message: str, *args: object) -> None:
        """Log a fault the first time only, so a down metricsd does not flood the app's log."""
        if key not in self._warned:
            self._warned.add(key)
            log.warning(message, *args)


@dataclass(frozen=True)
class NextStep:
    """After an attempt: wait this long and retry, deliver these halves, or (neither) stop."""

    wait: float | None = None
    halves: tuple[list[Item], list[Item]] | None = None


def split(batch: list[Item]) -> tuple[list[Item], list[Item]]:
    """Halve a batch metricsd found too large (413)."""
    middle = len(batch) // 2
    return batch[:middle], batch[middle:]
