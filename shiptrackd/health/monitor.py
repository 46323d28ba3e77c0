"""
Health checks: named checks, each a CheckResult (ok, warning, critical or unknown) with a message,
a measured value and its thresholds; a report is their worst.

Judging is pure (`judge_*` in health_checks.py: measurements, thresholds and `now` in, a
CheckResult out), so the rules are tested as tables. `HealthMonitor` measures (one cheap API
call, a few store reads, a tiny write), judges, stores the report and publishes it on the event bus.
"""

from __future__ import annotations

import shutil
import socket
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import anyio
from loguru import logger

from ..cluster.leader import LOCK_NAMESPACE, lock_key
from ..config import Config, next_fire
from ..errors import ProviderError, StoreError
from ..store.rows import HealthRecord
from ..units import format_rfc3339
from ..wire.names import CHECKS, CRITICAL, EVENT_HEALTH_REPORT, OK, OPTIONAL_CHECKS, UNKNOWN
from .cluster import judge_cluster
from .deliveries import judge_deliveries
from .rules import (
    TOP_STALE,
    ApiProbe,
    CheckResult,
    LoopView,
    build_report,
    judge_accounts,
    judge_api,
    judge_error_rate,
    judge_loops,
    judge_recent_sync,
    judge_stale,
    judge_store,
    judge_webhooks,
    rejudge_stale,
    span,
    stale_entry,
)

if TYPE_CHECKING:
    from ..clock import Clock
    from ..cluster.leader import Leadership
    from ..cluster.membership import Membership
    from ..events import EventBus
    from ..push.state import PushState
    from ..schedule import Loop
    from ..store import Store
    from ..sync.engine import SyncEngine
    from ..sync.throttle import ProviderThrottle


PROBE_WAIT_S = 10.0  # the longest the connectivity probe waits for its turn under the rate limit

# --- measuring --------------------------------------------------------------------------------


async def measure_cluster(store: Store, member: Membership, leadership: Leadership) -> CheckResult:
    """The `cluster` check: the members' heartbeats (as *member*'s clock sees them) and which of
    *leadership*'s singletons some session of the server holds the leader lock of now."""
    members = await member.members()
    keys = await store.cluster.advisory_locks(LOCK_NAMESPACE) or set()
    held = {name for name in leadership.names if lock_key(name) in keys}
    return judge_cluster(members, leadership.names, held, stale_after_s=member.stale_after_s)


class HealthMonitor:
    """Measures every check, judges it, stores the report and publishes it; `config` follows reloads."""

    def __init__(
        self,
        *,
        store: Store,
        engine: SyncEngine,
        loops: Mapping[str, Loop],
        clock: Clock,
        bus: EventBus,
        config: Config,
        started_at: datetime,
        on_report: Callable[[], None] | None = None,
        push: PushState | None = None,
        cluster: tuple[Membership, Leadership] | None = None,
    ) -> None:
        """*on_report* runs after each stored report that the alert rules should see: health triggers alerts."""
        self.store = store
        self.engine = engine
        self.loops = loops
        self.clock = clock
        self.bus = bus
        self.config = config
        self.started_at = started_at
        self.on_report = on_report
        self.push = push  # the push channel's figures, when [webhooks] is on (adds the `webhooks` check)
        self.cluster = cluster  # this member and its elections, on a shared store (adds the `cluster` check)
        self._quick_check: tuple[datetime, str] | None = None  # (when, result)

    @property
    def host(self) -> str:
        return self.config.alerts.host or socket.gethostname()

    async def run_once(
        self, trigger: str = "schedule", *, evaluate: bool = True, hand_off: bool = True
    ) -> HealthRecord:
        """
        Measure, store and publish one report; `evaluate=False` keeps it out of the alert rules.

        `hand_off=False` is for a caller that evaluates the report itself (`alert_now`), so
        on_report does not start a second, racing evaluation.
        """
        report = await self.measure(trigger=trigger)
        record = await self.store.health.save_report(report, trigger, evaluated=not evaluate)
        report = record.report  # with its id
        self.bus.publish(EVENT_HEALTH_REPORT, report=report)
        if evaluate and hand_off and self.on_report is not None:
            self.on_report()
        log = logger.bind(loop="health")
        level = {OK: "INFO", CRITICAL: "ERROR"}.get(report["level"], "WARNING")  # critical: journalctl -p err
        log.bind(health=report["level"]).log(level, "health {}: {}", report["level"], report["summary"])
        return record

    async def current(
        self,
        *,
        fresh: bool = False,
        alert_threshold: int | None = None,
        check_stale: bool = False,
        stale_limit: int = 50,
    ) -> dict[str, Any]:
        """The last stored report (or a fresh one when asked, when none exists, or when it is overdue)."""
        record = None if fresh else await self.store.health.latest()
        if record is None or self._overdue(record.at):
            record = await self.run_once("fresh" if fresh else "api", evaluate=False)
        report = dict(record.report)
        if alert_threshold is not None:
            report = rejudge_stale(report, alert_threshold, self.config.health)
        now = self.clock.now()
        report["age_s"] = round(max(0.0, (now - record.at).total_seconds()), 3)
        if check_stale:
            older_than = now - timedelta(seconds=self.config.health.stale_after_s)
            report["stale_shipments"] = (await self.store.health.stale(older_than, stale_limit))[2]
        return report

    def _overdue(self, at: datetime) -> bool:
        """A stored report older than two health periods (plus a minute) says the health loop is stuck."""
        period = (next_fire(self.config.health.schedule, at) - at).total_seconds()
        return (self.clock.now() - at).total_seconds() > 2 * period + 60

    async def measure(self, *, trigger: str = "schedule") -> dict[str, Any]:
        """Run every check concurrently, each under check_timeout; a check that raises is unknown."""
        cfg = self.config.health
        measures: dict[str, Callable[[], Awaitable[CheckResult]]] = {
            "api_connectivity": self._api,
            "recent_sync": self._recent_sync,
            "stale_shipments": self._stale,
            "error_rate": self._error_rate,
            "loops": self._loops,
            "store": self._store,
            "deliveries": self._deliveries,
        }
        if self.push is not None:
            measures["webhooks"] = self._webhooks
        if self.cluster is not None and self.store.backend != "sqlite":
            measures["cluster"] = self._cluster
        results: dict[str, CheckResult] = {}

        async def run(name: str, fn: Callable[[], Awaitable[CheckResult]]) -> None:
            with anyio.move_on_after(cfg.check_timeout_s):
                try:
                    results[name] = await fn()
                except Exception as exc:
                    logger.opt(exception=True).warning("health check {} failed", name)
                    results[name] = CheckResult(name, UNKNOWN, f"check failed: {type(exc).__name__}: {exc}")
                return
            results[name] = CheckResult(name, UNKNOWN, f"check timed out after {span(cfg.check_timeout_s)}")

        async with anyio.create_task_group() as tg:
            for name, fn in measures.items():
                tg.start_soon(run, name, fn)
        checks = [results[name] for name in (*CHECKS, *OPTIONAL_CHECKS) if name in results]
        return build_report(checks, at=self.clock.now(), host=self.host, trigger=trigger)

    async def _api(self) -> CheckResult:
        """Every provider account probed at once; the worst result names its account (rules.judge_accounts)."""
        cfg = self.config.health
        lanes = self.engine.lanes()
        judged: dict[str, CheckResult] = {}

        async def judge(lane: ProviderThrottle) -> None:
            name = lane.provider.name
            judged[name] = judge_api(
                await self._probe(lane),
                now=self.clock.now(),
                auth_failed_at=lane.auth_failed_at if len(lanes) > 1 else self.engine.auth_failed_at,
                auth_window_s=cfg.error_rate_window_s,
                latency_warning_s=cfg.api_latency_warning_s,
                quota_exhausted=f"{name}: {lane.quota_exhausted}" if lane.quota_exhausted else "",
                key_setting=f"the api_key of [[providers]] {name!r}" if len(lanes) > 1 else "[provider] api_key",
            )

        async with anyio.create_task_group() as tg:
            for lane in lanes:
                tg.start_soon(judge, lane)
        return judge_accounts([(lane.provider.name, judged[lane.provider.name]) for lane in lanes])

    async def _probe(self, throttle: ProviderThrottle) -> ApiProbe:
        if throttle.paused_until is not None:
            until = format_rfc3339(throttle.paused_until.replace(microsecond=0))
            return ApiProbe(skipped=f"the API asked us to wait until {until} (429)")
        # The probe pays the account's rate limit like any request, so it never causes a 429 itself.
        with anyio.move_on_after(PROBE_WAIT_S) as scope:
            await throttle.take_slot()
        if scope.cancelled_caught:
            if throttle.shared is not None and throttle.shared.pause_left_s > 0:  # another daemon's 429
                return ApiProbe(skipped=f"the API asked the cluster to wait {span(throttle.shared.pause_left_s)} (429)")
            return ApiProbe(skipped="the rate limit is fully used by a sync")
        try:
            latency = await throttle.provider.check_connectivity()
        except ProviderError as exc:
            return ApiProbe(error_kind=exc.kind, error=str(exc), status=exc.status)
        return ApiProbe(latency_s=latency)

    async def _recent_sync(self) -> CheckResult:
        cfg = self.config.health
        last = await self.store.runs.last_successful()
        at = None
        if last is not None:
            at = last.finished_at or last.started_at
        sync_loop = self.loops.get("sync")
        return judge_recent_sync(
            at,
            now=self.clock.now(),
            started_at=self.started_at,
            warning_s=cfg.sync_age_warning_s,
            critical_s=cfg.sync_age_critical_s,
            paused=bool(sync_loop and sync_loop.paused),
        )

    async def _stale(self) -> CheckResult:
        cfg = self.config.health
        older_than = self.clock.now() - timedelta(seconds=cfg.stale_after_s)
        count, active, top = await self.store.health.stale(older_than, TOP_STALE)
        return judge_stale(
            count,
            active,
            stale_after_s=cfg.stale_after_s,
            warning=cfg.stale_warning,
            critical=cfg.stale_critical,
            top=[stale_entry(s) for s in top],
        )

    async def _error_rate(self) -> CheckResult:
        cfg = self.config.health
        since = self.clock.now() - timedelta(seconds=cfg.error_rate_window_s)
        totals = await self.store.runs.totals_since(since)
        kinds = await self.store.runs.errors_by_kind(since)
        attempted = totals.updated + totals.unchanged + totals.failed
        return judge_error_rate(
            totals.failed,
            attempted,
            kinds,
            window_s=cfg.error_rate_window_s,
            warning_pct=cfg.error_rate_warning,
            critical_pct=cfg.error_rate_critical,
            min_attempts=cfg.error_rate_min_attempts,
        )

    async def _loops(self) -> CheckResult:
        cfg = self.config.health
        now = self.clock.now()
        current = self.engine.current
        running_s = (now - current.started_at).total_seconds() if current is not None else None
        return judge_loops(
            [LoopView.of(loop) for loop in self.loops.values()],
            now=now,
            sync_running_s=running_s,
            failures_warning=cfg.loop_failures_warning,
            failures_critical=cfg.loop_failures_critical,
            overdue_after_s=cfg.loop_overdue_after_s,
            max_runtime_s=self.config.sync.max_runtime_s,
        )

    async def _deliveries(self) -> CheckResult:
        cfg = self.config.health
        now = self.clock.now()
        names = [ep.name for ep in self.config.outbound if ep.enabled]
        since = now - timedelta(seconds=cfg.deliveries_dead_window_s)
        figures = {n: row for n, row in (await self.store.outbox.figures(since)).items() if n in names}
        states = await self.store.outbox.endpoint_states()
        disabled = {n: s.disabled_reason for n, s in states.items() if s.disabled_at and n in names}
        return judge_deliveries(
            figures,
            disabled,
            names,
            now=now,
            age_warning_s=cfg.deliveries_age_warning_s,
            dead_window_s=cfg.deliveries_dead_window_s,
        )

    async def _webhooks(self) -> CheckResult:
        push = self.push
        assert push is not None
        now = self.clock.now()
        return judge_webhooks(
            subscribed=push.subscribed,
            last_push_at=push.last_push_at,
            listening_since=push.started_at,
            now=now,
            warning_s=push.warning_s,
            critical_s=push.critical_s,
            last_hour=push.last_hour(now),
        )

    async def _cluster(self) -> CheckResult:
        assert self.cluster is not None
        return await measure_cluster(self.store, *self.cluster)

    async def _store(self) -> CheckResult:
        cfg = self.config.health
        now = self.clock.now()
        write_error, write_s = "", None
        try:
            write_s = await self.store.health.probe_write(now)
        except StoreError as exc:
            write_error = exc.message
        if self._quick_check is None or (now - self._quick_check[0]).total_seconds() >= cfg.quick_check_interval_s:
            self._quick_check = (now, await self.store.health.quick_check())
        checked_at, quick = self._quick_check
        # The state directory's disk: the SQLite file's, or (on PostgreSQL) the daemon's own files'.
        where = self.store.path.parent if self.store.path is not None else self.config.daemon.state_dir
        usage = shutil.disk_usage(where)
        return judge_store(
            write_error=write_error,
            write_s=write_s,
            quick_check=quick,
            quick_check_age_s=(now - checked_at).total_seconds(),
            free_bytes=usage.free,
            total_bytes=usage.total,
            size_bytes=self.store.size_bytes(),
            free_warning=cfg.free_disk_warning,
            free_critical=cfg.free_disk_critical,
            where=str(where),
        )
