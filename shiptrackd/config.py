"""
Configuration: TOML file < SHIPTRACK_<SECTION>__<KEY> environment < nothing else.

Loading produces a frozen Config or raises ConfigError naming the key, the value
and what was expected; the daemon turns that into exit code 78.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from cronsim import CronSim  # noqa: F401  (used by the loader to validate cron expressions)


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
class RateLimit:
    """`count` requests per `period_s` seconds, e.g. "200/min" -> RateLimit(200, 60)."""

    count: int
    period_s: float

    @property
    def per_second(self) -> float:
        return self.count / self.period_s


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
    log_level: str = "INFO"
    log_format: str = "text"  # "text" | "json"
    shutdown_grace_s: float = 15.0
    metrics_listen: str = ""  # "127.0.0.1:9469" serves /metrics over TCP too; "" = socket only


@dataclass(frozen=True)
class ProviderConfig:
    name: str = "shipengine"
    api_key: Secret = field(default_factory=lambda: Secret(""))
    base_url: str = "https://api.shipengine.com"
    webhook_secret: Secret = field(default_factory=lambda: Secret(""))
    timeout_s: float = 15.0
    rate_limit: RateLimit | None = RateLimit(200, 60.0)  # None = unlimited
    concurrency: int = 8
    retries: int = 3
    circuit_breaker: int = 5  # consecutive unreachable calls that end a run early
    max_retry_after_s: float = 300.0  # a longer Retry-After is clamped to this


@dataclass(frozen=True)
class CadenceConfig:
    """How long after a successful fetch a shipment is due again, by status."""

    accepted: float = 6 * 3600  # AC
    in_transit: float = 2 * 3600  # IT
    delivery_attempt: float = 4 * 3600  # AT: often not final
    exception: float = 4 * 3600  # EX: often not final
    pickup: float = 6 * 3600  # SP: at a collection point, waiting for DE
    unknown: float = 6 * 3600  # UN
    not_yet_in_system: float = 3600  # NY: first back-off step, doubling each time
    not_yet_in_system_max: float = 24 * 3600
    expire_after: float = 14 * 86400  # NY/UN for this long since creation -> expired
    delivered_confirm: float = 24 * 3600  # DE: checked once more after this, then terminal
    failure_backoff: float = 15 * 60  # after a failed fetch, doubling per failure
    failure_backoff_max: float = 12 * 3600


@dataclass(frozen=True)
class SyncConfig:
    schedule: Schedule = Schedule("5m", interval_s=300)
    force_schedule: Schedule = Schedule("0 2 * * *", cron="0 2 * * *")
    batch_size: int = 100
    max_runtime_s: float = 1800.0
    cadence: CadenceConfig = field(default_factory=CadenceConfig)


@dataclass(frozen=True)
class HealthConfig:
    schedule: Schedule = Schedule("5m", interval_s=300)


@dataclass(frozen=True)
class AlertsConfig:
    urls: tuple[Secret, ...] = ()
    repeat_interval_s: float = 4 * 3600
    send_resolved: bool = True


@dataclass(frozen=True)
class Config:
    daemon: DaemonConfig
    provider: ProviderConfig = field(default_factory=ProviderConfig)
    sync: SyncConfig = field(default_factory=SyncConfig)
    health: HealthConfig = field(default_factory=HealthConfig)
    alerts: AlertsConfig = field(default_factory=AlertsConfig)
    source: Path | None = None  # the file it was read from, if any
