"""Aggregation groups and their timers, with Alertmanager's notification semantics.

Each alert follows its routes into a group (route key + the values of its group_by
labels). A new group waits `group_wait` before its first notification (or flushes at once
when its alert has already been firing longer than that, e.g. after a restart), then
re-checks every `group_interval`. A flush notifies when a firing alert is new to the
receiver, when alerts resolved (with send_resolved), or when `repeat_interval` has passed
since the last delivery; otherwise it stays silent. Delivery happens inside the group's
own task, so a slow or dead receiver delays only its own groups, never evaluation or
other receivers. The notification log (what each group last told its receiver) is
persisted with the alert state.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import aiohttp

from metricsd.alerting.notify.deadletter import DeadLetterLog
from metricsd.alerting.notify.notification import Notification, NotifyAlert, rfc3339
from metricsd.alerting.notify.receivers.base import Receiver
from metricsd.alerting.notify.routing import Route, Router
from metricsd.alerting.stats import AlertingStats

log = logging.getLogger(__name__)

LOG_RETENTION_S = 5 * 86400.0  # Alertmanager keeps its notification log about this long


def label_set(labels: Mapping[str, str]) -> str:
    """`{alertname="X", severity="page"}`: Alertmanager's LabelSet string, sorted."""
    return "{" + ", ".join(f'{k}="{labels[k]}"' for k in sorted(labels)) + "}"


@dataclass(frozen=True)
class LogEntry:
    """The last successful notification of one group to one receiver."""

    firing: frozenset[str]
    resolved: frozenset[str]
    sent_at: float

    def to_json(self) -> dict[str, Any]:
        return {"firing": sorted(self.firing), "resolved": sorted(self.resolved),
                "sent_at": self.sent_at}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LogEntry:
        return cls(frozenset(data["firing"]), frozenset(data["resolved"]),
                   float(data["sent_at"]))


def needs_update(entry: LogEntry | None, firing: frozenset[str], resolved: frozenset[str],
                 send_resolved: bool, repeat_interval: float, now: float) -> bool:
    """Alertmanager's dedup decision for one flush."""
    if entry is None:
        return bool(firing)  # never notified: only firing alerts are worth a first message
    if not firing <= entry.firing:
        return True  # a new firing alert
    if not firing:
        # Everything resolved: tell the receiver, unless it never heard of a firing alert.
        return bool(entry.firing)
    if send_resolved and not resolved <= entry.resolved:
        return True
    return entry.sent_at + repeat_interval <= now


@dataclass
class Group:
    """One aggregation group: its alerts by fingerprint and its timer task."""

    key: str
    route: Route
    labels: dict[str, str]
    alerts: dict[str, NotifyAlert] = field(default_factory=dict)
    flushed: bool = False
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    # The alert sets of the last dead-lettered flush: retried every group_interval as
    # Alertmanager does, but written to the dead-letter log once, not once per retry.
    dead_lettered: tuple[frozenset[str], frozenset[str]] | None = None

    @property
    def log_key(self) -> str:
        return f"{self.key}|{self.route.receiver}"


class Dispatcher:
    """Routes alerts into groups, runs their timers, delivers, falls back, dead-letters."""

    def __init__(
        self,
        router: Router,
        receivers: Mapping[str, Receiver],
        session: Callable[[], aiohttp.ClientSession],
        stats: AlertingStats,
        dead_letter: DeadLetterLog,
        on_change: Callable[[], None] = lambda: None,
        fallback: str | None = None,
        external_url: str = "",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.router = router
        self.receivers = dict(receivers)
        self.session = session
        self.stats = stats
        self.dead_letter = dead_letter
        self.on_change = on_change
        self.fallback = fallback
        self.external_url = external_url
        self.clock = clock
        self.groups: dict[str, Group] = {}
        self.log: dict[str, LogEntry] = {}
        self._closed = False
        self._retiring: set[asyncio.Task[None]] = set()  # receivers replaced by a reload

    def reconfigure(self, router: Router, receivers: Mapping[str, Receiver],
                    fallback: str | None) -> None:
        """Reload: new routes and receivers; groups whose route survived keep their timers.

        A group whose route (key and receiver) is gone is stopped; its alerts are routed
        again at the next evaluation, and the notification log, keyed by group and
        receiver, keeps them from being sent twice.
        """
        previous = self.receivers
        self.router, self.receivers, self.fallback = router, dict(receivers), fallback
        for name, old in previous.items():
            if not old.direct or self.receivers.get(name) is old:
                continue
            new = self.receivers.get(name)
            if new is not None:
                new.adopt(old)  # what was sent when: no burst of resends after a reload
            task = asyncio.get_running_loop().create_task(old.close())  # drain, stop
            self._retiring.add(task)
            task.add_done_callback(self._retiring.discard)
        routes = {(r.key, r.receiver): r for r in (router.root, *router.routes)}
        for key, group in list(self.groups.items()):
            route = routes.get((group.route.key, group.route.receiver))
            if route is None or route.receiver not in self.receivers:
                del self.groups[key]
                if group.task is not None:
                    group.task.cancel()
            else:
                group.route = route

    # ---- input ------------------------------------------------------------------------

    def update(self, alerts: Iterable[NotifyAlert]) -> None:
        """Take the current firing and resolved alerts (after every evaluation); never blocks."""
        if self._closed:
            return
        now = self.clock()
        direct: dict[str, list[NotifyAlert]] = {
            name: [] for name, r in self.receivers.items() if r.direct}
        for alert in alerts:
            for route in self.router.match(alert.labels):
                if route.receiver in direct:
                    direct[route.receiver].append(alert)  # it groups (Alertmanager), not us
                    continue
                labels = route.group_labels(alert.labels)
                key = f"{route.key}:{label_set(labels)}"
                group = self.groups.get(key)
                if group is None:
                    if alert.status == "resolved":
                        entry = self.log.get(f"{key}|{route.receiver}")
                        if entry is None or alert.fingerprint not in entry.firing:
                            continue  # nobody was told it fired: nothing to resolve
                    group = Group(key, route, labels)
                    self.groups[key] = group
                    group.task = asyncio.get_running_loop().create_task(
                        self._run(group), name=f"alerts:group:{key}"
                    )
                group.alerts[alert.fingerprint] = alert
                if not group.flushed and alert.starts_at + route.group_wait <= now:
                    group.wake.set()  # waited long enough already (e.g. before a restart)
        for name, routed in direct.items():
            self.receivers[name].offer(routed, now, self.session)

    # ---- timers -----------------------------------------------------------------------

    async def _run(self, group: Group) -> None:
        delay = group.route.group_wait
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(group.wake.wait(), delay)
                group.wake.clear()
                try:
                    await self._flush(group)
                except Exception:  # a bug in one flush must not stop the group's timer
                    log.exception("flushing alert group %s failed", group.key)
                if not group.alerts:
                    break
                delay = group.route.group_interval
        finally:
            if self.groups.get(group.key) is group:
                del self.groups[group.key]

    async def _flush(self, group: Group) -> None:
        now = self.clock()
        alerts = sorted(group.alerts.values(),
                        key=lambda a: (a.starts_at, sorted(a.labels.items())))
        firing = frozenset(a.fingerprint for a in alerts if a.status == "firing")
        resolved = frozenset(a.fingerprint for a in alerts if a.status == "resolved")
        receiver = self.receivers[group.route.receiver]
        entry = self.log.get(group.log_key)
        ok = True
        if needs_update(entry, firing, resolved, receiver.config.send_resolved,
                        group.route.repeat_interval, now):
            to_send = alerts if receiver.config.send_resolved else \
                [a for a in alerts if a.status == "firing"]
            if to_send:
                ok = await self._deliver(group, receiver, to_send, (firing, resolved))
            if ok:
                group.dead_lettered = None
                self.log[group.log_key] = LogEntry(firing, resolved, now)
                self.on_change()
        group.flushed = True
        if ok:
            for alert in alerts:
                if alert.status == "resolved" and group.alerts.get(alert.fingerprint) is alert:
                    del group.alerts[alert.fingerprint]

    # ---- delivery ---------------------------------------------------------------------

    async def _deliver(self, group: Group, receiver: Receiver, alerts: list[NotifyAlert],
                       sets: tuple[frozenset[str], frozenset[str]]) -> bool:
        notification = Notification(receiver.name, group.key, group.labels, alerts,
                                    self.external_url)
        session = self.session()
        delivery = await receiver.send(notification, session)
        if delivery.ok:
            self.stats.notifications[(receiver.name, "success")] += 1
            return True
        self.stats.notifications[(receiver.name, "failure")] += 1
        errors = [f"{receiver.name}: {delivery.error} after {delivery.attempts} attempt(s)"]
        fallback = self.receivers.get(self.fallback) if self.fallback else None
        if fallback is not None and fallback is not receiver:
            backup = await fallback.send(replace(notification, receiver=fallback.name), session)
            if backup.ok:
                self.stats.notifications[(fallback.name, "success")] += 1
                self.stats.notifications[(receiver.name, "fallback")] += 1
                return True
            self.stats.notifications[(fallback.name, "failure")] += 1
            errors.append(f"{fallback.name}: {backup.error} after {backup.attempts} attempt(s)")
        self.stats.notifications[(receiver.name, "dead_letter")] += 1
        if group.dead_lettered == sets:
            return False
        group.dead_lettered = sets
        names = ", ".join(sorted({a.labels.get("alertname", "") for a in alerts} - {""}))
        await self.dead_letter.append({
            "time": rfc3339(self.clock()),
            "receiver": receiver.name,
            "group_key": group.key,
            "errors": errors,
            "payload": receiver.render(notification),
        }, names)
        return False

    # ---- persistence and shutdown -----------------------------------------------------

    def dump(self) -> dict[str, Any]:
        now = self.clock()
        return {key: entry.to_json() for key, entry in self.log.items()
                if entry.sent_at >= now - LOG_RETENTION_S}

    def restore(self, saved: Mapping[str, Any]) -> None:
        for key, data in saved.items():
            try:
                self.log[key] = LogEntry.from_json(data)
            except (KeyError, TypeError, ValueError):
                continue

    async def close(self) -> None:
        """Stop every group timer (shutdown); in-flight deliveries are cancelled."""
        self._closed = True
        tasks = [g.task for g in self.groups.values() if g.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.gather(*(r.close() for r in self.receivers.values()),
                             *self._retiring, return_exceptions=True)
