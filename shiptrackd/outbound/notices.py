"""
Notices on chosen transitions (`[[notices]]`): people hear, through Apprise, when a shipment reaches a status.

Not a second pipeline: a notice is an outbox route (`notice:<name>`, status changes filtered by
`on`) written in the change's own transaction, claimed by the same dispatcher, and sent through the
alerts' channel machinery (alerts.delivery.ChannelSet, Apprise). A `to` entry is an Apprise URL or
`tag:NAME`: the channels of the `[alerts] config` file that Apprise itself selects for NAME
(notify(tag=..., match_always=False)); the loader has checked that each tag reaches one. Quiet hours
(UTC) hold a notice until the window ends; past `digest_after` messages within `digest_window`,
counted on the daemon's clock, a burst goes as one digest and a trickle waits to go as one.

Delivery is per target (one Apprise service: a `to` URL, or a file channel a tag selects): each
target is sent the notice once; the row keeps which targets have it (`targets_done`), so a retry
goes only to those that failed, and a person whose target worked is never told twice. All targets
still missing it were tried on every attempt, so they share the row's attempt count and give up
together when the standard retry schedule ends: the row is delivered when every target has it, dead
when the schedule ran out first. An attempt's error names the targets that failed (masked).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from ..alerts.delivery import ChannelSet, apprise_file_services, mask_urls
from ..config import Notice, mask_url
from ..config.endpoints import notice_tag, parse_quiet_hours
from ..config.shapes import DEFAULT_RETRY_SCHEDULE
from ..store import Route, Settlement
from ..store.rows import ClaimedRow
from ..wire.names import STATUS_NAMES
from .policy import Attempt, settle

PREFIX = "notice:"
DIGEST_LINES = 50


def route_for(notice: Notice) -> Route:
    return Route(PREFIX + notice.name, frozenset({"shipment.status_changed"}), frozenset(notice.on))


class _Blank(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return ""


def fields(data: Mapping[str, Any]) -> dict[str, Any]:
    """The template fields of one change (None shown as nothing)."""
    event = data.get("latest_event") or {}
    latest = ", ".join(x for x in (event.get("description"), event.get("location")) if x)
    out = {k: ("" if v is None else v) for k, v in data.items() if k != "latest_event"}
    out["status_name"] = STATUS_NAMES.get(data.get("status") or "", data.get("status") or "")
    out["latest_event"] = latest
    return out


def render(template: str, data: Mapping[str, Any]) -> str:
    return " ".join(template.format_map(_Blank(fields(data))).split())


def quiet_until(notice: Notice, now: datetime) -> datetime | None:
    """The end of the quiet window *now* falls in, or None when notices may go out now."""
    window = parse_quiet_hours(notice.quiet_hours)
    if window is None:
        return None
    start, end = window
    minute = now.hour * 60 + now.minute
    inside = start <= minute < end if start < end else (minute >= start or minute < end)
    if not inside:
        return None
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    until = midnight + timedelta(minutes=end)
    return until if until > now else until + timedelta(days=1)


def held(rows: Sequence[ClaimedRow], endpoint: str, now: datetime, until: datetime, why: str) -> list[Settlement]:
    """Rows put back until *until*: held, not failed, so the attempt count stays."""
    return [Settlement(r.id, endpoint, r.attempts, now, "deferred", "pending", until, None, 0.0, why) for r in rows]


@dataclass(frozen=True)
class Target:
    """One Apprise service a notice goes to; `key` (a hash of its URL) is what a row keeps, `name` is masked."""

    key: str
    name: str
    apprise: Any  # apprise.Apprise holding just this service


def target_of(service: Any) -> Target:
    """The target of one Apprise service: a URL named twice (in `to` and by a tag) is one target, sent once."""
    import apprise

    url = service.url()
    obj = apprise.Apprise()
    obj.add(service)
    return Target(hashlib.sha256(url.encode()).hexdigest()[:12], mask_url(url).partition("?")[0], obj)


def messages(notice: Notice, rows: Sequence[ClaimedRow], digest: bool) -> list[tuple[list[ClaimedRow], str, str]]:
    """What *rows* come to for one target: one digest for them all, or one message each (rows, title, body)."""
    datas = [json.loads(r.body)["data"] for r in rows]
    if not digest or len(rows) < 2:
        return [([r], render(notice.title, d), render(notice.body, d)) for r, d in zip(rows, datas, strict=True)]
    title = f"{len(datas)} shipments: " + ", ".join(sorted({fields(d)["status_name"] for d in datas}))
    body = "\n".join(render(notice.title, d) for d in datas[:DIGEST_LINES])
    if len(datas) > DIGEST_LINES:
        body += f"\n... and {len(datas) - DIGEST_LINES} more"
    return [(list(rows), title, body)]


def outcome_error(tried: Mapping[str, str]) -> str:
    """One attempt's error from its targets' (key -> error, "" if delivered): "" when none failed."""
    failed = [e for e in tried.values() if e]
    if not failed:
        return ""
    return f"{len(failed)} of {len(tried)} targets failed: " + "; ".join(failed)


class NoticeSender:
    """Sends one notice's claimed rows; targets are built lazily (loading Apprise takes ~0.5 s)."""

    def __init__(self, config_file: Path | None = None) -> None:
        self._targets: dict[str, list[Target]] = {}
        self._sent: dict[str, deque[datetime]] = {}
        # Past `digest_after` in a window, notices are held until a slot frees, then go as one digest.
        self._held_until: dict[str, datetime] = {}
        self.configure(config_file)

    def configure(self, config_file: Path | None) -> None:
        """`[alerts] config`, where `tag:` recipients live; read again on first use (a reload may have changed it)."""
        self._config_file = config_file
        self._tagged: Any = None
        self._targets.clear()

    async def targets(self, notice: Notice) -> list[Target]:
        """Every service the notice goes to, once each: its URLs', then the file's channels its tags select."""
        key = notice.name + "\0" + "\0".join(s.get() for s in notice.to)
        if key not in self._targets:
            urls = tuple(s for s in notice.to if notice_tag(s.get()) is None)
            services = [s for c in (await ChannelSet.build(urls)).channels if c.apprise is not None for s in c.apprise]
            if tags := sorted({tag for s in notice.to if (tag := notice_tag(s.get()))}):
                # Apprise selects the channels carrying any of the tags (OR), as notify(tag=...) would.
                services += list((await self._tagged_apprise()).find(tags, match_always=False))
            found = {t.key: t for t in map(target_of, services)}
            self._targets[key] = list(found.values())
        return self._targets[key]

    async def _tagged_apprise(self) -> Any:
        """One Apprise object holding every channel of `[alerts] config`, for Apprise to select by tag."""
        import anyio
        import apprise

        if self._tagged is None:
            if self._config_file is None:  # refused at load; a notice is never sent to nobody silently
                raise ValueError("tag: recipients need [alerts] config")
            services = await anyio.to_thread.run_sync(apprise_file_services, self._config_file)
            tagged = apprise.Apprise()
            tagged.add(services)
            self._tagged = tagged
        return self._tagged

    async def send(self, notice: Notice, rows: Sequence[ClaimedRow], now: datetime) -> list[Settlement]:
        endpoint = PREFIX + notice.name
        until = quiet_until(notice, now)
        if until is not None:  # held, not failed: the attempt count stays
            return held(rows, endpoint, now, until, f"quiet hours until {until:%H:%M} UTC")
        held_until = self._held_until.get(notice.name)
        if held_until is not None and now < held_until:
            return held(rows, endpoint, now, held_until, f"held for a digest until {held_until:%H:%M:%S} UTC")
        self._held_until.pop(notice.name, None)
        sent = self._sent.setdefault(notice.name, deque())
        window = timedelta(seconds=notice.digest_window_s)
        while sent and sent[0] <= now - window:
            sent.popleft()
        over = bool(notice.digest_after) and len(sent) + len(rows) > notice.digest_after
        if over and len(rows) == 1 and sent:
            # One more than the window allows: it and whatever follows wait for the window's oldest
            # message to age out, then go together as one digest (a trickle digests as a burst does).
            self._held_until[notice.name] = sent[0] + window
            return held(
                rows, endpoint, now, sent[0] + window, f"held for a digest until {sent[0] + window:%H:%M:%S} UTC"
            )
        digest = over and len(rows) > 1
        started = time.perf_counter()
        tried = await self._deliver(notice, rows, digest)
        sent.extend([now] * (1 if digest else len(rows)))
        latency = (time.perf_counter() - started) * 1000
        out = []
        for r in rows:
            error = outcome_error(tried[r.id])
            attempt = Attempt(r.id, endpoint, r.attempts + 1, now, latency, None if error else 200, error)
            done = r.targets_done | {k for k, e in tried[r.id].items() if not e}
            settled = settle(attempt, DEFAULT_RETRY_SCHEDULE, max_retry_after_s=0)
            out.append(dataclasses.replace(settled, targets_done=frozenset(done)))
        return out

    async def _deliver(self, notice: Notice, rows: Sequence[ClaimedRow], digest: bool) -> dict[int, dict[str, str]]:
        """Send each target what it lacks, targets concurrently; per row, target key -> error ("" if delivered)."""
        import anyio

        tried: dict[int, dict[str, str]] = {r.id: {} for r in rows}
        try:
            targets = await self.targets(notice)
        except Exception as exc:  # the tag file unreadable since the start, say: every row fails, and retries
            why = mask_urls(f"{type(exc).__name__}: {exc}")[:300]
            return {r.id: {"": why} for r in rows}
        if not targets:  # none Apprise could use: not delivered to anyone, so not delivered
            return {r.id: {"": "no usable target (see the daemon's start-up warnings)"} for r in rows}

        async def one(target: Target) -> None:
            lacking = [r for r in rows if target.key not in r.targets_done]
            for group, title, body in messages(notice, lacking, digest):
                error = await self._notify(target, title, body)
                for r in group:
                    tried[r.id][target.key] = error

        async with anyio.create_task_group() as tg:
            for target in targets:
                tg.start_soon(one, target)
        return tried

    async def _notify(self, target: Target, title: str, body: str) -> str:
        """Send one message to one target; "" on success, else why (its URL masked)."""
        import anyio
        import apprise

        try:
            with anyio.fail_after(30):
                result = await target.apprise.async_notify(body=body, title=title, log_level=logging.WARNING)
        except Exception as exc:  # a target's failure is a failed attempt, never a crash
            return f"{target.name}: {mask_urls(f'{type(exc).__name__}: {exc}')}"[:300]
        if result.status != apprise.AppriseResultStatus.SUCCESS:
            reasons = "; ".join(dict.fromkeys(e.message for e in result.logs())) or result.status.name.lower()
            return f"{target.name}: not delivered ({mask_urls(reasons)})"[:300]
        return ""
