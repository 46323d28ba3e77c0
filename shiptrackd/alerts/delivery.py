"""
Alert delivery: the configured channels (one Apprise object per URL) and the outbox sender.

Every notification is queued as one `alerts` row per channel. The sender claims a row
(`UPDATE ... WHERE claimed_at IS NULL`, so two senders never deliver it twice), sends it with
retries (stamina) under a hard timeout, and records the outcome on the row. Channels are sent
concurrently and separately: a dead one costs its own retries, never another's delivery.
Apprise never raises for a failed delivery; its AppriseResult says how it went.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import stamina
from anyio.abc import TaskStatus
from loguru import logger

from ..clock import Clock
from ..config import ALERT_TAGS, AlertsConfig, Notice, Secret, mask_url, split_alert_url
from ..config.endpoints import notice_tag
from ..errors import ConfigError
from ..events import EventBus
from ..store import Store
from ..store.rows import AlertRow, DeliveryRow
from ..wire.names import EVENT_ALERT_DELIVERY

CONSOLE = "console"
SWEEP_S = 30.0  # the sender also looks for leftover rows this often, without a wake-up
SEND_CONCURRENCY = 8


class DeliveryError(Exception):
    """One attempt to one channel failed; the message says why (Apprise's log, or a timeout)."""


@dataclass(frozen=True)
class Channel:
    """A place alerts go: the console (the daemon's log) or one Apprise URL, with its severity tags."""

    key: str  # stable id of the URL (a hash), stored on each row
    name: str  # what operators see: masked, tags included
    tags: tuple[str, ...] = ()  # () = every severity
    scheme: str = CONSOLE
    apprise: Any = None  # apprise.Apprise holding just this URL; None for the console
    error: str = ""  # the URL was not understood by Apprise

    def accepts(self, severities: Iterable[str]) -> bool:
        """Untagged channels get everything; tagged ones the severities they name (test notices: all)."""
        wanted = set(severities)
        return not self.tags or "info" in wanted or bool(wanted & set(self.tags))

    @property
    def for_alerts(self) -> bool:
        """Untagged or tagged with a severity; a channel tagged only for notices (`tag:NAME`) gets no alert."""
        return not self.tags or any(t in ALERT_TAGS for t in self.tags)


CONSOLE_CHANNEL = Channel(CONSOLE, CONSOLE)


class ChannelSet:
    """The console plus every configured URL, built once at start and again when a reload changes them."""

    def __init__(
        self, channels: Sequence[Channel], urls: tuple[Secret, ...] = (), notice_only: Sequence[Channel] = ()
    ) -> None:
        self.channels = [CONSOLE_CHANNEL, *channels]
        self.urls = urls
        self.notice_only = list(notice_only)  # the config file's channels for notices alone: secrets all the same
        self._by_key = {c.key: c for c in self.channels}

    @classmethod
    async def build(
        cls,
        urls: tuple[Secret, ...],
        *,
        throttle: bool = True,
        config_file: Path | None = None,
        notices: Sequence[Notice] = (),
    ) -> ChannelSet:
        """Load Apprise in a worker thread: its first add() scans every plugin (~0.5 s), too long for the loop.

        `config_file` is `[alerts] config`, an Apprise YAML or TEXT file: its channels follow `urls`;
        a file Apprise cannot load, or a channel in it that it cannot use, raises ConfigError, as does a
        `tag:NAME` recipient of *notices* (`[[notices]] to`) that no channel of the file carries.
        `throttle=False` (a test seam) turns off Apprise's own politeness delay between two sends
        to one service (5.5 s of wall-clock time for email), which simulated hours would pay for real.
        """
        channels = await anyio.to_thread.run_sync(_build_channels, urls, throttle)
        from_file = []
        if config_file is not None:
            from_file = await anyio.to_thread.run_sync(load_apprise_config, config_file, throttle, notices)
            channels += [c for c in from_file if c.for_alerts]
        for c in channels:
            if c.error:
                logger.warning("alert channel {} is not usable: {}", c.name, c.error)
        return cls(channels, urls, [c for c in from_file if not c.for_alerts])

    def get(self, key: str) -> Channel | None:
        return self._by_key.get(key)

    def routed(self, severities: Iterable[str]) -> list[Channel]:
        wanted = list(severities)
        return [c for c in self.channels if c.accepts(wanted)]

    def secrets(self) -> list[str]:
        """Every channel's full URL, for the log's secret filter (a config file's URLs are secrets too)."""
        every = [*self.channels, *self.notice_only]
        return [service.url() for c in every if c.apprise is not None for service in c.apprise]

    def describe(self) -> list[dict[str, Any]]:
        return [{"channel": c.name, "tags": list(c.tags) or ["all"], "usable": not c.error} for c in self.channels]


def _build_channels(urls: tuple[Secret, ...], throttle: bool) -> list[Channel]:
    # Apprise loads its plugins on the first add(); on Python 3.11 its email plugin imports the
    # deprecated imghdr module. Not ours to fix, and not worth a warning in the daemon's log.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*imghdr.*", category=DeprecationWarning)
        return _add_urls(urls, throttle)


def _add_urls(urls: tuple[Secret, ...], throttle: bool) -> list[Channel]:
    import apprise  # lazy: ~0.1 s to import, and the CLI never needs it

    out = []
    for secret in urls:
        tags, bare = split_alert_url(secret.get())
        key = hashlib.sha256(secret.get().encode()).hexdigest()[:12]
        name = (",".join(tags) + "=" if tags else "") + mask_url(bare)
        scheme = bare.partition("://")[0].lower()
        obj = apprise.Apprise()
        if obj.add(bare, tag=list(tags) or None):
            if not throttle:
                for service in obj:
                    service.request_rate_per_sec = 0
            out.append(Channel(key, name, tags, scheme, obj))
        else:
            out.append(Channel(key, name, tags, scheme, None, "Apprise does not recognise this URL"))
    return out


def apprise_file_services(path: Path) -> list[Any]:
    """The services of an Apprise YAML or TEXT config file, read by Apprise's own loader (AppriseConfig).

    Apprise skips what it cannot use and only logs why, so its log is captured: any warning or error
    while loading (a YAML error, an unknown scheme, a URL missing its token) fails the whole file with
    Apprise's reason, URLs masked, as does a file with no channel.
    """
    import apprise

    where = f'alerts.config = "{path}"'
    if not path.is_file():
        raise ConfigError(f"{where}: expected a readable Apprise YAML or TEXT config file, but it does not exist")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*imghdr.*", category=DeprecationWarning)
        # Untyped in Apprise 1.9-2.3: its LogCapture and each plugin's url() lack annotations.
        with apprise.LogCapture(level=logging.WARNING, fmt="%(message)s") as captured:  # type: ignore[no-untyped-call]
            config = apprise.AppriseConfig()
            config.add(str(path))
            services: list[Any] = list(config.services())
    # "Failed to load Apprise configuration from file://..." only repeats what the error says.
    lines = [line for line in captured.getvalue().splitlines() if line.strip()]
    reasons = [mask_urls(line) for line in lines if not line.startswith("Failed to load Apprise configuration")]
    if reasons:
        raise ConfigError(f"{where}: Apprise cannot use it: {'; '.join(dict.fromkeys(reasons))}")
    if not services:
        raise ConfigError(f"{where}: expected at least one notification URL, found none")
    return services


def load_apprise_config(path: Path, throttle: bool = True, notices: Sequence[Notice] = ()) -> list[Channel]:
    """The channels of an Apprise config file (apprise_file_services), each with its tags, checked for use.

    A tag must route something: an alert severity (ALERT_TAGS) or a `[[notices]]` recipient `tag:NAME`;
    and every `tag:NAME` of *notices* must reach a channel by Apprise's own matching, else a ConfigError
    names the notice's key. Channels tagged for notices only come back with `for_alerts` False.
    """
    import apprise

    where = f'alerts.config = "{path}"'
    services = apprise_file_services(path)
    _check_notice_tags(notices, services, where)  # first: a renamed tag is named by the notice's key
    wanted = {tag for n in notices for r in n.to if (tag := notice_tag(r.get()))}
    out = []
    for service in services:
        url = service.url()
        shown = service.url(privacy=True).partition("?")[0]  # Apprise's own masking; its defaults dropped
        tags = tuple(sorted(str(t) for t in service.tags))
        if unknown := [t for t in tags if t not in ALERT_TAGS and t not in wanted]:
            raise ConfigError(
                f"{where}: channel {shown} has tag(s) {', '.join(unknown)}: shiptrackd routes alerts by "
                f"{', '.join(ALERT_TAGS)} (or no tag for every severity) and notices by their "
                '`to = ["tag:NAME"]`, so it would never be sent anything'
            )
        if not throttle:
            service.request_rate_per_sec = 0
        obj = apprise.Apprise()
        obj.add(service)
        key = hashlib.sha256(url.encode()).hexdigest()[:12]
        name = (",".join(tags) + "=" if tags else "") + shown
        out.append(Channel(key, name, tags, url.partition("://")[0].lower(), obj))
    return out


def _check_notice_tags(notices: Sequence[Notice], services: list[Any], where: str) -> None:
    """Every `tag:NAME` recipient reaches at least one channel, as Apprise's notify(tag=NAME) would select."""
    import apprise

    everything = apprise.Apprise()
    everything.add(services)
    carried = sorted({str(t) for s in services for t in s.tags})
    for i, notice in enumerate(notices):
        for j, recipient in enumerate(notice.to):
            tag = notice_tag(recipient.get())
            if tag is not None and not any(True for _ in everything.find(tag, match_always=False)):
                raise ConfigError(
                    f"notices[{i}].to[{j}] = {json.dumps(recipient.get())}: no channel of {where} carries the "
                    f"tag {tag} (its tags: {', '.join(carried) or 'none'}): expected a channel tagged {tag}"
                )


def mask_urls(text: str) -> str:
    """Every URL in *text* masked: Apprise's messages may quote the URL it failed on, credentials and all."""
    return _URL_IN_TEXT.sub(lambda m: mask_url(m[0]), text)


_URL_IN_TEXT = re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]*://\S+")
_NOTIFY_TYPES = {"critical": "failure", "warning": "warning", "resolved": "success", "info": "info"}


class Dispatcher:
    """Claims queued alert rows and delivers them; `run()` is the long-lived task, `run_once()` one pass."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        bus: EventBus,
        channels: Callable[[], ChannelSet],
        config: Callable[[], AlertsConfig],
    ) -> None:
        self.store = store
        self.clock = clock
        self.bus = bus
        self._channels = channels
        self._config = config
        self.owner = ""  # the cluster member id its claims carry (the daemon sets it)
        self._wake = anyio.Event()
        self._progress = anyio.Event()  # set (and replaced) whenever a row finishes
        self.outcomes: Counter[tuple[str, str]] = Counter()  # (channel scheme, sent|failed), for metrics

    def wake(self) -> None:
        self._wake.set()

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Deliver until cancelled: rows a crash left half-sent first, then whatever gets queued."""
        # As the outbox: on a shared store only dead members' rows are released (cluster/membership.py).
        released = await self.store.alerts.release_claims() if self.store.backend == "sqlite" else 0
        if released:
            logger.warning("re-sending {} alert deliveries interrupted by the last stop", released)
        task_status.started()
        while True:
            self._wake = anyio.Event()
            try:
                if await self.run_once():
                    continue
            except Exception:  # the store failing, say: never fatal to the daemon, try again on the next sweep
                logger.opt(exception=True).error("alert sender failed; retrying in {}s", SWEEP_S)
            with anyio.move_on_after(SWEEP_S):
                await self._wake.wait()

    async def run_once(self) -> int:
        """Claim and deliver every pending row (concurrently, one task per row); how many were claimed."""
        rows = await self.store.alerts.pending()
        claimed = [r for r in rows if await self.store.alerts.claim(r.id, self.clock.now(), self.owner)]
        if not claimed:
            return 0
        limiter = anyio.CapacityLimiter(SEND_CONCURRENCY)

        async def one(row: AlertRow) -> None:
            async with limiter:
                await self._deliver(row)

        async with anyio.create_task_group() as tg:
            for row in claimed:
                tg.start_soon(one, row)
        return len(claimed)

    async def wait_for(self, notification_id: int, timeout_s: float) -> list[DeliveryRow]:
        """The notification's deliveries once none is pending or sending (or as they stand at the timeout)."""
        with anyio.move_on_after(timeout_s):
            while True:
                progress = self._progress
                rows = await self.store.alerts.deliveries(notification_id)
                if all(r.status in ("sent", "failed") for r in rows):
                    return rows
                await progress.wait()
        return await self.store.alerts.deliveries(notification_id)

    async def _deliver(self, row: AlertRow) -> None:
        cfg = self._config()
        channel = self._channels().get(row.channel_key)
        attempts, status, error = 0, "failed", ""
        try:
            if channel is None:
                error = "the channel is no longer configured"
            elif channel.error:
                error = channel.error
            else:
                async for attempt in stamina.retry_context(
                    on=DeliveryError, attempts=cfg.delivery_attempts, wait_initial=1.0, wait_max=30.0, timeout=None
                ):
                    with attempt:
                        attempts = attempt.num
                        try:
                            await self._send(channel, row, cfg.delivery_timeout_s)
                        except DeliveryError as exc:
                            error = str(exc)
                            await self.store.alerts.record_attempt(row.id, attempts, error)
                            logger.bind(loop="alerts").warning(
                                "alert {} to {} failed (attempt {}): {}",
                                row.notification_id,
                                channel.name,
                                attempts,
                                error,
                            )
                            raise
                status, error = "sent", ""
        except DeliveryError:
            pass  # retries exhausted: recorded below
        with anyio.CancelScope(shield=True):
            await self.store.alerts.finish(row.id, status, attempts, error, self.clock.now())
        self.outcomes[(channel.scheme if channel else "unknown", status)] += 1
        self.bus.publish(
            EVENT_ALERT_DELIVERY,
            notification_id=row.notification_id,
            channel=row.channel,
            status=status,
            attempts=attempts,
            error=error,
        )
        self._progress.set()
        self._progress = anyio.Event()

    async def _send(self, channel: Channel, row: AlertRow, timeout_s: float) -> None:
        if channel.apprise is None:
            # Critical at ERROR, so `journalctl -p err` shows an outage; warnings stay warnings.
            level = {"resolved": "INFO", "info": "INFO", "critical": "ERROR"}.get(row.severity, "WARNING")
            body = row.body.replace("\n", " | ")
            logger.bind(loop="alerts", alert=row.notification_id).log(level, "ALERT {} | {}", row.title, body)
            return
        import apprise

        try:
            with anyio.fail_after(timeout_s + 2):  # Apprise's own timeout first; this one if it overruns
                result = await channel.apprise.async_notify(
                    body=row.body,
                    title=row.title,
                    notify_type=apprise.NotifyType(_NOTIFY_TYPES.get(row.severity, "info")),
                    body_format=apprise.NotifyFormat.TEXT,
                    timeout=timeout_s,
                    log_level=logging.WARNING,
                )
        except TimeoutError:
            raise DeliveryError(f"no answer within {timeout_s:g}s") from None
        except Exception as exc:  # Apprise reports failures in its result; anything raised is a bug, still a failure
            raise DeliveryError(f"{type(exc).__name__}: {exc}") from exc
        if result.status != apprise.AppriseResultStatus.SUCCESS:
            reasons = "; ".join(dict.fromkeys(e.message for e in result.logs())) or result.status.name.lower()
            raise DeliveryError(mask_urls(reasons))
