"""Replication: per-standby lag and slots on a primary; WAL receiver and delay on a standby.

A standby cut off from its primary must not look perfect: with no streaming WAL receiver
the replay delay is the time since the last replayed transaction (it grows), instead of 0
for "nothing left to replay". On a primary a standby that disconnects takes its lag series
with it, so the number of connected standbys and the slots (an inactive slot retains WAL
until the disk fills) are exported for the alerts to watch.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import asyncpg

from metricsd.config import PostgresConfig
from metricsd.postgres.base import (
    PRIVILEGE_HINT,
    FamilyBuilder,
    PgCollector,
    Snapshot,
    fetch_one,
    spec,
)
from metricsd.postgres.registry import register
from metricsd.postgres.targets import ServerInfo

STAGES = ("write", "flush", "replay")
# A standby that disconnects is reported as missing (connected 0) for this long after it
# was last seen, and at most this many names are remembered per target.
STANDBY_MEMORY_S = 24 * 3600.0
MAX_REMEMBERED = 100

PRIMARY_SQL = """
SELECT coalesce(nullif(application_name, ''), client_addr::text, pid::text) AS standby,
       pg_wal_lsn_diff(pg_current_wal_lsn(), write_lsn)::float8 AS write_bytes,
       pg_wal_lsn_diff(pg_current_wal_lsn(), flush_lsn)::float8 AS flush_bytes,
       pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::float8 AS replay_bytes,
       extract(epoch FROM write_lag)::float8 AS write_seconds,
       extract(epoch FROM flush_lag)::float8 AS flush_seconds,
       extract(epoch FROM replay_lag)::float8 AS replay_seconds
FROM pg_stat_replication
"""
# While streaming, nothing left to replay means no delay, however old the last replayed
# commit is; without a streaming WAL receiver nothing new can arrive, so the delay is the
# age of the last replayed transaction (or of the server start, before any).
STANDBY_SQL = """
WITH receiver AS (
    SELECT status, extract(epoch FROM now() - last_msg_receipt_time)::float8 AS msg_age
    FROM pg_stat_wal_receiver LIMIT 1
), age AS (
    SELECT extract(epoch FROM now() - coalesce(pg_last_xact_replay_timestamp(),
                                               pg_postmaster_start_time()))::float8 AS s
)
SELECT CASE WHEN (SELECT status FROM receiver) = 'streaming'
             AND (pg_last_wal_receive_lsn() IS NULL
                  OR pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn()) THEN 0
            ELSE (SELECT s FROM age)
       END::float8 AS delay_seconds,
       (SELECT s FROM age) AS last_replay_age_seconds,
       coalesce(pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn()), 0)::float8
         AS replay_lag_bytes,
       (SELECT status FROM receiver) AS receiver_status,
       (SELECT msg_age FROM receiver) AS receiver_message_age
"""
# WAL a slot holds back: from its restart_lsn to the current (primary) or received
# (standby) position; NULL restart_lsn (never used, not reserved) holds nothing.
SLOTS_SQL = """
SELECT slot_name AS slot, slot_type, active,
       coalesce(pg_wal_lsn_diff(
           CASE WHEN pg_is_in_recovery() THEN pg_last_wal_receive_lsn()
                ELSE pg_current_wal_lsn() END, restart_lsn), 0)::float8 AS retained_bytes
FROM pg_replication_slots
"""


@dataclass(frozen=True, slots=True)
class Standby:
    """One standby as its primary sees it; None where the primary does not know yet."""

    name: str
    lag_bytes: tuple[float | None, float | None, float | None]  # write, flush, replay
    lag_seconds: tuple[float | None, float | None, float | None]

    def as_dict(self) -> dict[str, Any]:
        return {
            "standby": self.name,
            **{f"{stage}_lag_bytes": v for stage, v in zip(STAGES, self.lag_bytes, strict=True)},
            **{f"{stage}_lag_seconds": v
               for stage, v in zip(STAGES, self.lag_seconds, strict=True)},
        }


@dataclass(frozen=True, slots=True)
class Slot:
    """One replication slot and the WAL it keeps the server from recycling."""

    name: str
    slot_type: str
    active: bool
    retained_bytes: float

    def as_dict(self) -> dict[str, Any]:
        return {"slot": self.name, "slot_type": self.slot_type, "active": self.active,
                "retained_bytes": self.retained_bytes}


@dataclass(frozen=True)
class ReplicationData:
    is_standby: bool
    standbys: tuple[Standby, ...]
    replay_delay_s: float | None  # standby only
    replay_lag_bytes: float | None  # standby only
    slots: tuple[Slot, ...] = ()
    last_replay_age_s: float | None = None  # standby only
    receiver_status: str | None = None  # standby only; None: no WAL receiver at all
    receiver_message_age_s: float | None = None
    missing: tuple[str, ...] = ()  # primary: standbys seen before, not connected now

    @property
    def receiver_streaming(self) -> bool:
        return self.receiver_status == "streaming"


@register
class ReplicationCollector(PgCollector):
    """pg_stat_replication on a primary; WAL receive and replay positions on a standby."""

    name = "replication"
    min_server_version = 130000
    specs = (
        spec("metricsd_pg_replication_is_standby", "gauge", "1 when the target is in recovery"),
        spec("metricsd_pg_replication_standbys", "gauge", "Standbys connected to this primary"),
        spec("metricsd_pg_replication_lag_bytes", "gauge", "WAL bytes behind the primary",
             "standby", "stage"),
        spec("metricsd_pg_replication_lag_seconds", "gauge",
             "write_lag, flush_lag, replay_lag of pg_stat_replication", "standby", "stage"),
        spec("metricsd_pg_replication_replay_delay_seconds", "gauge",
             "On a standby: time since the last replayed commit while WAL is pending or no "
             "WAL receiver streams; 0 when streaming and caught up"),
        spec("metricsd_pg_replication_replay_lag_bytes", "gauge",
             "On a standby: WAL received but not replayed"),
        spec("metricsd_pg_replication_last_replay_age_seconds", "gauge",
             "On a standby: time since the last replayed transaction"),
        spec("metricsd_pg_replication_wal_receiver_streaming", "gauge",
             "On a standby: 1 when the WAL receiver streams from the primary"),
        spec("metricsd_pg_replication_wal_receiver_last_message_age_seconds", "gauge",
             "On a standby: time since the last message from the primary"),
        spec("metricsd_pg_replication_standby_connected", "gauge",
             "On a primary: 1 for a connected standby, 0 for one seen in the last 24 h that "
             "is gone", "standby"),
        spec("metricsd_pg_replication_slot_active", "gauge",
             "1 when a client (standby, logical consumer) uses the slot", "slot", "slot_type"),
        spec("metricsd_pg_replication_slot_retained_bytes", "gauge",
             "WAL the slot keeps from being recycled", "slot", "slot_type"),
    )

    def __init__(self, target: str, config: PostgresConfig) -> None:
        super().__init__(target, config)
        self._seen: OrderedDict[str, float] = OrderedDict()  # standby -> last seen

    async def scrape(self, conn: asyncpg.Connection, info: ServerInfo, now: float) -> Snapshot:
        in_recovery = bool(await conn.fetchval("SELECT pg_is_in_recovery()"))
        slots = tuple(sorted(
            (Slot(r["slot"], r["slot_type"], bool(r["active"]), float(r["retained_bytes"]))
             for r in await conn.fetch(SLOTS_SQL)), key=lambda s: s.name))
        if in_recovery:
            row = await fetch_one(conn, STANDBY_SQL)
            data = ReplicationData(
                True, (), float(row["delay_seconds"]), float(row["replay_lag_bytes"]), slots,
                float(row["last_replay_age_seconds"]), row["receiver_status"],
                row["receiver_message_age"])
        else:
            standbys = tuple(sorted(
                (Standby(r["standby"],
                         (r["write_bytes"], r["flush_bytes"], r["replay_bytes"]),
                         (r["write_seconds"], r["flush_seconds"], r["replay_seconds"]))
                 for r in await conn.fetch(PRIMARY_SQL)),
                key=lambda s: s.name,
            ))
            for s in standbys:
                self._seen[s.name] = now
                self._seen.move_to_end(s.name)
            while len(self._seen) > MAX_REMEMBERED:
                self._seen.popitem(last=False)
            connected = {s.name for s in standbys}
            missing = tuple(sorted(name for name, at in self._seen.items()
                                   if name not in connected and now - at < STANDBY_MEMORY_S))
            data = ReplicationData(False, standbys, None, None, slots, missing=missing)
        note = ""
        if not info.reads_all_stats:
            note = ("the WAL receiver's status (standby) and the standbys' positions "
                    f"(primary) are hidden; {PRIVILEGE_HINT}")
        return self.snapshot(now, data, note)

    def fill(self, out: FamilyBuilder, data: ReplicationData) -> None:
        out.add("metricsd_pg_replication_is_standby", 1.0 if data.is_standby else 0.0)
        if not data.is_standby:
            out.add("metricsd_pg_replication_standbys", len(data.standbys))
        for s in data.standbys:
            out.add("metricsd_pg_replication_standby_connected", 1.0, standby=s.name)
            for stage, b, sec in zip(STAGES, s.lag_bytes, s.lag_seconds, strict=True):
                out.add("metricsd_pg_replication_lag_bytes", b, standby=s.name, stage=stage)
                out.add("metricsd_pg_replication_lag_seconds", sec, standby=s.name, stage=stage)
        for name in data.missing:
            out.add("metricsd_pg_replication_standby_connected", 0.0, standby=name)
        out.add("metricsd_pg_replication_replay_delay_seconds", data.replay_delay_s)
        out.add("metricsd_pg_replication_replay_lag_bytes", data.replay_lag_bytes)
        if data.is_standby:
            out.add("metricsd_pg_replication_last_replay_age_seconds", data.last_replay_age_s)
            out.add("metricsd_pg_replication_wal_receiver_streaming",
                    1.0 if data.receiver_streaming else 0.0)
            out.add("metricsd_pg_replication_wal_receiver_last_message_age_seconds",
                    data.receiver_message_age_s)
        for slot in data.slots:
            labels = {"slot": slot.name, "slot_type": slot.slot_type}
            out.add_series(labels, (
                ("metricsd_pg_replication_slot_active", 1.0 if slot.active else 0.0),
                ("metricsd_pg_replication_slot_retained_bytes", slot.retained_bytes),
            ))
