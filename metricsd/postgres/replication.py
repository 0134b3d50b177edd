"""Replication: per-standby lag on a primary, replay delay on a standby."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg

from metricsd.postgres.base import FamilyBuilder, PgCollector, Snapshot, fetch_one, spec
from metricsd.postgres.registry import register
from metricsd.postgres.targets import ServerInfo

STAGES = ("write", "flush", "replay")

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
# Nothing left to replay means no delay, however old the last replayed commit is.
STANDBY_SQL = """
SELECT CASE WHEN pg_last_wal_receive_lsn() IS NULL
              OR pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0
            ELSE coalesce(extract(epoch FROM now() - pg_last_xact_replay_timestamp()), 0)
       END::float8 AS delay_seconds,
       coalesce(pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn()), 0)::float8
         AS replay_lag_bytes
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


@dataclass(frozen=True)
class ReplicationData:
    is_standby: bool
    standbys: tuple[Standby, ...]
    replay_delay_s: float | None  # standby only
    replay_lag_bytes: float | None  # standby only


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
             "On a standby: time since the last replayed commit while WAL is pending"),
        spec("metricsd_pg_replication_replay_lag_bytes", "gauge",
             "On a standby: WAL received but not replayed"),
    )

    async def scrape(self, conn: asyncpg.Connection, info: ServerInfo, now: float) -> Snapshot:
        in_recovery = bool(await conn.fetchval("SELECT pg_is_in_recovery()"))
        if in_recovery:
            row = await fetch_one(conn, STANDBY_SQL)
            data = ReplicationData(True, (), float(row["delay_seconds"]),
                                   float(row["replay_lag_bytes"]))
        else:
            standbys = tuple(sorted(
                (Standby(r["standby"],
                         (r["write_bytes"], r["flush_bytes"], r["replay_bytes"]),
                         (r["write_seconds"], r["flush_seconds"], r["replay_seconds"]))
                 for r in await conn.fetch(PRIMARY_SQL)),
                key=lambda s: s.name,
            ))
            data = ReplicationData(False, standbys, None, None)
        return self.snapshot(now, data)

    def fill(self, out: FamilyBuilder, data: ReplicationData) -> None:
        out.add("metricsd_pg_replication_is_standby", 1.0 if data.is_standby else 0.0)
        if not data.is_standby:
            out.add("metricsd_pg_replication_standbys", len(data.standbys))
        for s in data.standbys:
            for stage, b, sec in zip(STAGES, s.lag_bytes, s.lag_seconds, strict=True):
                out.add("metricsd_pg_replication_lag_bytes", b, standby=s.name, stage=stage)
                out.add("metricsd_pg_replication_lag_seconds", sec, standby=s.name, stage=stage)
        out.add("metricsd_pg_replication_replay_delay_seconds", data.replay_delay_s)
        out.add("metricsd_pg_replication_replay_lag_bytes", data.replay_lag_bytes)
