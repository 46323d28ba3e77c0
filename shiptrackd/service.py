"""
What the daemon can be asked to do: plain async methods with typed arguments, returning the
wire types of shiptrackd/wire/. The control API maps routes onto these; tests call them directly too.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import msgspec
from anyio.abc import TaskGroup

from . import __version__
from .clock import Clock
from .config import Config
from .errors import ConflictError, InvalidRequestError, NotFoundError, ProviderError
from .events import EventBus
from .models import CARRIER_RE, MAX_ROW_ID, NewShipment, echo
from .schedule import Loop
from .status_figures import StatusFigures
from .store import Store
from .sync import cadence, quota
from .sync.detection import NoDetectorError, carrier_lines, detector_for
from .sync.engine import SyncEngine
from .sync.throttle import ApiStats, ProviderThrottle
from .wire import answers as wire
from .wire import push as wire_push
from .wire import stats as wire_stats
from .wire.answers import to_answer
from .wire.names import EVENT_LOOP_CHANGED, EVENT_SHIPMENTS_ADDED, EVENT_SHIPMENTS_REMOVED, NO_STATUS, STATUS_CODES

if TYPE_CHECKING:
    from .alerts.heartbeat import Heartbeat
    from .cluster.membership import Membership
    from .push.service import Push

MAX_LIST_LIMIT = 1000
QUOTA_READ_TIMEOUT_S = 5.0  # `stats` waits this long for a provider's quota (behind a busy sync's slots)
MAX_TARGETED = 10_000  # ids in one targeted sync: 40,000 unknown ones held the run (and every joiner) for 7 s
# A page cursor is the last shipment id of the previous page (store/shipments.py new_shipment_id).
CURSOR_RE = re.compile(r"ship_[0-9a-f]{27,40}")


@dataclass
class Service:
    config: Config
    store: Store
    engine: SyncEngine
    bus: EventBus
    clock: Clock
    api_stats: ApiStats
    loops: dict[str, Loop]
    task_group: TaskGroup
    reload_config: Callable[[], Awaitable[dict[str, Any]]]
    state: str = "starting"
    started_monotonic: float = 0.0
    heartbeat: Heartbeat | None = None  # the dead man's switch, when [alerts] heartbeat_url is set
    push: Push | None = None  # the push receiver and subscriptions, when [webhooks] listen is set
    cluster: Membership | None = None  # this daemon among the store's members (cluster/membership.py)
    figures: StatusFigures = field(init=False)  # status's store figures, read at most once a second

    def __post_init__(self) -> None:
        self.figures = StatusFigures(self.store, self.clock, self.cluster)

    # --- status ---------------------------------------------------------------------

    async def status(self) -> wire.Status:
        figures = await self.figures.get(self.task_group)
        doc = {
            "version": __version__,
            "pid": os.getpid(),
            "state": self.state,
            "uptime_s": round(time.monotonic() - self.started_monotonic, 3),
            "config_file": str(self.config.source) if self.config.source else None,
            # The default account (with [[providers]], not the [provider] table, which may be unused).
            "provider": {"name": self.engine.throttle.provider.name, "base_url": self.engine.throttle.config.base_url},
            "loops": [loop.snapshot() for loop in self.loops.values()],
            "sync": self.engine.current.snapshot() if self.engine.current else None,
            "store": {
                "path": self.store.describe(),
                "backend": self.store.backend,
                "size_bytes": self.store.size_bytes(),
                "shipments": figures.total,
                "active": figures.active,
                "due_now": figures.due_now,
                # Rows and bytes per table, free space and vacuum mode, as the retention loop last
                # measured them (counting every row here would cost a status call seconds): None until then.
                **(self.store.retention.figures or {"tables": None}),
            },
            "rate_limit_paused_until": self.engine.throttle.paused_until,
            "heartbeat": self.heartbeat.snapshot() if self.heartbeat else None,  # URLs masked
            "event_seq": self.bus.seq,  # subscribe with ?since= this to miss nothing after the snapshot
            "cluster": figures.cluster,
            "providers": [lane.figures() for lane in self.engine.lanes()],
        }
        return to_answer(doc, wire.Status)

    # --- loops ----------------------------------------------------------------------

    def _loop(self, name: str) -> Loop:
        loop = self.loops.get(name)
        if loop is None:
            raise NotFoundError(f"no loop named {name!r}; loops: {', '.join(self.loops)}")
        return loop

    async def loops_list(self) -> list[wire.LoopInfo]:
        return to_answer([loop.snapshot() for loop in self.loops.values()], list[wire.LoopInfo])

    async def loop_action(self, name: str, action: str) -> wire.LoopInfo | wire.LoopTriggered:
        loop = self._loop(name)
        if action == "pause":
            loop.pause()
        elif action == "resume":
            loop.resume()
        elif action == "trigger":
            started = loop.trigger()
            return to_answer({**loop.snapshot(), "triggered": started, "joined": not started}, wire.LoopTriggered)
        else:
            raise InvalidRequestError(f"unknown loop action {action!r}; use pause, resume or trigger")
        self.bus.publish(EVENT_LOOP_CHANGED, loop=loop.snapshot())
        return to_answer(loop.snapshot(), wire.LoopInfo)

    # --- shipments -------------------------------------------------------------------

    async def add_shipments(self, records: Sequence[object]) -> wire.ShipmentsAdded:
        """Validate every record; add the valid ones; report duplicates and invalid ones by index."""
        valid: list[NewShipment] = []
        positions: list[int] = []
        invalid: list[dict[str, Any]] = []
        known = self.engine.account_names()
        detectors = [(lane.provider.name, lane.provider.detects_carrier) for lane in self.engine.lanes()]
        for index, record in enumerate(records):
            try:
                new = NewShipment.parse(record)
                if new.provider and new.provider not in known:
                    raise ValueError(f"provider {new.provider!r} is not configured (known: {', '.join(known)})")
                if not new.carrier_code:  # its provider detects the carrier when it registers the number
                    new = replace(new, provider=detector_for(detectors, new.provider))
                valid.append(new)
                positions.append(index)
            except NoDetectorError as exc:
                invalid.append({"index": index, "error": str(exc), "code": "carrier_required"})
            except ValueError as exc:
                invalid.append({"index": index, "error": str(exc)})
        result = await self.store.shipments.add_many(valid, self.clock.now())
        self.figures.invalidate()
        added = [msgspec.structs.replace(a, index=positions[a.index]) for a in result.added]
        duplicates = [msgspec.structs.replace(d, index=positions[d.index]) for d in result.duplicates]
        if result.added:
            self.bus.publish(EVENT_SHIPMENTS_ADDED, count=len(result.added))
            if "push" in self.loops:  # subscribe them now, not at the loop's next minute
                self.loops["push"].trigger()
            if "sync" in self.loops and any(not a.carrier_code for a in result.added):
                self.loops["sync"].trigger()  # detect their carriers now, not at the next scheduled sync
        doc = {"added": added, "duplicates": duplicates, "invalid": invalid}
        return to_answer(doc, wire.ShipmentsAdded)

    async def list_shipments(
        self,
        *,
        status: str | None,
        carrier: str | None,
        search: str | None,
        active: bool | None,
        cursor: str | None,
        limit: int,
    ) -> wire.ShipmentPage:
        if not 1 <= limit <= MAX_LIST_LIMIT:
            raise InvalidRequestError(f"limit must be between 1 and {MAX_LIST_LIMIT}")
        if cursor is not None and not CURSOR_RE.fullmatch(cursor):
            # Compared as text, any other string would silently restart the listing at page 1.
            raise InvalidRequestError(f"cursor {cursor[:40]!r} is not a next_cursor this daemon gave out")
        if status is not None and status not in (*STATUS_CODES, NO_STATUS):
            raise InvalidRequestError(f"status {status[:20]!r} is not one of {', '.join(STATUS_CODES)} or none")
        items, next_cursor = await self.store.shipments.list(
            status=status, carrier=carrier, search=search, active=active, cursor=cursor, limit=limit
        )
        return to_answer({"shipments": items, "next_cursor": next_cursor}, wire.ShipmentPage)

    async def get_shipment(self, shipment_id: str) -> wire.ShipmentDetail:
        shipment = await self.store.shipments.get(shipment_id)
        if shipment is None:
            raise NotFoundError(f"no shipment {shipment_id!r}")
        events = await self.store.shipments.events(shipment_id)
        return to_answer({**msgspec.structs.asdict(shipment), "events": events}, wire.ShipmentDetail)

    async def remove_shipment(self, shipment_id: str) -> wire.ShipmentRemoved:
        shipment = await self.store.shipments.get(shipment_id)
        if shipment is not None and self.push is not None:
            await self.push.forget(shipment)
        if shipment is None or not await self.store.shipments.remove(shipment_id, self.clock.now()):
            raise NotFoundError(f"no shipment {shipment_id!r}")
        self.figures.invalidate()
        # The provider stops tracking it too (17TRACK `stoptrack`), in the background: a slow or
        # unreachable provider must not hold up the removal, which has already happened here.
        self.task_group.start_soon(self.engine.unregister, shipment)
        self.bus.publish(EVENT_SHIPMENTS_REMOVED, id=shipment_id)
        return wire.ShipmentRemoved(removed=shipment_id)

    async def set_carrier(self, shipment_id: str, carrier: str) -> wire.ShipmentDetail:
        """An operator's carrier for a shipment (a wrong guess overridden): registered again with it."""
        if not CARRIER_RE.fullmatch(carrier):
            raise InvalidRequestError(f"carrier_code {echo(carrier)} must be lowercase letters, digits and underscores")
        before = await self.store.carriers.set_carrier(shipment_id, carrier, self.clock.now())
        if before is None:
            raise NotFoundError(f"no shipment {shipment_id!r}")
        self.figures.invalidate()  # due now, active again
        if before.carrier_code != carrier:
            if self.push is not None:
                await self.push.forget(before)
            # Its provider stops tracking the old (carrier, number) in the background, as on removal.
            self.task_group.start_soon(self.engine.unregister, before)
        return await self.get_shipment(shipment_id)

    async def retrack(self, shipment_id: str) -> wire.Why:
        if not await self.store.shipments.retrack(shipment_id, self.clock.now()):
            raise NotFoundError(f"no shipment {shipment_id!r}")
        self.figures.invalidate()
        return await self.why(shipment_id)

    async def why(self, shipment_id: str) -> wire.Why:
        shipment = await self.store.shipments.get(shipment_id)
        if shipment is None:
            raise NotFoundError(f"no shipment {shipment_id!r}")
        answer = cadence.explain(shipment, self.clock.now(), self.engine.throttle.paused_until)
        answer["push"] = {
            "regime": cadence.regime(shipment, self.push is not None),
            "subscribed_at": shipment.subscribed_at,
            "last_push_at": shipment.last_push_at,
            "push_count": shipment.push_count,
        }
        answer["explanation"] += cadence.push_lines(shipment, self.push is not None)
        answer["explanation"] += carrier_lines(shipment)
        return to_answer(answer, wire.Why)

    # --- sync -----------------------------------------------------------------------

    async def sync(
        self, *, force: bool, dry_run: bool, shipments: Sequence[str] | None
    ) -> wire.SyncPlan | wire.SyncStarted:
        if shipments is not None and not shipments:
            raise InvalidRequestError("shipments must name at least one id")
        if shipments is not None and len(shipments) > MAX_TARGETED:
            raise InvalidRequestError(f"shipments may name at most {MAX_TARGETED} ids per sync; send several")
        trigger = "targeted" if shipments else "force" if force else "manual"
        if dry_run:
            return to_answer({"dry_run": True, **await self.engine.plan(trigger, shipments)}, wire.SyncPlan)
        run_id, joined = await self.engine.start(self.task_group, trigger, shipments)
        return wire.SyncStarted(run_id=run_id, joined=joined, trigger=trigger)

    async def runs(self, limit: int) -> list[wire.Run]:
        return to_answer(await self.store.runs.recent(min(max(limit, 1), MAX_LIST_LIMIT)), list[wire.Run])

    async def run(self, run_id: int) -> wire.RunDetail:
        run = await self.store.runs.get(run_id) if 0 < run_id <= MAX_ROW_ID else None
        if run is None:
            raise NotFoundError(f"no sync run {run_id}")
        current = self.engine.current
        progress = current.snapshot() if current and current.run_id == run_id else None
        return to_answer({**msgspec.structs.asdict(run), "progress": progress}, wire.RunDetail)

    async def stats(self) -> wire_stats.Stats:
        """Everything `shiptrackctl stats` shows: the store's mix, the last day's runs, the API's figures."""
        now = self.clock.now()
        day_ago = now - timedelta(hours=24)
        by_status = await self.store.shipments.count_by("status_code")
        active_by_status = await self.store.shipments.count_by_active_status()
        overdue_after = now - timedelta(seconds=(self.config.sync.schedule.interval_s or 3600) * 2)
        # Every account's limit together (the throttles' own: a provider's documented rate where unset).
        limits = [lane.config.rate_limit for lane in self.engine.lanes()]
        per_s = None if any(rate is None for rate in limits) else sum(rate.per_second for rate in limits if rate)
        forecast = cadence.calls_per_hour(self.config.sync.cadence, active_by_status)
        doc = {
            "shipments": {
                **await self.store.shipments.counts(),
                "by_status": by_status,
                "by_carrier": await self.store.shipments.count_by("carrier_code"),
                "due_now": await self.store.shipments.count_due(now),
                "overdue": await self.store.shipments.count_due(overdue_after),
            },
            "runs_24h": await self.store.runs.totals_since(day_ago),
            "errors_24h": await self.store.runs.errors_by_kind(day_ago),
            "last_successful_run": await self.store.runs.last_successful(),
            "api": self.api_stats.snapshot(),
            "forecast": {
                "calls_per_hour": round(forecast, 1),
                "rate_limit_per_hour": round(per_s * 3600) if per_s else None,
                "utilisation": round(forecast / (per_s * 3600), 3) if per_s else None,
            },
            "providers": [await self._provider_stats(lane) for lane in self.engine.lanes()],
            "push": await self.push_stats(),
        }
        return to_answer(doc, wire_stats.Stats)

    async def _provider_stats(self, lane: ProviderThrottle) -> dict[str, Any]:
        """One provider account's figures; its quota read live (one request) where it has one."""
        provider = lane.provider
        own = lane.figures()
        out: dict[str, Any] = {
            "name": provider.name,
            "kind": provider.kind,
            **{k: own[k] for k in ("requests", "rate_limited", "errors", "retries", "circuit", "paused_until")},
            "by_error": dict(lane.stats.by_error),
            "batch_size": lane.batch_size,
            "strays": lane.stats.strays,
            "omitted": lane.stats.omitted,
            "unknown_statuses": dict(provider.status_map.unknown),
            "quota_exhausted": lane.quota_exhausted or None,
            "quota": None,
        }
        if provider.limits.quota:
            try:
                with anyio.fail_after(QUOTA_READ_TIMEOUT_S):
                    reading = await lane.read_quota()
            except (ProviderError, TimeoutError) as exc:
                out["quota"] = {"error": str(exc) or "no answer in time"}
                return out
            if reading is not None:
                fc = quota.forecast(list(lane.quota_readings))
                out["quota"] = {
                    "counts": provider.limits.quota,
                    "total": reading.total,
                    "used": reading.used,
                    "remaining": reading.remaining,
                    "today_used": reading.today_used,
                    "read_at": reading.read_at,
                    "per_day": fc.per_day if fc else None,
                    "runs_out_at": fc.runs_out_at if fc else None,
                }
        return out

    async def reload(self) -> wire.Reloaded:
        return to_answer(await self.reload_config(), wire.Reloaded)

    async def push_stats(self) -> dict[str, Any] | None:
        """What pushes save: the polls subscribed shipments would need at their normal cadence, less safety polls."""
        if self.push is None:
            return None
        cad = self.config.sync.cadence
        mix = await self.store.push.count_subscribed_by_status()
        polling = cadence.calls_per_hour(cad, mix)
        safety = sum(mix.values()) * 3600.0 / cad.push_safety
        state = self.push.state
        return {
            "subscribed": sum(mix.values()),
            "pushes": dict(sorted(state.totals.items())),
            "changes_by_push": state.changes,
            "calls_per_hour_polling": round(polling, 1),
            "calls_per_hour_with_push": round(safety, 1),
            "calls_per_hour_saved": round(max(0.0, polling - safety), 1),
        }

    # --- push -----------------------------------------------------------------------

    async def webhooks_status(self) -> wire_push.WebhooksStatus:
        """What `shiptrackctl webhooks status` shows: registration, subscriptions, pushes by outcome, silence."""
        from .push.service import disabled_status

        doc = self.push.status() if self.push is not None else disabled_status()
        return to_answer(doc, wire_push.WebhooksStatus)

    async def webhooks_setup(self) -> wire_push.WebhookSetup:
        """Register or update the provider's `track` webhook, then subscribe what is not subscribed yet."""
        if self.push is None:
            raise ConflictError("webhooks are off: set [webhooks] listen and public_url, then restart")
        result = await self.push.setup()
        if "push" in self.loops:
            self.loops["push"].trigger()
        return to_answer(result, wire_push.WebhookSetup)

    # --- backup ---------------------------------------------------------------------

    async def backup(self, path: str, *, force: bool) -> wire.BackupWritten:
        """A consistent copy of the store at *path* (absolute, written by the daemon), checked before it is named."""
        if not path or "\x00" in path:
            raise InvalidRequestError("field 'path' must name the backup file (an absolute path)")
        result = await self.store.backup(Path(path), force=force)
        return to_answer(asdict(result), wire.BackupWritten)
