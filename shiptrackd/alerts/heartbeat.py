"""
The dead man's switch: ping an outside service every `heartbeat_interval` while the daemon is healthy.

Every other alert comes from the daemon itself, so a dead VM, a hung event loop or a stopped
daemon says nothing. A ping service (healthchecks.io, Uptime Kuma, Cronitor, Alertmanager-style
ping URLs) alerts when the pings stop; it is the one alert that does not need us alive.

Which URL one ping uses follows the last health report (HealthMonitor.current(), which measures
afresh when the health loop is overdue, so a stuck health loop cannot keep pinging "ok"):
  - ok, warning or unknown: `heartbeat_url` ("alive"; warnings already go through the channels,
    and a missed ping would tell the ping service the host is dead, which it is not);
  - critical: `heartbeat_fail_url`, by default `heartbeat_url` + "/fail" (healthchecks.io's form).
The body runs as its own supervised loop, under a hard timeout; it records every outcome and never
raises, so a dead ping service costs one timeout per interval and blocks no other loop. The URLs
carry the service's token: they are shown masked everywhere (status, metrics, logs, errors).
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import anyio
import httpx
from loguru import logger

from .. import __version__
from ..clock import Clock
from ..config import AlertsConfig, mask_url
from ..units import format_rfc3339
from ..wire.names import CRITICAL

SUCCESS, FAIL = "success", "fail"
_URL_IN_TEXT = re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]*://\S+")


def fail_url(config: AlertsConfig) -> str:
    """The URL pinged while health is critical: the configured one, else `<heartbeat_url>/fail`, query kept."""
    if config.heartbeat_fail_url:
        return config.heartbeat_fail_url.get()
    base, qmark, query = config.heartbeat_url.get().partition("?")
    return f"{base.rstrip('/')}/fail{qmark}{query}"


@dataclass(frozen=True)
class PingResult:
    """One ping: when, which URL (kind), why (the health level), and how it went."""

    at: datetime
    kind: str  # success | fail
    level: str  # the health level that chose the URL
    ok: bool
    status: int | None = None
    error: str = ""
    elapsed_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "at": format_rfc3339(self.at),
            "kind": self.kind,
            "level": self.level,
            "ok": self.ok,
            "status": self.status,
            "error": self.error,
            "elapsed_s": round(self.elapsed_s, 3),
        }


class Heartbeat:
    """Pings the configured URLs; `run_once()` is the heartbeat loop's body; `config` follows reloads."""

    def __init__(
        self,
        *,
        config: Callable[[], AlertsConfig],
        clock: Clock,
        level: Callable[[], Awaitable[str]],
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._config = config
        self.clock = clock
        self._level = level
        self._transport = transport  # a test seam; the default is httpx's own
        self.last: PingResult | None = None
        self.last_ok_at: datetime | None = None
        self.outcomes: Counter[tuple[str, str]] = Counter()  # (kind, ok|failed), for metrics

    async def run_once(self) -> str:
        """Choose the URL by health, ping it under a hard timeout, record the result; never raises."""
        cfg = self._config()
        timeout_s = cfg.heartbeat_timeout_s
        level = "unknown"
        try:
            with anyio.fail_after(timeout_s * 3):  # measuring health, if it is overdue, gets time too
                level = await self._level()
        except Exception as exc:  # TimeoutError included: an unmeasurable daemon still says it is alive
            logger.bind(loop="heartbeat").warning("heartbeat: health unavailable ({}); pinging anyway", _why(exc))
        kind = FAIL if level == CRITICAL else SUCCESS
        url = fail_url(cfg) if kind == FAIL else cfg.heartbeat_url.get()
        result = await self._ping(url, kind, level, timeout_s)
        self.last = result
        self.outcomes[(kind, "ok" if result.ok else "failed")] += 1
        if result.ok:
            self.last_ok_at = result.at
            return f"{kind} ping ok ({result.status}) in {result.elapsed_s * 1000:.0f} ms"
        logger.bind(loop="heartbeat").warning("heartbeat {} ping to {} failed: {}", kind, mask_url(url), result.error)
        return f"{kind} ping failed: {result.error}"

    async def _ping(self, url: str, kind: str, level: str, timeout_s: float) -> PingResult:
        at = self.clock.now()
        started = time.monotonic()
        status: int | None = None
        error = ""
        try:
            with anyio.fail_after(timeout_s + 1):  # httpx's timeout is per phase; this bounds the whole ping
                async with httpx.AsyncClient(
                    transport=self._transport,
                    timeout=timeout_s,
                    headers={"User-Agent": f"shiptrackd/{__version__}"},
                    follow_redirects=True,
                ) as client:
                    response = await client.get(url)
            status = response.status_code
            if not 200 <= status < 300:
                error = f"HTTP {status}"
        except (TimeoutError, httpx.TimeoutException):
            error = f"no answer within {timeout_s:g}s"
        except Exception as exc:  # connection refused, DNS, TLS...: recorded, never raised
            error = _why(exc)
        return PingResult(at, kind, level, not error, status, error, time.monotonic() - started)

    def snapshot(self) -> dict[str, Any]:
        """What `/v1/status` shows: the masked URLs, the interval, the last ping and the last good one."""
        cfg = self._config()
        return {
            "url": mask_url(cfg.heartbeat_url.get()),
            "fail_url": mask_url(fail_url(cfg)),
            "interval_s": cfg.heartbeat_interval_s,
            "last": self.last.to_dict() if self.last else None,
            "last_ok_at": format_rfc3339(self.last_ok_at) if self.last_ok_at else None,
        }


def _why(exc: BaseException) -> str:
    """An exception as one line, any URL in it masked (httpx puts the URL in some messages)."""
    text = str(exc) or type(exc).__name__
    return _URL_IN_TEXT.sub(lambda m: mask_url(m[0]), f"{type(exc).__name__}: {text}")
