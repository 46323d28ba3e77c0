"""
The alert rules, apart from the service that runs them: per-check AlertState, the Policy, and the
pure steps 1-3 of alerts.py (observe the streaks, decide firing / repeat / escalated / resolved,
silence and inhibit), after_notice(), and the grouped message's text (compose()).

Split from alerts.py so the rules are pure functions, tested as tables, with no store, dispatcher
or Apprise behind them; `Alerting` in alerts.py applies them (and the hourly cap) to each report.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING

from ..config import AlertsConfig
from ..health.rules import CheckResult, rank
from ..units import format_duration, format_rfc3339
from ..wire.names import CRITICAL, OK, UNKNOWN, WARNING

if TYPE_CHECKING:  # the row type only: the rules stay pure (no store, no database driver)
    from ..store.rows import AlertStateRow

CAUSE = "api_connectivity"
SYMPTOMS = frozenset({"stale_shipments", "recent_sync", "error_rate"})  # what a dead API also breaks


def severity(level: str) -> str:
    """The alert severity of a check level: unknown (a check that could not run) alerts as a warning."""
    return {CRITICAL: CRITICAL, WARNING: WARNING, UNKNOWN: WARNING}.get(level, OK)


@dataclass(frozen=True)
class Policy:
    for_reports: int = 2
    resolve_after: int = 2
    repeat_interval_s: float = 4 * 3600
    send_resolved: bool = True

    @classmethod
    def of(cls, cfg: AlertsConfig) -> Policy:
        return cls(cfg.for_reports, cfg.resolve_after, cfg.repeat_interval_s, cfg.send_resolved)


@dataclass(frozen=True)
class AlertState:
    """Where one check's alert stands; `notified_level` is set while it is firing (what we last told)."""

    check: str
    level: str = OK
    failing_streak: int = 0
    passing_streak: int = 0
    notified_level: str | None = None
    fired_at: datetime | None = None
    last_notified_at: datetime | None = None
    message: str = ""
    value: float | None = None

    @property
    def firing(self) -> bool:
        return self.notified_level is not None

    @classmethod
    def from_row(cls, row: AlertStateRow) -> AlertState:
        return cls(
            row.check_name,
            row.level,
            row.failing_streak,
            row.passing_streak,
            row.notified_level,
            row.fired_at,
            row.last_notified_at,
            row.message,
            row.value,
        )


@dataclass(frozen=True)
class Decision:
    """A notice one check wants: firing, repeat, escalated or resolved; `held` says why it is not sent."""

    check: str
    kind: str
    severity: str  # the severity told; for a resolved notice, the one it had fired at
    held: str = ""


def observe(state: AlertState, level: str, message: str, value: float | None) -> AlertState:
    """Step 1: the streaks after one more report."""
    if severity(level) != OK:
        return replace(
            state, level=level, failing_streak=state.failing_streak + 1, passing_streak=0, message=message, value=value
        )
    return replace(
        state, level=level, failing_streak=0, passing_streak=state.passing_streak + 1, message=message, value=value
    )


def decide(state: AlertState, now: datetime, policy: Policy, *, silenced: bool, inhibited: bool) -> Decision | None:
    """Step 2-3: the notice this check wants now, if any, and whether it is held back (pure)."""
    sev = severity(state.level)
    decision: Decision | None = None
    if state.notified_level is None:
        if sev != OK and state.failing_streak >= policy.for_reports:
            decision = Decision(state.check, "firing", sev)
    elif sev != OK:
        if rank(sev) > rank(state.notified_level):
            decision = Decision(state.check, "escalated", sev)
        elif (
            state.last_notified_at is None or (now - state.last_notified_at).total_seconds() >= policy.repeat_interval_s
        ):
            decision = Decision(state.check, "repeat", sev)
    elif state.passing_streak >= policy.resolve_after:
        decision = Decision(state.check, "resolved", state.notified_level)
    if decision is None:
        return None
    if silenced:
        return replace(decision, held="silenced")
    if inhibited and decision.kind != "resolved":
        return replace(decision, held=f"{CAUSE} is critical")
    if decision.kind == "resolved" and not policy.send_resolved:
        return replace(decision, held="send_resolved is off")
    return decision


def after_notice(state: AlertState, decision: Decision, now: datetime) -> AlertState:
    """The state once *decision* went out (or, for a muted resolved notice, was dropped)."""
    if decision.kind == "resolved":
        return replace(state, notified_level=None, fired_at=None)
    fired_at = state.fired_at if decision.kind != "firing" or state.fired_at else now
    return replace(state, notified_level=decision.severity, fired_at=fired_at, last_notified_at=now)


@dataclass(frozen=True)
class Plan:
    states: dict[str, AlertState]  # to store whether or not the notice goes out
    send: list[Decision]  # one grouped message
    held: list[Decision]  # muted, inhibited, or resolved quietly


def plan(
    states: Mapping[str, AlertState],
    checks: Sequence[CheckResult],
    now: datetime,
    policy: Policy,
    *,
    silenced: Iterable[str] = (),
    inhibit: bool = True,
) -> Plan:
    """Steps 1-3 for one report (pure). `send` still has to pass the hourly cap; then apply after_notice()."""
    muted = set(silenced)
    api = next((c for c in checks if c.name == CAUSE), None)
    cause_down = inhibit and api is not None and api.level == CRITICAL
    new: dict[str, AlertState] = dict(states)
    send: list[Decision] = []
    held: list[Decision] = []
    for check in checks:
        state = observe(states.get(check.name) or AlertState(check.name), check.level, check.message, check.value)
        decision = decide(
            state,
            now,
            policy,
            silenced="*" in muted or check.name in muted,
            inhibited=cause_down and check.name in SYMPTOMS,
        )
        if decision is not None and decision.held:
            held.append(decision)
            if decision.kind == "resolved":  # recovered while muted: close it quietly
                state = after_notice(state, decision, now)
        elif decision is not None:
            send.append(decision)
        new[check.name] = state
    return Plan(new, send, held)


# --- messages --------------------------------------------------------------------------------


def group_severity(decisions: Sequence[Decision]) -> str:
    firing = [d.severity for d in decisions if d.kind != "resolved"]
    return max(firing, key=rank) if firing else "resolved"


def compose(
    decisions: Sequence[Decision],
    checks: Mapping[str, CheckResult],
    states: Mapping[str, AlertState],
    *,
    host: str,
    now: datetime,
) -> tuple[str, str]:
    """(title, body) of one grouped message: host, each check with its value and threshold, and the evidence."""
    sev = group_severity(decisions)
    names = ", ".join(d.check for d in decisions)
    title = f"[{sev.upper()}] shiptrackd on {host}: {names}"
    lines = [headline(host, now), ""]
    order = sorted(decisions, key=lambda d: (d.kind == "resolved", -rank(d.severity) if d.kind != "resolved" else 0))
    for d in order:
        check = checks.get(d.check)
        state = states.get(d.check)
        message = check.message if check else (state.message if state else "")
        if d.kind == "resolved":
            since = _since(state.fired_at if state else None, now)
            lines.append(f"RESOLVED {d.check}: {message} (was {d.severity}{since})")
            continue
        label = {"firing": "", "repeat": " (still failing)", "escalated": " (escalated)"}[d.kind]
        since = _since(state.fired_at if state else None, now) if d.kind != "firing" else ""
        lines.append(f"{d.severity.upper()} {d.check}{label}: {message}{since}")
        if check is not None and check.value is not None:
            threshold = check.threshold_text()
            value = check.to_dict()["value_text"]
            lines.append(f"  value {value}" + (f" ({threshold})" if threshold else ""))
        lines.extend(f"  {line}" for line in _evidence(check))
    return title, "\n".join(lines).rstrip() + "\n"


def headline(host: str, now: datetime) -> str:
    """The first line of every message, test notices too: "shiptrackd on vm-7, 2026-01-05T12:00:00Z"."""
    return f"shiptrackd on {host}, {format_rfc3339(now.replace(microsecond=0))}"


def _since(at: datetime | None, now: datetime) -> str:
    if at is None:
        return ""
    since = format_rfc3339(at.replace(second=0, microsecond=0))  # to the minute: a person reads it
    return f", failing since {since} ({format_duration(max(0, round((now - at).total_seconds())))})"


def _cut(text: str, width: int = 120) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _evidence(check: CheckResult | None) -> list[str]:
    """The top failing shipments or error kinds behind a check, as indented lines."""
    if check is None:
        return []
    if check.name == "stale_shipments":
        return [
            f"- {s['id']} {s['carrier_code']} {s['tracking_number']} status {s.get('status_code') or 'none'},"
            f" last updated {s.get('last_synced_at') or 'never (added ' + str(s.get('created_at')) + ')'}"
            + (f": {_cut(s['last_error'])}" if s.get("last_error") else "")
            for s in check.details.get("top", [])
        ]
    if check.name == "error_rate" and check.details.get("kinds"):
        kinds = sorted(check.details["kinds"].items(), key=lambda kv: -kv[1])[:5]
        return ["errors by kind: " + ", ".join(f"{k} {n}" for k, n in kinds)]
    if check.name == "loops" and check.details.get("problems"):
        return [f"- {p}" for p in check.details["problems"]]
    return []
