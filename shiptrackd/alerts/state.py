"""
Alerting: Alertmanager's semantics, per check, over the stream of health reports.

For each report, in order (each report is evaluated exactly once):
  1. every check's streak moves: failing (warning, critical, unknown) or passing;
  2. `decide()` per check (pure): fire after `for_reports` failing reports, repeat after
     `repeat_interval`, escalate warning -> critical at once, resolve after `resolve_after`
     passing reports (a notice only if send_resolved);
  3. a silenced check is muted; symptom checks are held back while api_connectivity is critical;
  4. what is left goes out as ONE grouped message, unless the hourly cap is reached, in which
     case the state is kept as if nothing was sent, so the next report tries again;
  5. the new state and the queued message commit in one transaction (the outbox, notify.py).
"""

from __future__ import annotations

import math
from dataclasses import asdict
from datetime import timedelta
from typing import Any

import anyio
import msgspec
from loguru import logger

from ..clock import Clock
from ..config import Config, format_duration, parse_duration
from ..errors import InvalidRequestError, NotFoundError
from ..events import EventBus
from ..health.monitor import HealthMonitor
from ..health.rules import check_from_dict
from ..models import MAX_ROW_ID
from ..store import NewNotification, Store
from ..store.rows import AlertStateRow, DeliveryRow, HealthRecord, SilenceRow
from ..units import parse_rfc3339
from ..wire.names import EVENT_ALERT_QUEUED, EVENT_SILENCE_ADDED, EVENT_SILENCE_REMOVED, KNOWN_CHECKS
from .delivery import ChannelSet, Dispatcher
from .rules import AlertState, Policy, after_notice, compose, group_severity, headline, plan

MAX_SILENCE_S = 90 * 86400
DELIVERY_WAIT_S = 25.0  # how long `alert` / `alert --test` wait for delivery results (the client gives up at 30)


# --- the service -----------------------------------------------------------------------------


class Alerting:
    """Evaluates reports into notices, serves silences and the log; `config` follows reloads."""

    def __init__(
        self,
        *,
        store: Store,
        clock: Clock,
        bus: EventBus,
        config: Config,
        monitor: HealthMonitor,
        channels: ChannelSet,
    ) -> None:
        self.store = store
        self.clock = clock
        self.bus = bus
        self.config = config
        self.monitor = monitor
        self.channels = channels
        self.dispatcher = Dispatcher(store, clock, bus, lambda: self.channels, lambda: self.config.alerts)
        self._lock = anyio.Lock()  # one evaluation at a time: each report is evaluated exactly once
        self.capped = 0

    async def channels_for(self, config: Config) -> ChannelSet | None:
        """The channels a reloaded *config* needs, or None to keep the current ones; ConfigError if unusable.

        Built before anything is applied, so a broken Apprise config file rejects the whole reload.
        A config file is read again on every reload: its content may have changed under the same name.
        """
        old = self.config.alerts
        if old.urls == config.alerts.urls and old.config is None and config.alerts.config is None:
            return None
        return await ChannelSet.build(config.alerts.urls, config_file=config.alerts.config, notices=config.notices)

    async def reconfigure(self, config: Config, channels: ChannelSet | None = None) -> None:
        """Apply a reloaded configuration with the channels channels_for() built (None: keep them)."""
        self.config = config
        if channels is not None:
            self.channels = channels
            logger.info("alert channels reloaded: {}", ", ".join(c.name for c in self.channels.channels))

    # --- evaluation ----------------------------------------------------------------------

    async def evaluate_pending(self) -> list[dict[str, Any]]:
        """Evaluate every report the rules have not seen, oldest first (the alerts loop's body)."""
        outcomes = []
        async with self._lock:
            while reports := await self.store.health.unevaluated():
                for report in reports:
                    outcomes.append(await self._evaluate(report))
        return outcomes

    async def _evaluate(self, record: HealthRecord) -> dict[str, Any]:
        cfg = self.config.alerts
        now = self.clock.now()
        checks = [check_from_dict(c) for c in record.report["checks"]]
        states = {row.check_name: AlertState.from_row(row) for row in await self.store.alerts.states()}
        silenced = {s.check_name for s in await self.store.alerts.silences(now)}
        result = plan(states, checks, now, Policy.of(cfg), silenced=silenced, inhibit=cfg.inhibit)
        new_states = dict(result.states)
        notification = None
        capped = False
        if result.send:
            sent_last_hour = await self.store.alerts.notifications_since(now - timedelta(hours=1))
            if sent_last_hour >= cfg.max_per_hour:
                capped = True
                self.capped += 1
                logger.bind(loop="alerts").warning(
                    "alert held back: {} notifications in the last hour (max_per_hour {}): {}",
                    sent_last_hour,
                    cfg.max_per_hour,
                    ", ".join(f"{d.check} {d.kind}" for d in result.send),
                )
            else:
                for d in result.send:
                    new_states[d.check] = after_notice(new_states[d.check], d, now)
                by_name = {c.name: c for c in checks}
                title, body = compose(result.send, by_name, result.states, host=self.monitor.host, now=now)
                kinds = {d.kind for d in result.send}
                routes = {d.severity for d in result.send}
                notification = NewNotification(
                    kind=kinds.pop() if len(kinds) == 1 else "mixed",
                    severity=group_severity(result.send),
                    checks=[{"check": d.check, "kind": d.kind, "level": d.severity} for d in result.send],
                    title=title,
                    body=body,
                    channels=[(c.name, c.key) for c in self.channels.routed(routes)],
                )
        notification_id = await self.store.alerts.commit_evaluation(
            record.id, [state_row(s) for s in new_states.values()], notification, now
        )
        outcome = {
            "report_id": record.id,
            "notification_id": notification_id,
            "sent": [asdict(d) for d in result.send] if not capped else [],
            "held": [asdict(d) for d in result.held]
            + ([{**asdict(d), "held": "max_per_hour reached"} for d in result.send] if capped else []),
        }
        if notification is not None and notification_id is not None:
            logger.bind(loop="alerts").warning("alert queued: {}", notification.title)
            self.bus.publish(
                EVENT_ALERT_QUEUED,
                notification_id=notification_id,
                kind=notification.kind,
                severity=notification.severity,
                checks=notification.checks,
            )
            self.dispatcher.wake()
        return outcome

    async def loop_body(self) -> str:
        """The alerts loop: evaluate new reports, then make sure nothing queued is left unsent."""
        outcomes = await self.evaluate_pending()
        self.dispatcher.wake()
        queued = sum(1 for o in outcomes if o["notification_id"])
        return f"evaluated {len(outcomes)} report(s), queued {queued} notification(s)"

    async def alert_now(self, wait_s: float | None = None) -> dict[str, Any]:
        """`shiptrackctl alert`: run the checks, evaluate that report under the usual rules, wait for delivery."""
        report = await self.monitor.run_once("alert", hand_off=False)
        outcomes = await self.evaluate_pending()
        mine = next((o for o in outcomes if o["report_id"] == report.id), None)
        deliveries: list[DeliveryRow] = []
        if mine and mine["notification_id"]:
            self.dispatcher.wake()
            wait = DELIVERY_WAIT_S if wait_s is None else wait_s
            deliveries = await self.dispatcher.wait_for(mine["notification_id"], wait)
        return {
            "report": {"id": report.id, "at": report.at, "level": report.level, "summary": report.summary},
            "notification_id": mine["notification_id"] if mine else None,
            "sent": mine["sent"] if mine else [],
            "held": mine["held"] if mine else [],
            "deliveries": deliveries,
            "states": await self.states(),
        }

    async def send_test(self, wait_s: float | None = None) -> dict[str, Any]:
        """`alert --test`: a test notice to every channel, whatever its tags; per channel, whether it arrived."""
        now = self.clock.now()
        host = self.monitor.host
        channels = self.channels.channels
        notification = NewNotification(
            kind="test",
            severity="info",
            checks=[],
            title=f"[TEST] shiptrackd on {host}: test notification",
            body=(
                f"{headline(host, now)}\n\n"
                f"A test notice from `shiptrackctl alert --test`, sent to all {len(channels)} channels.\n"
                "Real alerts are routed by severity (tags).\n"
            ),
            channels=[(c.name, c.key) for c in channels],
        )
        notification_id = await self.store.alerts.queue(notification, now)
        self.dispatcher.wake()
        deliveries = await self.dispatcher.wait_for(notification_id, DELIVERY_WAIT_S if wait_s is None else wait_s)
        return {
            "notification_id": notification_id,
            "deliveries": deliveries,
            "delivered": all(d.status == "sent" for d in deliveries),
        }

    # --- reading ---------------------------------------------------------------------------

    async def states(self) -> list[dict[str, Any]]:
        rows = await self.store.alerts.states()
        out = []
        for row in rows:
            state = AlertState.from_row(row)
            out.append(
                {
                    "check": state.check,
                    "level": state.level,
                    "firing": state.firing,
                    "notified_level": state.notified_level,
                    "failing_streak": state.failing_streak,
                    "passing_streak": state.passing_streak,
                    "fired_at": state.fired_at.isoformat() if state.fired_at else None,
                    "last_notified_at": state.last_notified_at.isoformat() if state.last_notified_at else None,
                    "message": state.message,
                }
            )
        return out

    async def recent(self, limit: int = 20) -> dict[str, Any]:
        if not 1 <= limit <= 500:
            raise InvalidRequestError("limit must be between 1 and 500")
        return {
            "notifications": await self.store.alerts.recent(limit),
            "states": await self.states(),
            "channels": self.channels.describe(),
        }

    # --- silences --------------------------------------------------------------------------

    async def add_silence(
        self, check: str, *, duration: str | float | None, until: str | None, comment: str
    ) -> SilenceRow:
        """Mute *check* (or "*" for all) until a time; it expires on its own, a passing check does not lift it."""
        if check != "*" and check not in KNOWN_CHECKS:
            raise InvalidRequestError(f"unknown check {check!r}; checks: {', '.join(KNOWN_CHECKS)}, or * for all")
        now = self.clock.now()
        if until:
            try:
                end = parse_rfc3339(until)  # refuses a time without an offset, as before
            except ValueError as exc:
                raise InvalidRequestError(f"until: {exc}") from None
        elif duration is not None:
            try:
                seconds = parse_duration(duration)
            except (ValueError, OverflowError) as exc:
                raise InvalidRequestError(f"duration: {exc}") from None
            if not math.isfinite(seconds) or seconds > MAX_SILENCE_S:  # 1e308 or "99999999999d" overflow a date
                raise InvalidRequestError(f"a silence may last at most {format_duration(MAX_SILENCE_S)}")
            end = now + timedelta(seconds=seconds)
        else:
            raise InvalidRequestError("give a duration (e.g. 2h) or an until time")
        if end <= now:
            raise InvalidRequestError("a silence must end in the future")
        if (end - now).total_seconds() > MAX_SILENCE_S:
            raise InvalidRequestError(f"a silence may last at most {format_duration(MAX_SILENCE_S)}")
        silence = await self.store.alerts.add_silence(check, end, comment.strip()[:500], now)
        self.bus.publish(EVENT_SILENCE_ADDED, silence=msgspec.structs.asdict(silence))
        # The route's audit line (INFO) says it for people; this is the detail, comment included.
        logger.debug("silence {} added: {} until {} ({})", silence.id, check, end.isoformat(), comment)
        return silence

    async def silences(self, include_expired: bool = False) -> list[dict[str, Any]]:
        now = self.clock.now()
        return [
            msgspec.structs.asdict(row) | {"active": row.removed_at is None and row.until_at > now}
            for row in await self.store.alerts.silences(now, include_expired)
        ]

    async def remove_silence(self, silence_id: int) -> dict[str, Any]:
        if not 0 < silence_id <= MAX_ROW_ID or not await self.store.alerts.remove_silence(silence_id, self.clock.now()):
            raise NotFoundError(f"no active silence {silence_id}")
        self.bus.publish(EVENT_SILENCE_REMOVED, id=silence_id)
        return {"removed": silence_id}


def state_row(state: AlertState) -> AlertStateRow:
    """A check's alert state as the store keeps it."""
    return AlertStateRow(
        check_name=state.check,
        level=state.level,
        failing_streak=state.failing_streak,
        passing_streak=state.passing_streak,
        notified_level=state.notified_level,
        fired_at=state.fired_at,
        last_notified_at=state.last_notified_at,
        message=state.message,
        value=state.value,
    )
