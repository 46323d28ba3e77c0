"""
Notices on chosen transitions (`[[notices]]`): people hear, through Apprise, when a shipment reaches a status.

Not a second pipeline: a notice is an outbox route (`notice:<name>`, status changes filtered by
`on`) written in the change's own transaction, claimed by the same dispatcher, and sent through the
alerts' channel machinery (alerts.delivery.ChannelSet, Apprise). A `to` entry is an Apprise URL or
`tag:NAME`: the channels of the `[alerts] config` file that Apprise itself selects for NAME
(notify(tag=..., match_always=False)); the loader has checked that each tag reaches one. Quiet hours
(UTC) hold a notice until the window ends; past `digest_after` messages within `digest_window`,
counted on the daemon's clock, a burst goes as one digest and a trickle waits to go as one. Every
send is recorded as an attempt; a failed one is retried on the standard schedule.
"""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from ..config import Notice
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


class NoticeSender:
    """Sends one notice's claimed rows; channels are built lazily (loading Apprise takes ~0.5 s)."""

    def __init__(self, config_file: Path | None = None) -> None:
        self._channels: dict[str, Any] = {}
        self._sent: dict[str, deque[datetime]] = {}
        # Past `digest_after` in a window, notices are held until a slot frees, then go as one digest.
        self._held_until: dict[str, datetime] = {}
        self.configure(config_file)

    def configure(self, config_file: Path | None) -> None:
        """`[alerts] config`, where `tag:` recipients live; read again on first use (a reload may have changed it)."""
        self._config_file = config_file
        self._tagged: Any = None
        self._channels.clear()

    async def _apprise(self, notice: Notice) -> list[Any]:
        from ..alerts.delivery import ChannelSet  # Apprise: loaded only when a notice is configured

        urls = tuple(s for s in notice.to if notice_tag(s.get()) is None)
        if not urls:
            return []
        key = notice.name + "\0" + "\0".join(s.get() for s in urls)
        if key not in self._channels:
            self._channels[key] = await ChannelSet.build(urls)
        return [c for c in self._channels[key].channels if c.apprise is not None]

    async def _tagged_apprise(self) -> Any:
        """One Apprise object holding every channel of `[alerts] config`, for Apprise to select by tag."""
        import anyio
        import apprise

        from ..alerts.delivery import apprise_file_services

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
        datas = [json.loads(r.body)["data"] for r in rows]
        sent = self._sent.setdefault(notice.name, deque())
        window = timedelta(seconds=notice.digest_window_s)
        while sent and sent[0] <= now - window:
            sent.popleft()
        over = bool(notice.digest_after) and len(sent) + len(datas) > notice.digest_after
        if over and len(datas) == 1 and sent:
            # One more than the window allows: it and whatever follows wait for the window's oldest
            # message to age out, then go together as one digest (a trickle digests as a burst does).
            self._held_until[notice.name] = sent[0] + window
            return held(
                rows, endpoint, now, sent[0] + window, f"held for a digest until {sent[0] + window:%H:%M:%S} UTC"
            )
        if over and len(datas) > 1:
            title = f"{len(datas)} shipments: " + ", ".join(sorted({fields(d)["status_name"] for d in datas}))
            body = "\n".join(render(notice.title, d) for d in datas[:DIGEST_LINES])
            if len(datas) > DIGEST_LINES:
                body += f"\n... and {len(datas) - DIGEST_LINES} more"
            messages = [(title, body)]
        else:
            messages = [(render(notice.title, d), render(notice.body, d)) for d in datas]
        started = time.perf_counter()
        error = ""
        for title, body in messages:
            error = error or await self._notify(notice, title, body)
            sent.append(now)
        latency = (time.perf_counter() - started) * 1000
        out = []
        for r in rows:
            attempt = Attempt(r.id, endpoint, r.attempts + 1, now, latency, None if error else 200, error)
            out.append(settle(attempt, DEFAULT_RETRY_SCHEDULE, max_retry_after_s=0))
        return out

    async def _notify(self, notice: Notice, title: str, body: str) -> str:
        """Send to every channel of the notice; "" on success, else why."""
        import anyio
        import apprise

        tags = sorted({tag for s in notice.to if (tag := notice_tag(s.get()))})
        targets: list[tuple[str, Any, dict[str, Any]]] = [(c.name, c.apprise, {}) for c in await self._apprise(notice)]
        if tags:
            tagged = {"tag": tags, "match_always": False}  # exactly the channels carrying a tag (OR)
            targets.append(("tag:" + ",tag:".join(tags), None, tagged))
        for name, obj, selection in targets:
            try:
                if obj is None:
                    obj = await self._tagged_apprise()
                with anyio.fail_after(30):
                    result = await obj.async_notify(body=body, title=title, **selection)
            except Exception as exc:  # a channel's failure is a failed attempt, never a crash
                return f"{name}: {type(exc).__name__}: {exc}"[:300]
            if result.status != apprise.AppriseResultStatus.SUCCESS:
                return f"{name}: not delivered ({result.status.name.lower()})"
        return ""
