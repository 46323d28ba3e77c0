"""
Daemon.run(): open the store, bind the control socket, start the loops, and
shut down in order.

One task group owns every long-lived task. SIGTERM/SIGINT: stop scheduling, let
in-flight tracking calls finish within shutdown_grace, then cancel; the store is
closed and the socket removed on the way out. SIGHUP reloads the configuration.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import TaskGroup, TaskStatus
from loguru import logger

from . import sdnotify
from .alerts.delivery import ChannelSet
from .alerts.heartbeat import Heartbeat
from .alerts.state import Alerting
from .api.audit import audit
from .api.door import BearerAuth
from .api.monitoring import monitoring_routes
from .api.routes import control_routes
from .api.routes_alerting import alert_routes, health_routes
from .api.routes_outbound import outbound_routes
from .api.server import Listeners, build_app, claim_socket_path, serve, serve_tcp
from .clock import Clock, SystemClock
from .cluster.leader import Leadership
from .cluster.membership import Membership
from .cluster.wiring import SINGLETONS, STANDBY, cluster_events, elect, shared_budget
from .config import Config, ProviderConfig, Schedule, accounts
from .config import routes as carrier_routes
from .errors import ConfigError
from .events import EventBus
from .health.monitor import HealthMonitor
from .log import register_secret, setup_logging
from .metrics import Exporter, RequestTimer, SyncRecorder
from .outbound.dispatcher import Dispatcher
from .outbound.metrics import OutboundMetrics
from .providers import make_provider
from .providers.base import Provider, RequestObserver
from .push.receiver import receiver_app
from .push.service import Push
from .reload import config_changes, loop_schedules
from .schedule import Loop
from .service import Service
from .statedir import StateDirLock, create_private, prepare_paths
from .store import Store, configured_target
from .store.retention import retention_pass
from .sync.engine import SyncEngine, new_owner_id
from .sync.throttle import ApiStats, ProviderThrottle, install_retry_logging
from .wire.names import EVENT_CONFIG_RELOADED, EVENT_LOOP_CHANGED

STORE_FILE = "shiptrackd.db"
PUSH_SCHEDULE = Schedule("1m", interval_s=60)  # the push loop: subscriptions and the silence watch


class Daemon:
    def __init__(
        self,
        config: Config,
        *,
        clock: Clock | None = None,
        load_config: Callable[[], Config] | None = None,
        provider: Provider | None = None,
        handle_signals: bool = True,
    ) -> None:
        self.config = config
        self.clock = clock or SystemClock()
        self._load_config = load_config
        self._provider = provider
        self._handle_signals = handle_signals
        self.bus = EventBus()
        self.api_stats = ApiStats()  # every account's requests together
        self.default_stats = ApiStats(parent=self.api_stats)  # the default account's own (kept across reloads)
        self.request_timer = RequestTimer()
        self.health: HealthMonitor | None = None
        self.alerting: Alerting | None = None
        self.heartbeat: Heartbeat | None = None
        self.loops: dict[str, Loop] = {}
        self.service: Service | None = None
        self.store: Store | None = None
        self.member: Membership | None = None
        self.leadership: Leadership | None = None
        self.engine: SyncEngine | None = None
        self.dispatcher: Dispatcher | None = None
        self.push: Push | None = None  # the push receiver and subscriptions, when [webhooks] listen is set
        self._stop = anyio.Event()
        self._tg: TaskGroup | None = None

    def stop(self) -> None:
        """Begin a graceful shutdown (what SIGTERM does)."""
        self._stop.set()

    async def run(self, *, task_status: TaskStatus[Daemon] = anyio.TASK_STATUS_IGNORED) -> None:
        cfg = self.config
        install_retry_logging()
        # Paths and the state-dir lock come before anything else: a second daemon on this state
        # dir must not touch the store (it used to mark the first one's live run interrupted).
        prepare_paths(cfg)
        with StateDirLock(cfg.daemon.state_dir):
            await self._run_locked(task_status)

    async def _run_locked(self, task_status: TaskStatus[Daemon]) -> None:
        cfg = self.config
        sdnotify.notify("STATUS=opening the store")
        # Refuse a live socket before touching the store: it belongs to a running daemon, whose
        # in-progress run must not be marked orphaned (and the error must not hide in a task group).
        claim_socket_path(cfg.daemon.socket)
        # Alert channels before the store: a broken [alerts] config file is a configuration error (78).
        channels = await ChannelSet.build(cfg.alerts.urls, config_file=cfg.alerts.config, notices=cfg.notices)
        for url in channels.secrets():
            register_secret(url)
        entries = accounts(cfg)  # the default account first
        provider = self._provider or make_provider(entries[0], observer=self._observer(self.default_stats))
        try:
            target = configured_target(cfg.store.url, cfg.daemon.state_dir, STORE_FILE)
            if isinstance(target, Path):
                create_private(target)
            if cfg.store.password:
                register_secret(cfg.store.password.get())
            store = self.store = await Store.open(target, password=cfg.store.password.get())
        except BaseException:
            with anyio.move_on_after(5, shield=True):
                await provider.aclose()
            raise
        try:
            member = self.member = Membership(store, self.clock, new_owner_id(), cfg.sync.lease_s, cfg.cluster)
            orphans = await member.join()
            if orphans:
                logger.warning("marked {} sync run(s) left running by an unclean stop as interrupted", orphans)
            throttle = ProviderThrottle(provider, entries[0], self.default_stats)
            throttle.shared = shared_budget(store, throttle.config)
            engine = self.engine = SyncEngine(store, throttle, self.clock, self.bus, cfg, owner=member.id)
            engine.set_accounts(self._other_accounts(entries[1:], store), carrier_routes(cfg))
            # Routes are set before any loop can commit a change: no change goes unannounced.
            dispatcher = self.dispatcher = Dispatcher(store, self.clock, cfg, on_disable=self._endpoint_disabled)
            dispatcher.owner = member.id  # its claims name this daemon: only a dead one's are handed on
            push = None
            if cfg.webhooks.listen:
                push = self.push = Push(
                    config=cfg,
                    store=store,
                    clock=self.clock,
                    bus=self.bus,
                    accounts=engine,
                )
                await push.load()
                engine.push = push.state
            async with anyio.create_task_group() as tg:
                self._tg = tg
                self.loops = self._build_loops(engine)
                leadership = self.leadership = elect(store, [n for n in SINGLETONS if n in self.loops])
                member.roles = set(leadership.held)  # SQLite: this daemon leads every singleton
                leadership.on_change = lambda held: setattr(member, "roles", held)
                await tg.start(leadership.run)
                await member.beat()  # the roles just won, in the members' table at once
                await self._restore_loops(store)
                health = self.health = HealthMonitor(
                    store=store,
                    engine=engine,
                    loops=self.loops,
                    clock=self.clock,
                    bus=self.bus,
                    config=cfg,
                    started_at=self.clock.now(),
                    on_report=self._evaluate_alerts_now,
                    push=push.state if push is not None else None,
                    cluster=(member, leadership),
                )
                alerting = self.alerting = Alerting(
                    store=store, clock=self.clock, bus=self.bus, config=cfg, monitor=health, channels=channels
                )
                alerting.dispatcher.owner = member.id

                async def health_level() -> str:
                    return str((await health.current())["level"])

                if "heartbeat" in self.loops:
                    self.heartbeat = Heartbeat(config=lambda: self.config.alerts, clock=self.clock, level=health_level)
                syncs = SyncRecorder()
                exporter = Exporter(
                    store=store,
                    engine=engine,
                    loops=self.loops,
                    api_stats=self.api_stats,
                    requests=self.request_timer,
                    syncs=syncs,
                    monitor=health,
                    alerting=alerting,
                    heartbeat=self.heartbeat,
                    outbound=OutboundMetrics(dispatcher),
                    push=push.state if push is not None else None,
                )
                service = self.service = Service(
                    config=cfg,
                    store=store,
                    engine=engine,
                    bus=self.bus,
                    clock=self.clock,
                    api_stats=self.api_stats,
                    loops=self.loops,
                    task_group=tg,
                    reload_config=self.reload,
                    started_monotonic=time.monotonic(),
                    heartbeat=self.heartbeat,
                    push=push,
                    cluster=member,
                )
                routes = [
                    *control_routes(service, self.bus),
                    *health_routes(health),
                    *alert_routes(alerting),
                    *outbound_routes(store, dispatcher, self.clock, lambda: self.config),
                    *monitoring_routes(exporter, lambda: service.state),
                ]
                app = build_app(routes)
                listeners = Listeners()
                await tg.start(listeners.run, serve, app, cfg.daemon.socket, cfg.daemon.socket_mode)
                await tg.start(alerting.dispatcher.run)  # delivers alerts off the loops' critical path
                await tg.start(self._supervise_outbound, dispatcher)
                await tg.start(syncs.follow, self.bus)
                if push is not None:
                    push.subscriptions.on_silence = self.loops["sync"].trigger
                    push.address = await tg.start(
                        listeners.run, serve_tcp, receiver_app(push.receiver), cfg.webhooks.listen
                    )
                    logger.info("webhooks on http://{}/hooks/<provider>", push.address)
                if cfg.daemon.metrics_listen:
                    metrics_app = build_app(monitoring_routes(exporter, lambda: service.state))
                    await tg.start(listeners.run, serve_tcp, metrics_app, cfg.daemon.metrics_listen)
                    logger.info("metrics on http://{}/metrics", cfg.daemon.metrics_listen)
                if cfg.api.listen:  # the application's door: the same routes, behind bearer tokens
                    door = BearerAuth(build_app(routes), lambda: self.config.api.tokens)
                    await tg.start(listeners.run, serve_tcp, door, cfg.api.listen)
                    logger.info("API door on http://{}/v1 ({} token(s))", cfg.api.listen, len(cfg.api.tokens))
                for loop in self.loops.values():
                    await tg.start(loop.run)
                if self._handle_signals:
                    tg.start_soon(self._watch_signals)
                tg.start_soon(sdnotify.watchdog)
                await tg.start(member.run)
                if (relay := cluster_events(store, self.bus, member.id)) is not None:
                    await tg.start(relay.run)  # the other members' status changes on our /v1/events
                service.state = "running"
                counts = await store.shipments.counts()
                sdnotify.notify("READY=1", f"STATUS=Running; {counts['active']} active shipments")
                logger.info(
                    "shiptrackd running pid={} socket={} store={} active={}",
                    os.getpid(),
                    cfg.daemon.socket,
                    store.describe(),
                    counts["active"],
                )
                task_status.started(self)
                await self._stop.wait()
                service.state = "stopping"
                await self._shutdown(engine)
                with anyio.move_on_after(3, shield=True):
                    await member.leave()
                self.bus.close()  # ends open event streams, so the server can stop gracefully
                await listeners.stop(within_s=3)
                tg.cancel_scope.cancel()
        finally:
            with anyio.move_on_after(5, shield=True):
                await provider.aclose()
                if self.engine is not None:
                    for lane in self.engine.others.values():
                        await lane.aclose()
                if self.push is not None:
                    await self.push.aclose()
                if self.engine is not None and self.engine.throttle.shared is not None:
                    await self.engine.throttle.shared.aclose()
                await store.close()
            logger.info("shiptrackd stopped")

    async def _shutdown(self, engine: SyncEngine) -> None:
        """Stop scheduling, let the running sync finish its in-flight calls within the grace period."""
        sdnotify.notify("STOPPING=1", "STATUS=stopping")
        logger.info("stopping: waiting up to {}s for in-flight work", self.config.daemon.shutdown_grace_s)
        for loop in self.loops.values():
            loop.stop()
        engine.request_stop("the daemon is stopping")
        with anyio.move_on_after(self.config.daemon.shutdown_grace_s):
            await engine.wait_idle()

    # --- loops ---------------------------------------------------------------------------

    def _build_loops(self, engine: SyncEngine) -> dict[str, Loop]:
        cfg = self.config

        async def sync_body() -> str:
            return _run_outcome(await engine.run_once("schedule"))

        async def force_body() -> str:
            return _run_outcome(await engine.run_once("force"))

        async def health_body() -> str:
            assert self.health is not None
            report = await self.health.run_once()
            return f"{report.level}: {report.summary}"[:200]

        async def alerts_body() -> str:
            assert self.alerting is not None
            return await self.alerting.loop_body()

        async def retention_body() -> str:
            assert self.store is not None
            return await retention_pass(self.store.retention, self.config.store, self.clock.now())

        async def heartbeat_body() -> str:
            assert self.heartbeat is not None
            return await self.heartbeat.run_once()

        bodies = {"sync": sync_body, "force": force_body, "health": health_body, "alerts": alerts_body}
        bodies |= {"retention": retention_body, "heartbeat": heartbeat_body}
        specs = {name: (schedule, bodies[name]) for name, schedule in loop_schedules(cfg).items()}
        if self.push is not None:  # subscribe new shipments, stop finished ones, notice a silent channel
            specs["push"] = (PUSH_SCHEDULE, self.push.subscriptions.run_once)
        return {
            name: Loop(name, schedule, self._elected(name, body), self.clock, on_change=self._loop_changed)
            for name, (schedule, body) in specs.items()
        }

    async def _supervise_outbound(self, dispatcher: Dispatcher, *, task_status: TaskStatus[None]) -> None:
        """Run the webhook dispatcher; if it raises, log, wait (backoff) and start it again."""
        backoff = 1.0
        task_status.started()
        while True:
            try:
                await dispatcher.run()
            except Exception:
                logger.opt(exception=True).error("outbound dispatcher failed; restarting in {}s", backoff)
            await anyio.sleep(backoff)
            backoff = min(backoff * 2, 60.0)

    def _endpoint_disabled(self, endpoint: str, reason: str) -> None:
        """An endpoint was disabled: measure health now, so the `deliveries` check alerts without waiting."""
        health = self.loops.get("health")
        if health is not None and not health.paused:
            health.trigger()

    def _elected(self, name: str, body: Callable[[], Awaitable[str]]) -> Callable[[], Awaitable[str]]:
        """A singleton loop's body runs only on the daemon that leads it (cluster/leader.py)."""

        async def run() -> str:
            if self.leadership is not None and not self.leadership.leads(name):
                return STANDBY
            return await body()

        return run

    def _evaluate_alerts_now(self) -> None:
        """A new health report: evaluate it now, not at the alerts loop's next slot (unless paused)."""
        alerts = self.loops.get("alerts")
        if alerts is not None and not alerts.paused:
            alerts.trigger()

    async def _restore_loops(self, store: Store) -> None:
        saved = await store.runs.loop_states()
        for name, loop in self.loops.items():
            state = saved.get(name)
            if state:
                loop.last_run_at = state.last_run_at
                loop.last_outcome = state.last_outcome
                loop.paused = state.paused

    async def _loop_changed(self, loop: Loop) -> None:
        if self.store is not None:
            await self.store.runs.save_loop(loop.name, loop.last_run_at, loop.last_outcome, loop.paused)
        self.bus.publish(EVENT_LOOP_CHANGED, loop=loop.snapshot())
        if loop.name == "sync" and not loop.running and loop.last_outcome:
            sdnotify.notify(f"STATUS=Running; last sync: {loop.last_outcome}")

    # --- signals, watchdog, reload -------------------------------------------------------

    async def _watch_signals(self) -> None:
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
            async for signum in signals:
                if signum == signal.SIGHUP:
                    logger.info("SIGHUP: reloading the configuration")
                    try:
                        await self.reload()
                    except ConfigError:
                        pass  # logged by reload(); the old configuration stays
                else:
                    logger.info("{}: shutting down", signal.Signals(signum).name)
                    self.stop()

    async def reload(self) -> dict[str, Any]:
        """Re-read the configuration and apply what can change live; a bad one is refused and the old kept."""
        sdnotify.notify(*sdnotify.reloading_fields())
        try:
            if self._load_config is None:
                raise ConfigError("this daemon was started without a configuration source to reload")
            new = self._load_config()
            channels = await self.alerting.channels_for(new) if self.alerting is not None else None
        except ConfigError as exc:
            logger.warning("reload rejected, keeping the running configuration: {}", exc)
            sdnotify.notify("READY=1", "STATUS=Running (last reload rejected)")
            raise
        old, self.config = self.config, new
        changed, needs_restart = config_changes(old, new)
        setup_logging(new.daemon.log_level, new.daemon.log_format)
        for name, schedule in loop_schedules(new).items():
            if name in self.loops and self.loops[name].schedule != schedule:
                self.loops[name].reschedule(schedule)
        if self.member is not None:
            self.member.configure(new)  # the next heartbeat renews claims to the new lease
        if self.engine is not None:
            self.engine.config = new
            if old.provider != new.provider:
                await self._swap_provider(new)
        if self.service is not None:
            self.service.config = new
        if self.dispatcher is not None:
            self.dispatcher.configure(new)
        if self.push is not None:
            self.push.reconfigure(new)
        if self.health is not None:
            self.health.config = new
        if self.alerting is not None:
            if channels is not None:
                for url in channels.secrets():
                    register_secret(url)
            await self.alerting.reconfigure(new, channels)
        # The one audit line for a reload, whether SIGHUP, systemctl reload or POST /v1/reload asked for it.
        audit(None, "config reloaded", changed=", ".join(changed) or "nothing")
        if needs_restart:
            logger.warning("these settings only take effect after a restart: {}", ", ".join(needs_restart))
        sdnotify.notify("READY=1", "STATUS=Running (reloaded)")
        self.bus.publish(EVENT_CONFIG_RELOADED, changed=changed, needs_restart=needs_restart)
        return {"reloaded": True, "changed": changed, "needs_restart": needs_restart}

    def _observer(self, stats: ApiStats) -> RequestObserver:
        """An account's observer: its counters (and through them the total) and the latency histogram."""

        def observe(status: int | None, elapsed_s: float, error_kind: str | None) -> None:
            stats.observe(status, elapsed_s, error_kind)
            self.request_timer.observe(status, elapsed_s, error_kind)

        return observe

    def _other_accounts(self, entries: tuple[ProviderConfig, ...], store: Store) -> dict[str, ProviderThrottle]:
        """The [[providers]] beyond the default: a provider and a throttle each (on PostgreSQL, a shared budget)."""
        out = {}
        for e in entries:
            stats = ApiStats(parent=self.api_stats)
            lane = out[e.name] = ProviderThrottle(make_provider(e, observer=self._observer(stats)), e, stats)
            lane.shared = shared_budget(store, lane.config)
        return out

    async def _swap_provider(self, new: Config) -> None:
        """A new key or URL takes effect for the next request; the old client closes once idle.

        Only the default account is swapped; a change to the other [[providers]] needs a restart.
        """
        engine = self.engine
        assert engine is not None and self._tg is not None
        old = engine.throttle
        entry = accounts(new)[0]
        provider = self._provider or make_provider(entry, observer=self._observer(self.default_stats))
        throttle = ProviderThrottle(provider, entry, self.default_stats)
        throttle.carry_over(engine.throttle)  # the Retry-After pause, and the learned pace if the account is the same
        if self.store is not None and engine.throttle.shared is not None:  # a new key may be a new account
            throttle.shared = shared_budget(self.store, throttle.config)
        engine.throttle = throttle

        async def close_when_idle() -> None:  # the old client, and the old budget's connection (the new has its own)
            await engine.wait_idle()
            await old.aclose(provider=old.provider is not provider)

        self._tg.start_soon(close_when_idle)


def _run_outcome(run: dict[str, Any]) -> str:
    if run.get("joined"):
        return f"joined run {run.get('id')}"
    return (
        f"run {run.get('id')} {run.get('outcome')}: {run.get('updated', 0)} updated, "
        f"{run.get('failed', 0)} failed of {run.get('selected', 0)}"
    )
