"""
Prometheus metrics: GET /metrics on the control socket, and on `[daemon] metrics_listen` when set.

One CollectorRegistry per daemon (never the global one, so two daemons in one test process do
not collide) holding one custom collector that reads live state at scrape time: the provider's
counters, the loops, the last health report, alert deliveries. The few figures that need SQL
are read before rendering and cached briefly, so frequent scrapes never load the store.
Names follow Prometheus conventions: `shiptrackd_` prefix, base units, `_total` counters; the
library's ProcessCollector adds the standard `process_*` series (CPU, RSS, open fds, start time).
A series never vanishes: every known label value is reported, 0 until something is counted, so
`rate()` and absence-based alert rules see a steady set (packaging/prometheus/shiptrackd-rules.yml).
"""

from __future__ import annotations

import bisect
import platform
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import anyio
from anyio.abc import TaskStatus
from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import generate_latest

from . import __version__
from .wire.names import CHECKS, EVENT_SYNC_FINISHED, LEVEL_EXIT_CODES, LEVELS, NO_STATUS, STATUS_CODES, UNKNOWN

if TYPE_CHECKING:
    from .alerts.heartbeat import Heartbeat
    from .alerts.state import Alerting
    from .events import EventBus
    from .health.monitor import HealthMonitor
    from .push.state import PushState
    from .schedule import Loop
    from .store import Store
    from .store.rows import HealthRecord
    from .sync.engine import SyncEngine
    from .sync.throttle import ApiStats

CACHE_S = 10.0  # SQL-backed figures are at most this old
REQUEST_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
SYNC_BUCKETS = (1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 1800.0, 3600.0)

# Label values reported at 0 before they are first counted, so the series exist from the start.
SYNC_TRIGGERS = ("schedule", "force", "manual", "targeted")
SYNC_OUTCOMES = ("ok", "partial", "failed", "aborted", "interrupted")
PROVIDER_ERROR_KINDS = (
    "transient",
    "unreachable",
    "rate_limited",
    "unauthorized",
    "not_found",
    "invalid_response",
    "rejected",
    "provider",
)
DELIVERY_OUTCOMES = ("sent", "failed")

# Each health check's numbers (the monitoring-plugin perf data) as their own series, in base units:
# perf label -> (series name, help, factor from the perf unit). Absent from a report: 0.
CHECK_SERIES = {
    "api_latency": ("shiptrackd_health_api_latency_seconds", "The connectivity probe's answer time", 1.0),
    "last_sync_age": (
        "shiptrackd_health_last_sync_age_seconds",
        "Time since the last successful sync run finished, when the report was made (0: none yet)",
        1.0,
    ),
    "stale_shipments": (
        "shiptrackd_health_stale_shipments",
        "Active shipments not updated for longer than [health] stale_after",
        1.0,
    ),
    "sync_error_rate": (
        "shiptrackd_health_error_ratio",
        "Failed / attempted tracking fetches over [health] error_rate_window (0 to 1)",
        0.01,  # perf data is in percent
    ),
    "sync_attempts": ("shiptrackd_health_sync_attempts", "Tracking fetches attempted in the error-rate window", 1.0),
    "loop_failures": ("shiptrackd_health_loop_failures", "The most failures in a row of any timer loop", 1.0),
    "sync_runtime": ("shiptrackd_health_sync_runtime_seconds", "How long the running sync has run (0: none)", 1.0),
    "store_free": ("shiptrackd_health_store_free_bytes", "Free disk space where the store lives", 1.0),
}


class Histogram:
    """Cumulative buckets, a sum and a count, since the daemon started."""

    def __init__(self, buckets: Sequence[float]) -> None:
        self.bounds = tuple(buckets)
        self.counts = [0] * (len(self.bounds) + 1)  # the last one is +Inf
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value

    def buckets(self) -> list[tuple[str, float]]:
        out: list[tuple[str, float]] = []
        running = 0
        for bound, count in zip((*map(str, self.bounds), "+Inf"), self.counts, strict=True):
            running += count
            out.append((bound, running))
        return out


class RequestTimer:
    """A provider RequestObserver: the latency of every tracking-API request, into a histogram."""

    def __init__(self) -> None:
        self.latency = Histogram(REQUEST_BUCKETS)

    def observe(self, status: int | None, elapsed_s: float, error_kind: str | None) -> None:
        self.latency.observe(elapsed_s)


class SyncRecorder:
    """Follows `sync.finished` events: run durations and the shipments each run handled, since start."""

    def __init__(self) -> None:
        self.duration = Histogram(SYNC_BUCKETS)
        self.shipments: Counter[str] = Counter()

    def record(self, run: dict[str, Any]) -> None:
        started, finished = run.get("started_at"), run.get("finished_at")
        if started and finished:  # the event carries the run's record as the store gave it: datetimes
            seconds = (finished - started).total_seconds()
            self.duration.observe(max(0.0, seconds))
        for result in ("updated", "unchanged", "failed", "skipped"):
            self.shipments[result] += int(run.get(result) or 0)

    async def follow(self, bus: EventBus, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Read the event bus until cancelled; a subscription cut off for lagging is simply renewed."""
        task_status.started()
        while True:
            async for event in bus.subscribe():
                if event["type"] == EVENT_SYNC_FINISHED:
                    self.record(event.get("run") or {})
            await anyio.sleep(0.1)  # the bus closed (shutdown) or dropped us: resubscribe shortly


class Exporter:
    """The daemon's metrics: `await render()` gives the Prometheus text exposition."""

    def __init__(
        self,
        *,
        store: Store,
        engine: SyncEngine,
        loops: dict[str, Loop],
        api_stats: ApiStats,
        requests: RequestTimer,
        syncs: SyncRecorder,
        monitor: HealthMonitor,
        alerting: Alerting,
        heartbeat: Heartbeat | None = None,
        started_at: float | None = None,
        outbound: Any = None,
        push: PushState | None = None,
    ) -> None:
        self.store = store
        self.engine = engine
        self.loops = loops
        self.api_stats = api_stats
        self.requests = requests
        self.syncs = syncs
        self.monitor = monitor
        self.alerting = alerting
        self.heartbeat = heartbeat
        self.push = push
        self.started_at = started_at or time.time()
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)
        self.outbound = outbound  # outbound/metrics.py: refresh() before a scrape, then its own collect()
        if outbound is not None:
            self.registry.register(outbound)
        ProcessCollector(registry=self.registry)  # process_cpu_seconds_total, _resident_memory_bytes, _open_fds...
        self._cache: dict[str, Any] = {}
        self._cached_at = float("-inf")
        self._lock = anyio.Lock()

    async def render(self) -> bytes:
        await self._refresh()
        return generate_latest(self.registry)

    async def _refresh(self) -> None:
        async with self._lock:
            if time.monotonic() - self._cached_at < CACHE_S:
                return
            last = await self.store.runs.last_successful()
            finished = last.finished_at if last else None
            self._cache = {
                "shipments": await self.store.health.shipment_mix(),
                "runs": await self.store.health.run_counts(),
                "last_success": finished.timestamp() if finished else None,
                "report": await self.store.health.latest(),
                "alert_states": await self.store.alerts.states(),
                "due": await self.store.shipments.count_due(self.monitor.clock.now()),
            }
            if self.outbound is not None:
                await self.outbound.refresh()
            self._cached_at = time.monotonic()

    def collect(self) -> Iterator[Metric]:
        yield from self._daemon()
        yield from self._sync()
        yield from self._provider()
        yield from self._loops()
        yield from self._health()
        yield from self._alerts()
        yield from self._heartbeat()
        yield from self._push()

    def _push(self) -> Iterator[Metric]:
        """Pushes by outcome and the subscriptions (issue 10); absent while [webhooks] is off."""
        push = self.push
        if push is None:
            return
        pushes = CounterMetricFamily(
            "shiptrackd_webhooks", "Pushes received since start, by outcome", labels=["outcome"]
        )
        for outcome, n in sorted(push.totals.items()):
            pushes.add_metric([outcome], n)
        yield pushes
        yield CounterMetricFamily(
            "shiptrackd_webhook_status_changes", "Status changes learned by push since start", value=push.changes
        )
        yield GaugeMetricFamily(
            "shiptrackd_webhook_subscriptions", "Active shipments subscribed to pushes", value=push.subscribed
        )
        yield GaugeMetricFamily(
            "shiptrackd_webhook_last_push_timestamp_seconds",
            "When the last verified push arrived (Unix time; 0: none yet)",
            value=push.last_push_at.timestamp() if push.last_push_at else 0,
        )

    def _daemon(self) -> Iterator[Metric]:
        info = GaugeMetricFamily("shiptrackd_build_info", "shiptrackd version (value 1)", labels=["version", "python"])
        info.add_metric([__version__, platform.python_version()], 1)
        yield info
        yield GaugeMetricFamily(
            "shiptrackd_start_timestamp_seconds", "When the daemon started (Unix time)", value=self.started_at
        )
        yield GaugeMetricFamily(
            "shiptrackd_store_size_bytes", "The SQLite file and its WAL", value=self.store.size_bytes()
        )
        mix = GaugeMetricFamily("shiptrackd_shipments", "Tracked shipments by status code", labels=["status", "active"])
        counts = {(status, active): n for status, active, n in self._cache.get("shipments", [])}
        for status in sorted({*STATUS_CODES, NO_STATUS, *(status for status, _ in counts)}):
            for active in (True, False):
                mix.add_metric([status, "true" if active else "false"], counts.get((status, active), 0))
        yield mix
        yield GaugeMetricFamily(
            "shiptrackd_shipments_due", "Active shipments due for a sync now", value=self._cache.get("due", 0)
        )

    def _sync(self) -> Iterator[Metric]:
        runs = CounterMetricFamily("shiptrackd_sync_runs", "Finished sync runs", labels=["trigger", "outcome"])
        counted = {(trigger, outcome): n for trigger, outcome, n in self._cache.get("runs", [])}
        known = {(t, o) for t in SYNC_TRIGGERS for o in SYNC_OUTCOMES}
        for trigger, outcome in sorted(known | set(counted)):
            runs.add_metric([trigger, outcome], counted.get((trigger, outcome), 0))
        yield runs
        hist = self.syncs.duration
        yield HistogramMetricFamily(
            "shiptrackd_sync_duration_seconds",
            "Sync run durations since the daemon started",
            buckets=hist.buckets(),
            sum_value=hist.sum,
        )
        handled = CounterMetricFamily(
            "shiptrackd_sync_shipments", "Shipments handled by sync runs since start, by result", labels=["result"]
        )
        for result in ("updated", "unchanged", "failed", "skipped"):
            handled.add_metric([result], self.syncs.shipments[result])
        yield handled
        yield GaugeMetricFamily(
            "shiptrackd_sync_running", "1 while a sync run is in progress", value=int(self.engine.current is not None)
        )
        yield GaugeMetricFamily(
            "shiptrackd_last_successful_sync_timestamp_seconds",
            "When the last successful sync run finished (Unix time; 0: never)",
            value=self._cache.get("last_success") or 0,
        )

    def _provider(self) -> Iterator[Metric]:
        stats = self.api_stats
        requests = CounterMetricFamily(
            "shiptrackd_provider_requests", "Tracking-API requests by HTTP status (none: no answer)", labels=["code"]
        )
        for code, count in sorted(stats.by_status.items()):
            requests.add_metric([code], count)
        yield requests
        errors = CounterMetricFamily(
            "shiptrackd_provider_errors", "Failed tracking-API requests by kind", labels=["kind"]
        )
        for kind in sorted({*PROVIDER_ERROR_KINDS, *stats.by_error}):
            errors.add_metric([kind], stats.by_error.get(kind, 0))
        yield errors
        yield CounterMetricFamily("shiptrackd_provider_retries", "Retried tracking-API calls", value=stats.retries)
        yield CounterMetricFamily(
            "shiptrackd_provider_rate_limited", "429 answers (each pauses the whole account)", value=stats.rate_limited
        )
        hist = self.requests.latency
        yield HistogramMetricFamily(
            "shiptrackd_provider_request_duration_seconds",
            "Tracking-API request latency",
            buckets=hist.buckets(),
            sum_value=hist.sum,
        )
        yield GaugeMetricFamily(
            "shiptrackd_provider_paused",
            "1 while a Retry-After pause holds every request",
            value=int(self.engine.throttle.paused_until is not None),
        )
        yield from self._accounts()

    def _accounts(self) -> Iterator[Metric]:
        """Each provider account's own figures, labelled by its name (the families above are their sum)."""
        label = ["provider"]
        requests = CounterMetricFamily("shiptrackd_account_requests", "Tracking-API requests by account", labels=label)
        limited = CounterMetricFamily("shiptrackd_account_rate_limited", "429 answers by account", labels=label)
        errors = CounterMetricFamily(
            "shiptrackd_account_errors", "Failed tracking-API requests by account and kind", labels=["provider", "kind"]
        )
        circuit = GaugeMetricFamily(
            "shiptrackd_account_circuit_open",
            "1 while the account's API was unreachable enough to stop runs",
            labels=label,
        )
        paused = GaugeMetricFamily(
            "shiptrackd_account_paused", "1 while a Retry-After pause holds the account's requests", labels=label
        )
        for lane in self.engine.lanes():
            name, stats = [lane.provider.name], lane.stats
            requests.add_metric(name, stats.requests)
            limited.add_metric(name, stats.rate_limited)
            for kind in sorted({*PROVIDER_ERROR_KINDS, *stats.by_error}):
                errors.add_metric([*name, kind], stats.by_error.get(kind, 0))
            circuit.add_metric(name, int(lane.circuit == "open"))
            paused.add_metric(name, int(lane.paused_until is not None))
        yield from (requests, limited, errors, circuit, paused)

    def _loops(self) -> Iterator[Metric]:
        runs = CounterMetricFamily("shiptrackd_loop_runs", "Timer-loop runs since start", labels=["loop"])
        failures = CounterMetricFamily("shiptrackd_loop_failures", "Timer-loop runs that raised", labels=["loop"])
        streak = GaugeMetricFamily("shiptrackd_loop_consecutive_failures", "Failures in a row", labels=["loop"])
        paused = GaugeMetricFamily("shiptrackd_loop_paused", "1 if the loop is paused", labels=["loop"])
        next_run = GaugeMetricFamily(
            "shiptrackd_loop_next_run_timestamp_seconds",
            "When the loop runs next (Unix time; 0: running or paused)",
            labels=["loop"],
        )
        for name, loop in self.loops.items():
            runs.add_metric([name], loop.runs)
            failures.add_metric([name], loop.total_failures)
            streak.add_metric([name], loop.failures)
            paused.add_metric([name], int(loop.paused))
            next_run.add_metric([name], loop.next_run_at.timestamp() if loop.next_run_at else 0)
        yield from (runs, failures, streak, paused, next_run)

    def _health(self) -> Iterator[Metric]:
        record: HealthRecord | None = self._cache.get("report")
        report = record.report if record else {}
        yield GaugeMetricFamily(
            "shiptrackd_health_status",
            "The last health report as a monitoring-plugin code: 0 ok, 1 warning, 2 critical, 3 unknown (none yet)",
            value=LEVEL_EXIT_CODES[record.level if record else UNKNOWN],
        )
        yield GaugeMetricFamily(
            "shiptrackd_health_report_timestamp_seconds",
            "When the last health report was made (Unix time; 0: none yet)",
            value=record.at.timestamp() if record else 0,
        )
        state = GaugeMetricFamily(
            "shiptrackd_health_check_state", "1 for each check's current state", labels=["check", "state"]
        )
        levels = {c["name"]: c["level"] for c in report.get("checks", [])}
        for name in (*CHECKS, *(n for n in levels if n not in CHECKS)):  # optional checks (webhooks) when run
            for level in LEVELS:
                state.add_metric([name, level], int(levels.get(name, UNKNOWN) == level))
        yield state
        perf = {p["label"]: p["value"] for c in report.get("checks", []) for p in c.get("perf", ())}
        for label, (name, help_text, factor) in CHECK_SERIES.items():
            yield GaugeMetricFamily(name, help_text, value=float(perf.get(label) or 0) * factor)

    def _alerts(self) -> Iterator[Metric]:
        deliveries = CounterMetricFamily(
            "shiptrackd_alerts_sent", "Alert deliveries since start, by channel type", labels=["channel", "outcome"]
        )
        outcomes = self.alerting.dispatcher.outcomes
        schemes = {c.scheme for c in self.alerting.channels.channels} | {channel for channel, _ in outcomes}
        for channel in sorted(schemes):
            for outcome in sorted({*DELIVERY_OUTCOMES, *(o for c, o in outcomes if c == channel)}):
                deliveries.add_metric([channel, outcome], outcomes[(channel, outcome)])
        yield deliveries
        yield CounterMetricFamily(
            "shiptrackd_alerts_capped", "Evaluations whose notice max_per_hour held back", value=self.alerting.capped
        )
        firing = GaugeMetricFamily("shiptrackd_alerts_firing", "Checks whose alert is firing", labels=["severity"])
        counts = Counter(s.notified_level for s in self._cache.get("alert_states", []) if s.notified_level)
        for sev in ("warning", "critical"):
            firing.add_metric([sev], counts[sev])
        yield firing

    def _heartbeat(self) -> Iterator[Metric]:
        hb = self.heartbeat
        yield GaugeMetricFamily(
            "shiptrackd_heartbeat_enabled", "1 when [alerts] heartbeat_url is set", value=int(hb is not None)
        )
        pings = CounterMetricFamily(
            "shiptrackd_heartbeat_pings",
            "Dead man's switch pings, by URL (success|fail) and outcome",
            labels=["kind", "outcome"],
        )
        for kind in ("success", "fail"):
            for outcome in ("ok", "failed"):
                pings.add_metric([kind, outcome], hb.outcomes[(kind, outcome)] if hb else 0)
        yield pings
        last = hb.last if hb else None
        yield GaugeMetricFamily(
            "shiptrackd_heartbeat_last_ping_timestamp_seconds",
            "When the last ping was sent (Unix time; 0: never)",
            value=last.at.timestamp() if last else 0,
        )
        yield GaugeMetricFamily(
            "shiptrackd_heartbeat_last_ping_ok",
            "1 if the last ping was answered with a 2xx",
            value=int(bool(last and last.ok)),
        )
        yield GaugeMetricFamily(
            "shiptrackd_heartbeat_last_ok_timestamp_seconds",
            "When a ping was last answered with a 2xx (Unix time; 0: never)",
            value=hb.last_ok_at.timestamp() if hb and hb.last_ok_at else 0,
        )
