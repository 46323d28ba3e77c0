"""
What the push channel has done lately: outcome counters, pushes per minute for the last hour, the
last verified push, and whether the channel has gone silent. Shared by the receiver (writes it),
the sync engine (cadence), the health check, status and the metrics (read it).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from ..units import format_rfc3339

OK, SILENT_WARNING, SILENT_CRITICAL = "ok", "warning", "critical"


def silence_level(
    last_push_at: datetime | None,
    since: datetime,
    subscribed: int,
    now: datetime,
    *,
    warning_s: float,
    critical_s: float,
) -> str:
    """
    Is the push channel silent? Pure: no subscribed shipment means nothing to expect ("ok");
    otherwise the time since the last verified push (or since `since`, the listener's start, when
    none came yet) against the two thresholds.
    """
    if subscribed <= 0:
        return OK
    quiet_s = (now - max(last_push_at or since, since)).total_seconds()
    if quiet_s >= critical_s:
        return SILENT_CRITICAL
    if quiet_s >= warning_s:
        return SILENT_WARNING
    return OK


@dataclass
class PushState:
    """The receiver's live figures; `subscribed` is refreshed by the subscription loop."""

    started_at: datetime
    warning_s: float
    critical_s: float
    last_push_at: datetime | None = None  # the last verified push, whatever it matched
    subscribed: int = 0
    registered_url: str | None = None  # what the provider was told, once `webhooks setup` ran
    totals: Counter[str] = field(default_factory=Counter)  # outcome -> count since start
    changes: int = 0  # status changes learned by push
    _minutes: dict[int, Counter[str]] = field(default_factory=dict)

    def count(self, outcome: str, now: datetime) -> None:
        self.totals[outcome] += 1
        minute = int(now.timestamp() // 60)
        self._minutes.setdefault(minute, Counter())[outcome] += 1
        if len(self._minutes) > 61:
            for old in sorted(self._minutes)[:-61]:
                del self._minutes[old]

    def verified(self, now: datetime) -> None:
        if self.last_push_at is None or now > self.last_push_at:
            self.last_push_at = now

    def last_hour(self, now: datetime) -> dict[str, int]:
        """Pushes in the last hour, by outcome."""
        first = int((now - timedelta(hours=1)).timestamp() // 60)
        out: Counter[str] = Counter()
        for minute, counts in self._minutes.items():
            if minute > first:
                out.update(counts)
        return dict(sorted(out.items()))

    def silence(self, now: datetime) -> str:
        return silence_level(
            self.last_push_at,
            self.started_at,
            self.subscribed,
            now,
            warning_s=self.warning_s,
            critical_s=self.critical_s,
        )

    def snapshot(self, now: datetime) -> dict[str, Any]:
        return {
            "registered_url": self.registered_url,
            "subscribed": self.subscribed,
            "last_push_at": format_rfc3339(self.last_push_at) if self.last_push_at else None,
            "last_hour": self.last_hour(now),
            "totals": dict(sorted(self.totals.items())),
            "changes_by_push": self.changes,
            "silence": self.silence(now),
        }
