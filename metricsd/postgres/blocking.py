"""Blocking chains: who waits on whose lock, from pg_blocking_pids.

pg_blocking_pids takes the lock manager's partition locks, so it is called only for
backends that wait on a lock (`wait_event_type = 'Lock'`); on a server without lock
waits the query reads pg_stat_activity and nothing else. A root is a session that
blocks others and waits on nobody: the one to look at (or terminate).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import asyncpg

from metricsd.postgres.base import FamilyBuilder, PgCollector, Snapshot, spec
from metricsd.postgres.registry import register
from metricsd.postgres.targets import ServerInfo
from metricsd.postgres.transactions import LABEL_MAX, HasData

MAX_ROOTS = 10  # roots with their own series; the JSON API lists them all

# pg_locks.waitstart (14+) says since when a backend waits; on 13 the query's start is
# the best bound there is.
_WAIT_START = {
    True: "(SELECT min(l.waitstart) FROM pg_locks l WHERE l.pid = a.pid AND NOT l.granted)",
    False: "a.query_start",
}
BLOCKING_SQL = """
WITH waiting AS (
    SELECT pid, pg_blocking_pids(pid) AS blockers
    FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND pid <> pg_backend_pid()
)
SELECT a.pid, coalesce(w.blockers, '{{}}'::int[]) AS blocked_by,
       coalesce(a.datname, '') AS datname, coalesce(a.usename, '') AS usename,
       coalesce(a.application_name, '') AS application, coalesce(a.state, '') AS state,
       coalesce(a.wait_event_type, '') AS wait_event_type,
       coalesce(a.wait_event, '') AS wait_event,
       CASE WHEN w.pid IS NOT NULL
            THEN extract(epoch FROM now() - {wait_start})::float8 END AS wait_seconds,
       extract(epoch FROM now() - a.xact_start)::float8 AS xact_seconds,
       left(a.query, $1) AS query
FROM pg_stat_activity a LEFT JOIN waiting w ON w.pid = a.pid
WHERE w.pid IS NOT NULL OR a.pid IN (SELECT unnest(blockers) FROM waiting)
ORDER BY a.pid
"""


def blocking_sql(version_num: int) -> str:
    return BLOCKING_SQL.format(wait_start=_WAIT_START[version_num >= 140000])


@dataclass(frozen=True, slots=True)
class Session:
    """A backend in a blocking chain: waiting (blocked_by non-empty), blocking, or both."""

    pid: int
    blocked_by: tuple[int, ...]
    datname: str
    user: str
    application: str
    state: str
    wait_event_type: str
    wait_event: str
    wait_s: float | None
    xact_s: float | None
    query: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "pid": self.pid, "blocked_by": list(self.blocked_by), "datname": self.datname,
            "user": self.user, "application": self.application, "state": self.state,
            "wait_event_type": self.wait_event_type or None,
            "wait_event": self.wait_event or None, "wait_seconds": self.wait_s,
            "transaction_seconds": self.xact_s, "query": self.query,
        }


@dataclass(frozen=True, slots=True)
class Root:
    """A session that blocks others and waits on nobody, with what hangs behind it."""

    pid: int
    blocked: int  # sessions waiting on it, directly or through others
    depth: int  # longest chain below it (1: sessions wait on it directly)


@dataclass(frozen=True)
class BlockingData:
    sessions: tuple[Session, ...]
    roots: tuple[Root, ...]  # most sessions blocked first

    @property
    def blocked(self) -> int:
        return sum(1 for s in self.sessions if s.blocked_by)

    @property
    def max_depth(self) -> int:
        return max((r.depth for r in self.roots), default=0)

    @property
    def longest_wait_s(self) -> float:
        return max((s.wait_s or 0.0 for s in self.sessions if s.blocked_by), default=0.0)

    def as_dict(self) -> dict[str, Any]:
        by_pid = {s.pid: s for s in self.sessions}
        return {
            "blocked_sessions": self.blocked, "max_depth": self.max_depth,
            "longest_wait_seconds": self.longest_wait_s,
            # A prepared transaction blocks as pid 0 and has no pg_stat_activity row.
            "roots": [{**(by_pid[r.pid].as_dict() if r.pid in by_pid else {"pid": r.pid}),
                       "blocked_sessions": r.blocked, "depth": r.depth} for r in self.roots],
            "sessions": [s.as_dict() for s in self.sessions],
        }


def chains(edges: dict[int, tuple[int, ...]]) -> list[Root]:
    """Roots of the wait-for graph (waiter -> blockers), their transitive waiters and depth.

    A cycle (a deadlock the server has not broken yet) has no root; its members still
    count as blocked.
    """
    waiters: dict[int, set[int]] = {}
    for waiter, blockers in edges.items():
        for blocker in blockers:
            waiters.setdefault(blocker, set()).add(waiter)
    roots = []
    for pid in sorted(waiters):
        if edges.get(pid):
            continue  # waits itself: not a root
        seen: set[int] = set()
        frontier, depth = {pid}, 0
        while frontier:
            below = {w for p in frontier for w in waiters.get(p, ()) if w not in seen and w != pid}
            if not below:
                break
            seen |= below
            frontier = below
            depth += 1
        roots.append(Root(pid, len(seen), depth))
    roots.sort(key=lambda r: (-r.blocked, -r.depth, r.pid))
    return roots


def blocking(targets: Iterable[HasData]) -> dict[str, Any]:
    """target -> its blocking chains, for the JSON API."""
    out = {}
    for ts in targets:
        data: BlockingData | None = ts.data("blocking")
        out[ts.name] = data.as_dict() if data is not None else None
    return out


@register
class BlockingCollector(PgCollector):
    """Lock waiters and their blockers from pg_stat_activity and pg_blocking_pids."""

    name = "blocking"
    min_server_version = 130000
    specs = (
        spec("metricsd_pg_blocking_blocked_sessions", "gauge",
             "Sessions waiting on a lock another session holds"),
        spec("metricsd_pg_blocking_roots", "gauge",
             "Sessions that block others and wait on nobody"),
        spec("metricsd_pg_blocking_max_depth", "gauge",
             "Longest blocking chain (1: sessions wait on a root directly)"),
        spec("metricsd_pg_blocking_longest_wait_seconds", "gauge",
             "Longest current lock wait behind another session"),
        spec("metricsd_pg_blocking_root_blocked_sessions", "gauge",
             "Sessions waiting (directly or not) on the rank-th root", "rank"),
        spec("metricsd_pg_blocking_root_info", "gauge",
             "Who the rank-th root is; always 1", "rank", "pid", "datname", "user",
             "application", "state"),
    )

    async def scrape(self, conn: asyncpg.Connection, info: ServerInfo, now: float) -> Snapshot:
        rows = await conn.fetch(blocking_sql(info.version_num), self.config.query_text_length)
        sessions = tuple(
            Session(
                pid=int(r["pid"]), blocked_by=tuple(sorted(int(p) for p in r["blocked_by"])),
                datname=r["datname"], user=r["usename"], application=r["application"],
                state=r["state"], wait_event_type=r["wait_event_type"],
                wait_event=r["wait_event"],
                wait_s=None if r["wait_seconds"] is None else max(0.0, r["wait_seconds"]),
                xact_s=r["xact_seconds"], query=r["query"] or "",
            )
            for r in rows
        )
        roots = chains({s.pid: s.blocked_by for s in sessions if s.blocked_by})
        return self.snapshot(now, BlockingData(sessions, tuple(roots)))

    def fill(self, out: FamilyBuilder, data: BlockingData) -> None:
        out.add("metricsd_pg_blocking_blocked_sessions", data.blocked)
        out.add("metricsd_pg_blocking_roots", len(data.roots))
        out.add("metricsd_pg_blocking_max_depth", data.max_depth)
        out.add("metricsd_pg_blocking_longest_wait_seconds", data.longest_wait_s)
        by_pid = {s.pid: s for s in data.sessions}
        for rank, root in enumerate(data.roots[:MAX_ROOTS], start=1):
            out.add("metricsd_pg_blocking_root_blocked_sessions", root.blocked, rank=str(rank))
            s = by_pid.get(root.pid)
            if s is not None:
                out.add("metricsd_pg_blocking_root_info", 1.0, rank=str(rank), pid=str(s.pid),
                        datname=s.datname, user=s.user,
                        application=s.application[:LABEL_MAX], state=s.state)
