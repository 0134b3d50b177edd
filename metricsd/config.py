"""Configuration: YAML with ${VAR} interpolation and METRICSD_* overrides into frozen models.

Every problem is gathered into one ConfigError with its path, so an operator fixes the
file once instead of once per restart.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    IPvAnyNetwork,
    ValidationError,
    field_validator,
    model_validator,
)

from metricsd.errors import ConfigError

_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_duration(value: Any) -> float:
    """Turn '15s', '5m', '250ms', '1h' or a bare number of seconds into seconds."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 15s, 5m or 1h")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        match = _DURATION_RE.match(value)
        if match:
            return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    raise ValueError(f"invalid duration {value!r}: use a number of seconds or 250ms, 15s, 5m, 1h")


def _non_negative(value: float) -> float:
    if value < 0:
        raise ValueError("must not be negative")
    return value


Duration = Annotated[float, BeforeValidator(parse_duration), AfterValidator(_non_negative)]


def parse_listen(value: str) -> tuple[str, int]:
    """Split HOST:PORT (IPv6 as [::1]:PORT) into host and port."""
    host, sep, port = value.rpartition(":")
    if not sep or not (port.isascii() and port.isdigit()) or not 0 <= int(port) <= 65535:
        raise ValueError(f"listen must be HOST:PORT, got {value!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class WindowConfig(_Model):
    """Sliding window of the exact percentiles: the last N samples, none older than T."""

    samples: int = Field(2048, ge=16, le=1_000_000)
    seconds: Duration = 300.0


class RateLimitConfig(_Model):
    """Token bucket per client IP and per bearer token."""

    enabled: bool | None = None  # None: on, except for loopback clients
    requests_per_second: float = Field(200.0, gt=0)
    burst: int = Field(400, ge=1)
    max_clients: int = Field(10_000, ge=1)
    # Proxies (CIDRs) whose X-Forwarded-For names the real client, e.g. your load balancer.
    trusted_proxies: list[IPvAnyNetwork] = []


class BudgetsConfig(_Model):
    """Series per beacon kind out of ingest.max_series; null takes the default share."""

    timings: int | None = Field(None, ge=1)  # authenticated API series; default 60%
    vitals: int | None = Field(None, ge=1)  # anonymous browser series; default 25%
    operations: int | None = Field(None, ge=1)  # (service, operation) series; default 10%
    cache: int | None = Field(None, ge=1)  # (service, cache) pairs; default 5%


# Share of ingest.max_series a kind gets when ingest.budgets does not say.
DEFAULT_BUDGET_SHARES: dict[str, float] = {"timings": 0.6, "vitals": 0.25, "operations": 0.1,
                                           "cache": 0.05}
# Window quantiles metricsd exports (store.series.QUANTILES; tests/test_config.py keeps
# them equal): an operation's objective is checked against one of these.
OBJECTIVE_QUANTILES: tuple[float, ...] = (0.5, 0.75, 0.9, 0.95, 0.99)
# An operation is a dotted name: ws.delivery, ai.generate, export.csv.
OPERATION_NAME = re.compile(r"[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*")


class OperationConfig(_Model):
    """One operation's objective (window quantile under objective_ms) and histogram bounds."""

    objective_ms: float | None = Field(None, gt=0)
    quantile: float = 0.95
    buckets_ms: list[Annotated[float, Field(gt=0)]] = []  # added to the shared bounds

    @field_validator("quantile")
    @classmethod
    def _known_quantile(cls, value: float) -> float:
        if value not in OBJECTIVE_QUANTILES:
            raise ValueError(f"quantile must be one of {list(OBJECTIVE_QUANTILES)}")
        return value


class PagesConfig(_Model):
    """Web Vitals pages: route templates and the page budget (issue 17)."""

    templates: list[str] = []
    budget: int = Field(1000, ge=1)

    @field_validator("templates")
    @classmethod
    def _templates_are_paths(cls, value: list[str]) -> list[str]:
        bad = [t for t in value if not t.startswith("/") or "?" in t or "#" in t]
        if bad:
            raise ValueError(f"templates must be paths starting with / (no query): {bad}")
        return value


class IngestConfig(_Model):
    """Beacon ingestion limits and access."""

    tokens: list[str] = []
    cors_origins: list[str] = ["*"]
    max_series: int = Field(10_000, ge=1)
    window: WindowConfig = WindowConfig()
    max_body_bytes: int = Field(1_048_576, ge=1024)
    max_items: int = Field(10_000, ge=1)
    max_string_length: int = Field(256, ge=8, le=4096)
    max_duration_ms: float = Field(3_600_000.0, gt=0)
    series_idle_timeout: Duration = 3600.0
    vitals_dedupe_ttl: Duration = 1800.0
    vitals_dedupe_max_ids: int = Field(200_000, ge=1)
    # Core Web Vitals assessment: page views per (page, device) window below which
    # metricsd_web_vitals_cwv_pass is absent, as CrUX leaves out pages with too little data.
    vitals_min_page_views: int = Field(20, ge=1)
    pages: PagesConfig = PagesConfig()
    rate_limit: RateLimitConfig = RateLimitConfig()
    budgets: BudgetsConfig = BudgetsConfig()

    def series_budgets(self) -> dict[str, int]:
        """Series per beacon kind: what budgets sets, the rest of max_series to the others.

        Separate budgets mean anonymous browser traffic (vitals, any page a visitor makes
        up) can fill only its own share, never the slots of authenticated API series.
        """
        given = {k: v for k, v in self.budgets.model_dump().items() if v is not None}
        left = self.max_series - sum(given.values())
        unset = [k for k in DEFAULT_BUDGET_SHARES if k not in given]
        total_share = sum(DEFAULT_BUDGET_SHARES[k] for k in unset)
        out = dict(given)
        for kind in unset:
            out[kind] = max(1, int(left * DEFAULT_BUDGET_SHARES[kind] / total_share))
        return out

    @model_validator(mode="after")
    def _budgets_fit(self) -> IngestConfig:
        given = [v for v in self.budgets.model_dump().values() if v is not None]
        unset = len(DEFAULT_BUDGET_SHARES) - len(given)
        if sum(given) + unset > self.max_series:
            raise ValueError(f"budgets ({sum(given)} series, plus at least 1 per unset kind) "
                             f"exceed max_series ({self.max_series})")
        return self
    # Operation timings (issue 16): objectives and extra bucket bounds per operation name.
    operations: dict[str, OperationConfig] = {}
    cache_top_keys: int = Field(20, ge=1, le=1000)  # heavy hitters kept per cache

    @field_validator("operations")
    @classmethod
    def _operation_names(cls, value: dict[str, OperationConfig]) -> dict[str, OperationConfig]:
        bad = [name for name in value if not OPERATION_NAME.fullmatch(name)]
        if bad:
            raise ValueError(f"operation names must be dotted names like ws.delivery: {bad}")
        return value

    @field_validator("tokens")
    @classmethod
    def _tokens_not_empty(cls, value: list[str]) -> list[str]:
        if any(not token for token in value):
            raise ValueError("tokens must not be empty strings (an unset ${VAR}?)")
        return value


_DEFAULT_COLLECTORS: dict[str, bool] = {
    "statements": True, "indexes": True, "tables": True,
    "activity": True, "database": True, "replication": True,
    # pg-more (issue 13): server-wide views, each skipped where the server lacks it.
    "wraparound": True, "database_size": True, "transactions": True, "blocking": True,
    "io": True, "checkpointer": True, "bgwriter": True, "wal": True, "archiver": True,
}


def _check_collectors(value: dict[str, bool]) -> dict[str, bool]:
    unknown = sorted(set(value) - set(_DEFAULT_COLLECTORS))
    if unknown:
        raise ValueError(f"unknown collector(s) {', '.join(unknown)}; known: "
                         f"{', '.join(_DEFAULT_COLLECTORS)}")
    return value


class TargetConfig(_Model):
    """One PostgreSQL server to scrape."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.:-]+$")
    dsn: str = Field(min_length=1)
    collectors: dict[str, bool] = {}
    # Several databases of the server (docs/postgres.md "Several databases"): the
    # per-database views read each of these; None keeps the DSN's database only.
    databases: list[str] | Literal["auto"] | None = None
    include_databases: list[str] = []  # auto: regexes (full match); none: every database
    exclude_databases: list[str] = []  # auto: regexes (full match) left out
    max_databases: int = Field(50, ge=1, le=1000)  # read per target; the rest are counted

    @field_validator("collectors")
    @classmethod
    def _known_collectors(cls, value: dict[str, bool]) -> dict[str, bool]:
        return _check_collectors(value)

    @field_validator("databases")
    @classmethod
    def _database_names(cls, value: list[str] | str | None) -> list[str] | str | None:
        if isinstance(value, list):
            if not value or any(not name for name in value):
                raise ValueError("list at least one database name, or say auto")
            repeated = sorted({name for name in value if value.count(name) > 1})
            if repeated:
                raise ValueError(f"databases repeated: {', '.join(repeated)}")
        return value

    @field_validator("include_databases", "exclude_databases")
    @classmethod
    def _patterns(cls, value: list[str]) -> list[str]:
        for pattern in value:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"{pattern!r} is not a regular expression: {exc}") from None
        return value

    @model_validator(mode="after")
    def _patterns_need_auto(self) -> TargetConfig:
        if (self.include_databases or self.exclude_databases) and self.databases != "auto":
            raise ValueError(f"target {self.name!r}: include_databases and exclude_databases"
                             " filter `databases: auto` only")
        return self

    def wants_database(self, name: str) -> bool:
        """Does a discovered database pass include_databases and exclude_databases?"""
        if self.include_databases and not any(
                re.fullmatch(p, name) for p in self.include_databases):
            return False
        return not any(re.fullmatch(p, name) for p in self.exclude_databases)


class PlansConfig(_Model):
    """Plans of slow statements, plan changes and index advice (docs/plans.md)."""

    enabled: bool = True
    refresh_interval: Duration = 600.0  # how often a tracked statement's plan is re-read
    per_round: int = Field(3, ge=0, le=100)  # plans fetched per round and target at most
    round_budget: Duration = 2.0  # seconds of plan work per round and target at most
    timeout: Duration = 2.0  # statement_timeout of each EXPLAIN
    max_statements: int = Field(200, ge=1, le=10_000)
    regression_factor: float = Field(1.5, gt=1.0)  # after / before mean that is a regression
    regression_min_calls: int = Field(10, ge=1)
    regression_min_ms: float = Field(1.0, ge=0)
    explain_allow_writes: bool = False  # the runner may EXPLAIN ANALYZE writes (rolled back)
    explain_timeout: Duration = 10.0


class PostgresConfig(_Model):
    """PostgreSQL scraping: schedule, thresholds and targets."""

    scrape_interval: Duration = 15.0
    scrape_timeout: Duration = 10.0
    connect_timeout: Duration = 5.0
    statement_timeout: Duration = 5.0
    lock_timeout: Duration = 1.0
    pool_max_size: int = Field(2, ge=1, le=20)
    slow_query_ms: float = Field(500.0, gt=0)
    top_statements: int = Field(50, ge=1, le=10_000)
    query_text_length: int = Field(1000, ge=16, le=100_000)
    # Query text can hold literals (emails, tokens) and /metrics is open to anyone who can
    # reach the port: metricsd_pg_statements_query_info is exported only when this is on.
    export_query_text: bool = False
    query_text_cache: int = Field(20_000, ge=1)
    missing_index_min_rows: int = Field(10_000, ge=0)
    bloat_min_bytes: int = Field(1_048_576, ge=0)
    # An index with scans, but none for this long (last_idx_scan, PostgreSQL 16+), is unused.
    unused_index_idle: Duration = 35 * 86400.0
    long_transactions: int = Field(10, ge=1, le=100)  # top N by age: JSON, page, series
    # Tables and indexes exported per database at most (the largest by size); the rest are
    # counted in metricsd_pg_{tables,indexes}_omitted, so 100,000 tables cannot flood /metrics.
    max_relations: int = Field(2000, ge=1, le=1_000_000)
    # How often `databases: auto` targets list pg_database again (docs/postgres.md).
    discovery_interval: Duration = 120.0
    collectors: dict[str, bool] = {}
    plans: PlansConfig = PlansConfig()
    targets: list[TargetConfig] = []

    @staticmethod
    def default_collectors() -> dict[str, bool]:
        """Default on/off per collector; registering a collector missing here fails at import."""
        return dict(_DEFAULT_COLLECTORS)

    def enabled_collectors(self, target: TargetConfig) -> list[str]:
        """Collector names to run on `target`: defaults, then postgres.collectors, then its own."""
        merged = {**_DEFAULT_COLLECTORS, **self.collectors, **target.collectors}
        return [name for name, on in merged.items() if on]

    @field_validator("collectors")
    @classmethod
    def _known_collectors(cls, value: dict[str, bool]) -> dict[str, bool]:
        return _check_collectors(value)

    # A field validator, not a model one: pydantic skips model validators when any other
    # field fails, and an operator should see every problem in one go.
    @field_validator("targets")
    @classmethod
    def _unique_targets(cls, targets: list[TargetConfig]) -> list[TargetConfig]:
        names = [target.name for target in targets]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"target names must be unique, repeated: {', '.join(duplicates)}")
        return targets


class PgBouncerTargetConfig(_Model):
    """One PgBouncer admin console: dbname must be `pgbouncer`, the user a stats_users one."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.:-]+$")
    dsn: str = Field(min_length=1)


class PgBouncerConfig(_Model):
    """PgBouncer pools and stats, read from the admin console (SHOW POOLS, STATS, ...)."""

    scrape_interval: Duration = 15.0
    scrape_timeout: Duration = 5.0
    connect_timeout: Duration = 5.0
    max_pools: int = Field(1000, ge=1)  # (database, user) pools exported per target
    targets: list[PgBouncerTargetConfig] = []

    @field_validator("targets")
    @classmethod
    def _unique_targets(cls, targets: list[PgBouncerTargetConfig]
                        ) -> list[PgBouncerTargetConfig]:
        names = [target.name for target in targets]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"target names must be unique, repeated: {', '.join(duplicates)}")
        return targets


_HTTP_URL = re.compile(r"^https?://")


class ReceiverConfig(_Model):
    """A webhook (Alertmanager's or Slack's body), or Alertmanagers' alerts API."""

    name: str = Field(min_length=1)
    url: str = ""  # the webhook; for alertmanager_api, one Alertmanager (or use urls)
    # A receiver kind (alerting/notify/receivers/): alertmanager, slack, alertmanager_api;
    # alerting checks it.
    format: str = Field("alertmanager", pattern=r"^[a-z][a-z0-9_]*$")
    secret: str | None = None
    signature_header: str = "X-Metricsd-Signature"
    timeout: Duration = 10.0
    max_attempts: int = Field(5, ge=1, le=100)
    backoff: Duration = 0.5  # first retry waits about this long, doubling up to max_backoff
    max_backoff: Duration = 30.0
    send_resolved: bool = True
    headers: dict[str, str] = {}
    max_alerts: int = Field(0, ge=0)  # 0: no limit, as in Alertmanager
    # format: alertmanager_api only (Prometheus's notifier settings and defaults):
    urls: list[str] = []  # Alertmanager base URLs; each gets every alert
    resend_delay: Duration = 60.0  # firing and resolved alerts are re-sent this often
    queue_capacity: int = Field(10000, ge=1)  # per Alertmanager; the oldest are dropped
    max_batch: int = Field(64, ge=1)  # alerts per POST /api/v2/alerts
    external_labels: dict[str, str] = {}  # added to every alert's labels (alert wins)

    @field_validator("url", "urls")
    @classmethod
    def _http(cls, value: str | list[str]) -> str | list[str]:
        for url in [value] if isinstance(value, str) else value:
            if url and not _HTTP_URL.match(url):
                raise ValueError(f"{url!r} is not an http(s) URL")
        return value

    @model_validator(mode="after")
    def _targets(self) -> ReceiverConfig:
        if self.format == "alertmanager_api":
            if not self.targets:
                raise ValueError(f"receiver {self.name!r}: alertmanager_api needs urls")
        elif not self.url or self.urls:
            raise ValueError(f"receiver {self.name!r}: format {self.format} needs url "
                             "(urls is for alertmanager_api)")
        return self

    @property
    def targets(self) -> list[str]:
        """Every URL this receiver posts to: url, then urls, without repeats."""
        return list(dict.fromkeys(u for u in [self.url, *self.urls] if u))


class RouteConfig(_Model):
    """A label-matching route to a receiver, in the spirit of Alertmanager's routing tree."""

    receiver: str
    matchers: list[str] = []  # 'severity="page"', 'team=~"db|ops"', 'env!="dev"'
    group_by: list[str] | None = None
    group_wait: Duration | None = None
    group_interval: Duration | None = None
    repeat_interval: Duration | None = None
    continue_: bool = Field(False, alias="continue")


class AlertingConfig(_Model):
    """Rule evaluation, grouping and delivery."""

    rules: str | None = None
    evaluation_interval: Duration = 15.0
    receivers: list[ReceiverConfig] = []
    default_receiver: str | None = None
    fallback_receiver: str | None = None
    routes: list[RouteConfig] = []
    group_by: list[str] = ["alertname"]
    group_wait: Duration = 30.0
    group_interval: Duration = 300.0
    repeat_interval: Duration = 14400.0
    resolve_timeout: Duration = 300.0
    state_file: str | None = None
    # How long an alert restored after a restart is held as it was while fresh data comes
    # in; None: 2 x evaluation_interval + postgres.scrape_interval (and at least
    # ingest.window.seconds for rules on window quantiles). See metricsd/alerting/restore.py.
    restore_grace: Duration | None = None
    dead_letter_file: str | None = None
    # Dead letters that could not be written are kept (at most this many) and retried.
    dead_letter_buffer: int = Field(1000, ge=1, le=1_000_000)
    external_url: str | None = None

    @model_validator(mode="after")
    def _receivers_exist(self) -> AlertingConfig:
        names = {receiver.name for receiver in self.receivers}
        problems = []
        if len(names) != len(self.receivers):
            problems.append("receiver names must be unique")
        referenced = [("default_receiver", self.default_receiver)]
        referenced.append(("fallback_receiver", self.fallback_receiver))
        referenced += [(f"routes[{i}].receiver", r.receiver) for i, r in enumerate(self.routes)]
        for where, name in referenced:
            if name is not None and name not in names:
                problems.append(f"{where} names unknown receiver {name!r}")
        kinds = {receiver.name: receiver.format for receiver in self.receivers}
        if self.fallback_receiver and kinds.get(self.fallback_receiver) == "alertmanager_api":
            problems.append("fallback_receiver cannot be an alertmanager_api receiver "
                            "(Alertmanager does its own retries and routing)")
        if self.receivers and self.default_receiver is None:
            problems.append("default_receiver is required when receivers are configured")
        # The rule file and route matchers are alerting's to compile (config stays pure):
        # metricsd.alerting.rules.validate.compile_alerting, called by start-up and
        # `metricsd check-config` alike.
        if problems:
            raise ValueError("; ".join(problems))
        return self


class BasicAuthConfig(_Model):
    """HTTP Basic credentials for the page and JSON views (a browser prompts for them)."""

    username: str = Field(min_length=1)
    password: str = Field(min_length=1)


class AdminConfig(_Model):
    """Protects the overview page and JSON views (query text can be sensitive)."""

    token: str | None = None
    basic_auth: BasicAuthConfig | None = None
    history_minutes: int = Field(180, ge=10, le=10_080)


class ServerConfig(_Model):
    """HTTP connections: how long a client may take, how many sockets one address may hold."""

    header_timeout: Duration = 10.0  # from a request's first byte to the end of its headers
    body_timeout: Duration = 30.0  # to receive a beacon body; then 408 and the socket closes
    keepalive_timeout: Duration = 75.0  # an idle connection (no request) is closed after this
    max_connections_per_ip: int = Field(256, ge=1)  # beyond: 429; trusted proxies exempt


class HistoryConfig(_Model):
    """The history file behind reports: hourly rollups that survive restarts (docs/history.md)."""

    path: str | None = None  # SQLite file, created on first start; None: no history
    retention: Duration = 35 * 86400.0
    max_bytes: int = Field(1 << 30, ge=1 << 20)  # oldest days go first beyond this
    flush_interval: Duration = 10.0  # queued samples become rows this often
    max_pending: int = Field(2_000_000, ge=1000)  # queued samples at most between flushes


class ReportTargetsConfig(_Model):
    """The targets a report marks met or missed (seed values from the issue)."""

    api_p95_ms: float = Field(500.0, gt=0)
    api_p99_ms: float = Field(1000.0, gt=0)
    slow_statement_ms: float = Field(500.0, gt=0)
    lcp_p75_s: float = Field(2.5, gt=0)
    cls_p75: float = Field(0.1, gt=0)
    inp_p75_ms: float = Field(200.0, gt=0)
    cache_hit_ratio: float = Field(0.8, ge=0, le=1)
    # App caches (/v1/beacons/cache): each cache's hit ratio over the period, above this;
    # caches with fewer lookups in the period are listed but do not count for the target.
    app_cache_hit_ratio: float = Field(0.8, ge=0, le=1)
    app_cache_min_requests: int = Field(100, ge=0)
    pool_utilisation: float = Field(0.8, ge=0, le=1)
    replication_lag_s: float = Field(1.0, ge=0)


class ReportSourceConfig(_Model):
    """Where a report's figures come from: the history file, or a Prometheus-compatible API."""

    prometheus_url: str | None = Field(None, pattern=r"^https?://")
    timeout: Duration = 30.0


class ReportConfig(_Model):
    """The weekly report: its schedule, digest receivers, link and targets."""

    schedule: str | None = None  # "MON 09:00": weekday and local time; None: not scheduled
    timezone: str = "UTC"
    receivers: list[str] = []  # names of alerting.receivers that get the digest
    external_url: str | None = None  # base of the link in the digest
    top: int = Field(10, ge=1, le=1000)  # rows per ranked section
    targets: ReportTargetsConfig = ReportTargetsConfig()
    source: ReportSourceConfig = ReportSourceConfig()

    @field_validator("schedule")
    @classmethod
    def _valid_schedule(cls, value: str | None) -> str | None:
        if value is not None:
            parse_schedule(value)
        return value

    @field_validator("timezone")
    @classmethod
    def _valid_timezone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value


WEEKDAYS = ("MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN")


def parse_schedule(value: str) -> tuple[int, int, int]:
    """'MON 09:00' -> (weekday 0-6, hour, minute)."""
    match = re.fullmatch(r"\s*([A-Za-z]{3})[a-z]*\s+(\d{1,2}):(\d{2})\s*", value)
    if not match or match.group(1).upper() not in WEEKDAYS:
        raise ValueError(f"schedule must look like 'MON 09:00', got {value!r}")
    hour, minute = int(match.group(2)), int(match.group(3))
    if hour > 23 or minute > 59:
        raise ValueError(f"schedule time out of range in {value!r}")
    return WEEKDAYS.index(match.group(1).upper()), hour, minute


class Config(_Model):
    """The whole configuration; read-only once metricsd runs."""

    listen: str = "127.0.0.1:9811"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    shutdown_timeout: Duration = 10.0
    server: ServerConfig = ServerConfig()
    ingest: IngestConfig = IngestConfig()
    postgres: PostgresConfig = PostgresConfig()
    pgbouncer: PgBouncerConfig = PgBouncerConfig()
    alerting: AlertingConfig = AlertingConfig()
    admin: AdminConfig = AdminConfig()
    history: HistoryConfig = HistoryConfig()
    report: ReportConfig = ReportConfig()

    @model_validator(mode="after")
    def _report_receivers_exist(self) -> Config:
        known = {r.name for r in self.alerting.receivers}
        unknown = [n for n in self.report.receivers if n not in known]
        if unknown:
            raise ValueError(f"report.receivers names unknown receiver(s) "
                             f"{', '.join(unknown)}; define them under alerting.receivers")
        return self

    @field_validator("listen")
    @classmethod
    def _valid_listen(cls, value: str) -> str:
        parse_listen(value)
        return value

    @property
    def host(self) -> str:
        return parse_listen(self.listen)[0]

    @property
    def port(self) -> int:
        return parse_listen(self.listen)[1]


_VAR_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
ENV_PREFIX = "METRICSD_"


def _interpolate(node: Any, env: Mapping[str, str], path: str, problems: list[str]) -> Any:
    """Replace ${VAR} and ${VAR:-default} in every string of the parsed YAML."""
    if isinstance(node, dict):
        return {k: _interpolate(v, env, f"{path}.{k}" if path else str(k), problems)
                for k, v in node.items()}
    if isinstance(node, list):
        return [_interpolate(v, env, f"{path}[{i}]", problems) for i, v in enumerate(node)]
    if isinstance(node, str):
        def replace(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in env:
                return env[name]
            if default is not None:
                return default
            problems.append(f"{path}: environment variable {name} is not set")
            return ""

        return _VAR_RE.sub(replace, node)
    return node


def _apply_env_overrides(raw: dict[str, Any], env: Mapping[str, str]) -> None:
    """METRICSD_INGEST__MAX_SERIES=5000 sets ingest.max_series; values are parsed as YAML.

    Only variables whose first part names a top-level key count, so secrets such as
    METRICSD_WEBHOOK_SECRET referenced through ${VAR} are not mistaken for overrides.
    """
    top_level = set(Config.model_fields)
    for name in sorted(env):
        if not name.startswith(ENV_PREFIX):
            continue
        parts = [p.lower() for p in name[len(ENV_PREFIX):].split("__")]
        if parts[0] not in top_level:
            continue
        node = raw
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = {}
                node[part] = child
            node = child
        node[parts[-1]] = yaml.safe_load(env[name]) if env[name] else env[name]


def _format_errors(error: ValidationError) -> list[str]:
    problems = []
    for item in error.errors():
        where = ".".join(str(p) for p in item["loc"]) or "(top level)"
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown key"
        problems.append(f"{where}: {message}")
    return problems


def load_config(
    path: str | Path | None = None, env: Mapping[str, str] | None = None
) -> Config:
    """Read, interpolate, override and validate; raise ConfigError listing every problem."""
    env = os.environ if env is None else env
    raw: Any = {}
    if path is not None:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read config {path}: {exc.strerror}", [str(exc)]) from exc
        try:
            raw = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path} is not valid YAML", [str(exc)]) from exc
        if not isinstance(raw, dict):
            raise ConfigError(f"{path} must hold a mapping", ["(top level): expected a mapping"])
    problems: list[str] = []
    raw = _interpolate(raw, env, "", problems)
    _apply_env_overrides(raw, env)
    try:
        config = Config.model_validate(raw)
    except ValidationError as exc:
        problems += _format_errors(exc)
        config = None
    if problems:
        source = str(path) if path is not None else "configuration"
        raise ConfigError(f"{source}: {len(problems)} problem(s)", problems)
    assert config is not None
    return config
