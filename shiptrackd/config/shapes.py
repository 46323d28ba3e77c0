"""
The shape of the configuration: the frozen dataclasses a loaded Config is made of, and its value types.

This is where a setting is declared. Everything else in the package is derived from these classes
(the key schema walks their fields and type hints), so a field added here with a default is a typed
file key and SHIPTRACK_* variable at once, following the conventions in the package docstring
(`_s` durations, `duration_field()`, `x_file` for secrets, `ranged(default, low, high)`). It holds no
parsing: it imports only the stdlib. Type hints are resolved against this module's globals, so a
name used in an annotation must be imported here at run time, not under TYPE_CHECKING.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from shiptrackd.units import RateLimit as RateLimit  # re-exported: a config value type

LOG_LEVELS = ("TRACE", "DEBUG", "INFO", "SUCCESS", "WARNING", "ERROR", "CRITICAL")


def duration_field(default: float, **kwargs: Any) -> Any:
    """A float field holding seconds, written as a duration even though its name lacks `_s`."""
    return field(default=default, metadata={"duration": True}, **kwargs)


def ranged(default: Any, low: float | None, high: float) -> Any:
    """A number (or `_s` duration) field accepted only within [low, high]; low None keeps the type's default.

    Every number has a ceiling: `concurrency = 1000000` or `shutdown_grace = 1e308` must fail at
    load with the range in the message, not at run time with a stuck daemon.
    """
    return field(default=default, metadata={"min": low, "max": high})


# The providers `[provider] name` (or a [[providers]] entry's `kind`) may name. providers/ (which
# imports httpx) registers exactly these; a test keeps the two in step, so the config can reject
# an unknown name without importing it.
PROVIDER_NAMES = ("shipengine", "17track", "easypost", "aftership")

# Ceilings shared by many keys: a duration beyond ten years, or a count beyond a billion, is a typo.
MAX_DURATION_S = 10 * 365 * 86400.0
MAX_COUNT = 1_000_000_000
# A schedule faster than a second spins; one slower than a year never runs.
SCHEDULE_MIN_S, SCHEDULE_MAX_S = 1.0, 366 * 86400.0
# A configured rate above this is a typo (the sandbox tops out far below), a period above a day too.
MAX_RATE_PER_S, MAX_RATE_PERIOD_S = 10_000.0, 86400.0


class Secret:
    """A string that never prints itself: repr, str and f-strings all show ***."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __repr__(self) -> str:
        return "Secret('***')" if self._value else "Secret('')"

    def __str__(self) -> str:
        return "***" if self._value else ""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class Schedule:
    """Either a fixed interval (`interval_s`) or a five-field cron expression (`cron`)."""

    text: str
    interval_s: float | None = None
    cron: str | None = None


@dataclass(frozen=True)
class DaemonConfig:
    state_dir: Path
    socket: Path
    socket_mode: int = 0o660
    log_level: str = "INFO"  # one of LOG_LEVELS
    log_format: Literal["text", "json"] = "text"
    shutdown_grace_s: float = ranged(15.0, None, 3600)
    metrics_listen: str = ""  # "127.0.0.1:9469" serves /metrics over TCP too; "" = socket only


@dataclass(frozen=True)
class ProviderConfig:
    """[provider] (one account, `name` its kind) or one [[providers]] entry (`name` the account, `kind` its API)."""

    name: str = "shipengine"  # [provider]: one of PROVIDER_NAMES; [[providers]]: the account's name
    kind: str = ""  # one of PROVIDER_NAMES; "" = `name` (the single [provider] table)
    carriers: tuple[str, ...] = ()  # carrier codes routed to this account ([[providers]])
    default: bool = False  # takes every carrier no entry names ([[providers]]: at most one)
    api_key: Secret = field(default_factory=lambda: Secret(""))
    base_url: str = "https://api.shipengine.com"  # another provider left at this uses its own default
    webhook_secret: Secret = field(default_factory=lambda: Secret(""))
    timeout_s: float = ranged(15.0, None, 600)
    rate_limit: RateLimit | None = RateLimit(200, 60.0)  # None = unlimited
    concurrency: int = ranged(8, 1, 256)  # 2,000 took 15 s and 474 MB to start (issue 9)
    retries: int = ranged(3, 0, 20)
    circuit_breaker: int = ranged(5, 1, 10_000)  # unreachable calls in a row end a run
    max_retry_after_s: float = ranged(300.0, None, 86400)  # a longer Retry-After is clamped to this


@dataclass(frozen=True)
class CadenceConfig:
    """How long after a successful fetch a shipment is due again, by status."""

    # Defaults tuned with bench/bench_cadence.py: about 0.3x the calls of a fixed 30-minute poll
    # for the same median delay in noticing a status change.
    accepted: float = duration_field(30 * 60)  # AC: picked up, the first transit scan follows within hours
    in_transit: float = duration_field(4 * 3600)  # IT: days between scans that change the status
    out_for_delivery: float = duration_field(15 * 60)  # IT with detail OUT_FOR_DELIVERY: delivery is hours away
    delivery_attempt: float = duration_field(4 * 3600)  # AT: often not final
    exception: float = duration_field(4 * 3600)  # EX: often not final
    pickup: float = duration_field(6 * 3600)  # SP: at a collection point, waiting for DE
    unknown: float = duration_field(6 * 3600)  # UN
    not_yet_in_system: float = duration_field(30 * 60)  # NY: shortest back-off; the wait grows with age
    not_yet_in_system_max: float = duration_field(24 * 3600)
    expire_after: float = duration_field(14 * 86400)  # NY/UN for this long since creation -> expired
    delivered_confirm: float = duration_field(24 * 3600)  # DE: checked once more after this, then terminal
    failure_backoff: float = duration_field(15 * 60)  # after a failed fetch, doubling per failure
    failure_backoff_max: float = duration_field(12 * 3600)
    # With [webhooks] on: a subscribed shipment whose pushes arrive is polled only this often, as a safety
    # net (bench/bench_cadence.py, push strategies); when no push at all came for silence_after while
    # subscribed shipments exist, everyone falls back to the intervals above until pushes return.
    push_safety: float = duration_field(24 * 3600)
    silence_after: float = duration_field(6 * 3600)
    silence_critical_after: float = duration_field(24 * 3600)


@dataclass(frozen=True)
class SyncConfig:
    schedule: Schedule = Schedule("5m", interval_s=300)
    force_schedule: Schedule = Schedule("0 2 * * *", cron="0 2 * * *")
    batch_size: int = ranged(100, 1, 100_000)
    max_runtime_s: float = ranged(1800.0, None, 7 * 86400)
    # A claimed batch is this daemon's for this long (store/leases.py); a dead daemon's claims are
    # taken over after it. Each 5 s heartbeat renews the claims of a live daemon (cluster/membership.py).
    lease_s: float = ranged(300.0, 10, 86400)
    cadence: CadenceConfig = field(default_factory=CadenceConfig)


@dataclass(frozen=True)
class HealthConfig:
    schedule: Schedule = Schedule("5m", interval_s=300)
    check_timeout_s: float = ranged(30.0, None, 3600)  # a check that takes longer is reported unknown
    api_latency_warning_s: float = ranged(5.0, None, 3600)  # the connectivity probe answering slower than this warns
    sync_age_warning_s: float = 15 * 60  # no successful sync for this long: warning
    sync_age_critical_s: float = 3600.0  # ... critical
    stale_after_s: float = 36 * 3600  # an active shipment not updated for this long is stale
    stale_warning: int = ranged(
        10, 0, MAX_COUNT
    )  # more stale shipments than this: warning (`--alert-threshold` overrides)
    stale_critical: int = ranged(100, 0, MAX_COUNT)  # ... critical
    error_rate_window_s: float = 3600.0  # failed / attempted fetches over this window
    error_rate_warning: float = ranged(10.0, 0, 100)  # percent
    error_rate_critical: float = ranged(50.0, 0, 100)  # percent
    error_rate_min_attempts: int = ranged(20, 0, MAX_COUNT)  # fewer attempts in the window are not judged
    loop_failures_warning: int = ranged(1, 1, 10_000)  # a loop failing this many times in a row
    loop_failures_critical: int = ranged(3, 1, 10_000)
    loop_overdue_after_s: float = 300.0  # a loop this late past its next run is overdue
    free_disk_warning: str = "10%"  # free space in state_dir below this: bytes ("2GB") or percent ("10%")
    free_disk_critical: str = "5%"
    quick_check_interval_s: float = 3600.0  # PRAGMA quick_check at most this often (it reads the whole file)
    deliveries_age_warning_s: float = ranged(15 * 60.0, None, 30 * 86400)  # an undelivered webhook this old warns
    deliveries_dead_window_s: float = ranged(86400.0, None, 30 * 86400)  # a webhook gone dead this recently is critical
    keep_reports_s: float = 7 * 86400  # deprecated: read as [store] keep_health when that is not set


@dataclass(frozen=True)
class AlertsConfig:
    urls: tuple[Secret, ...] = ()  # Apprise URLs, each optionally prefixed "warning,critical=" (see ALERT_TAGS)
    config: Path | None = None  # an Apprise YAML or TEXT config file; its channels join `urls`, tags included
    repeat_interval_s: float = 4 * 3600
    send_resolved: bool = True
    for_reports: int = ranged(2, 1, 10_000)  # failing reports in a row before an alert fires
    resolve_after: int = ranged(2, 1, 10_000)  # passing reports in a row before it resolves
    max_per_hour: int = ranged(12, 1, 100_000)  # notifications an hour, at most (tests excluded)
    inhibit: bool = True  # hold back stale_shipments, recent_sync, error_rate while api_connectivity is critical
    delivery_timeout_s: float = ranged(20.0, None, 3600)  # one attempt to one channel
    delivery_attempts: int = ranged(3, 1, 100)  # per channel, with backoff
    host: str = ""  # the host name alerts carry; "" = this machine's
    keep_log_s: float = 30 * 86400  # deprecated: read as [store] keep_alerts when that is not set
    # The dead man's switch (alerts/heartbeat.py): a ping URL an outside service expects every interval.
    heartbeat_url: Secret = field(default_factory=lambda: Secret(""))  # "" = no heartbeat
    heartbeat_fail_url: Secret = field(default_factory=lambda: Secret(""))  # "" = heartbeat_url + "/fail"
    heartbeat_interval_s: float = field(default=60.0, metadata={"min": 1, "max": 86400})
    heartbeat_timeout_s: float = field(default=10.0, metadata={"min": 0.1, "max": 300})


DAY_S = 86400.0


def retention_field(days: float) -> Any:
    """A retention age in seconds, written as a duration: at least a day, at most ten years."""
    return field(default=days * DAY_S, metadata={"duration": True, "min": DAY_S, "max": 3650 * DAY_S})


@dataclass(frozen=True)
class StoreConfig:
    """Where the store is, and how long it keeps history (the retention loop deletes what is older)."""

    # "" = sqlite:///<state_dir>/shiptrackd.db. Or "sqlite:///abs/path.db", or "postgresql://user@host/db"
    # for several daemons on one database (README: PostgreSQL); its password from `password` or
    # `password_file` or the systemd credential `store-password`, never in the URL.
    url: str = ""
    password: Secret = field(default_factory=lambda: Secret(""))
    retention_schedule: Schedule = Schedule("1h", interval_s=3600)
    keep_runs: float = retention_field(90)  # sync_runs (the newest successful run is always kept)
    keep_errors: float = retention_field(30)  # sync_errors (never longer than their run: at most keep_runs)
    keep_health: float = retention_field(7)  # health_reports (the newest is always kept)
    keep_alerts: float = retention_field(30)  # the alert log: sent and failed deliveries
    keep_deliveries: float = retention_field(30)  # delivered and dead webhooks (and their attempts); replay reads these
    keep_terminal: float = retention_field(90)  # tracking events of shipments terminal (inactive) this long


@dataclass(frozen=True)
class ClusterConfig:
    """Several daemons on one PostgreSQL store: when a silent member counts as lost, and as gone."""

    # A member whose heartbeat is older than this is dead to the others: its running syncs are marked
    # interrupted, its deliveries in flight go back to the queue, the `cluster` check warns (and so
    # alerts). Each daemon beats every member_stale / 6, at most every 5 s (cluster/membership.py).
    member_stale_s: float = ranged(30.0, 3, 3600)
    # A member silent this long is forgotten (its row deleted): the `cluster` check is ok again once
    # the loss was alerted. Twice member_stale at least (config/relations.py).
    member_forget_s: float = ranged(3600.0, 60, 30 * 86400)


# --- leaving the box: outbound webhooks, the application's door, notices (issue 11) -------------

OUTBOUND_EVENTS = (
    "shipment.status_changed",
    "shipment.delivered",
    "shipment.exception",
    "shipment.added",
    "shipment.expired",
    "shipment.removed",
)
# The Standard Webhooks example schedule: immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h, 24 h.
DEFAULT_RETRY_SCHEDULE = (0.0, 5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 50400.0, 72000.0, 86400.0)


@dataclass(frozen=True)
class OutboundEndpoint:
    """One `[[outbound]]` table: where the application hears about changes, and which ones."""

    name: str
    url: str
    secret: Secret = field(default_factory=lambda: Secret(""))  # "whsec_" + base64 of 24-64 random bytes
    events: tuple[str, ...] = OUTBOUND_EVENTS  # any of OUTBOUND_EVENTS
    statuses: tuple[str, ...] = ()  # only changes *to* these two-letter codes; () = every status
    carriers: tuple[str, ...] = ()  # only these carrier codes; () = every carrier
    timeout_s: float = ranged(15.0, None, 300)
    retry_schedule: tuple[float, ...] = field(
        default=DEFAULT_RETRY_SCHEDULE, metadata={"duration": True, "min": 0, "max": 7 * 86400.0}
    )
    enabled: bool = True
    disable_after: float = field(default=5 * 86400.0, metadata={"duration": True, "min": 60, "max": 365 * 86400.0})


@dataclass(frozen=True)
class OutboundConfig:
    """The dispatcher's own settings (`[outbound_dispatch]`), shared by every endpoint."""

    concurrency: int = ranged(32, 1, 1024)  # deliveries in flight at once, over every endpoint
    poll_s: float = ranged(1.0, 0.01, 60)  # how often due retries are looked for (a new change wakes it at once)
    max_retry_after_s: float = ranged(86400.0, None, 7 * 86400.0)  # a longer Retry-After is clamped to this


NOTICE_FIELDS = (
    "shipment_id",
    "carrier_code",
    "tracking_number",
    "reference",
    "status",
    "status_name",
    "previous_status",
    "status_detail",
    "estimated_delivery_at",
    "latest_event",
)


@dataclass(frozen=True)
class Notice:
    """One `[[notices]]` table: tell people (Apprise) when a shipment reaches one of `on`."""

    name: str
    on: tuple[str, ...]  # two-letter status codes ("EX", "AT") or detail codes ("OUT_FOR_DELIVERY")
    to: tuple[Secret, ...] = field(metadata={"recipients": True})  # Apprise URLs, or "tag:NAME" ([alerts] config)
    title: str = "{tracking_number} ({carrier_code}): {status_name}"
    body: str = "{reference} {tracking_number} is now {status_name} {status_detail}. Latest scan: {latest_event}"
    quiet_hours: str = ""  # "22:00-07:00" (UTC): held until the end of the window; "" = none
    digest_after: int = ranged(0, 0, 10_000)  # more than this within digest_window: one digest; 0 = never
    digest_window_s: float = ranged(600.0, 1, 86400)


TOKEN_SCOPES = ("read", "write", "admin")


@dataclass(frozen=True)
class ApiToken:
    """One `[[api.tokens]]` table: a bearer token for the TCP door and what it may do."""

    name: str
    scope: Literal["read", "write", "admin"] = "read"
    token: Secret = field(default_factory=lambda: Secret(""))  # or token_file; or token_sha256
    token_sha256: str = ""  # hex SHA-256 of the token, for operators who keep only a hash


@dataclass(frozen=True)
class ApiConfig:
    """`[api]`: the optional TCP listener for the application (the Unix socket is always there)."""

    listen: str = ""  # "127.0.0.1:8790"; "" = no TCP listener
    tokens: tuple[ApiToken, ...] = ()


@dataclass(frozen=True)
class WebhooksConfig:
    """The push receiver: a TCP listener of its own, separate from the control socket; off while listen is ""."""

    listen: str = ""  # "127.0.0.1:8789"; operators put it behind their reverse proxy or tunnel
    public_url: str = ""  # where the proxy exposes the listener; providers are told <public_url>/hooks/<provider>
    jwks_url: str = "https://api.shipengine.com/jwks"  # ShipEngine's signing keys (EU: api.eu.shipengine.com)
    tolerance_s: float = ranged(300.0, 1, 86400)  # a push whose signed timestamp is further off is refused (400)
    max_body: str = "1MiB"  # a larger push body is refused (413) before it is read whole


@dataclass(frozen=True)
class Config:
    daemon: DaemonConfig
    provider: ProviderConfig = field(default_factory=ProviderConfig)
    sync: SyncConfig = field(default_factory=SyncConfig)
    health: HealthConfig = field(default_factory=HealthConfig)
    alerts: AlertsConfig = field(default_factory=AlertsConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    # [[providers]] entries (config/accounts.py reads and checks them); () = the single [provider].
    providers: tuple[ProviderConfig, ...] = field(default=(), metadata={"key": False})
    api: ApiConfig = field(default_factory=ApiConfig)
    outbound_dispatch: OutboundConfig = field(default_factory=OutboundConfig)
    outbound: tuple[OutboundEndpoint, ...] = ()  # [[outbound]] tables
    notices: tuple[Notice, ...] = ()  # [[notices]] tables
    webhooks: WebhooksConfig = field(default_factory=WebhooksConfig)
    source: Path | None = field(default=None, metadata={"key": False})  # the file it was read from
