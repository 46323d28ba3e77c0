"""
Health checks' data and pure rules, split from health.py so they are tested as tables and imported
(by alert_rules, metrics) without the monitor's I/O: CheckResult and its Perf data, the levels, the
`judge_*` functions (measurements, thresholds and `now` in, a CheckResult out) and the report.
`HealthMonitor` in health.py measures and calls these.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from .. import __version__
from ..config import HealthConfig, parse_space
from ..units import format_duration, format_rfc3339, format_size

if TYPE_CHECKING:
    from ..schedule import Loop
    from ..store.rows import Shipment

from ..wire.names import CRITICAL, LEVEL_EXIT_CODES, OK, UNKNOWN, WARNING

_RANK = {OK: 0, UNKNOWN: 1, WARNING: 2, CRITICAL: 3}  # the order "worst" uses (check_multi's)
TOP_STALE = 5  # stale shipments a report (and so an alert) names


def worst(levels: Iterable[str]) -> str:
    return max(levels, key=_RANK.__getitem__, default=OK)


def rank(level: str) -> int:
    return _RANK[level]


def span(seconds: float) -> str:
    """412.7 -> "6m52s": whole seconds, for messages."""
    return format_duration(max(0, round(seconds)))


@dataclass(frozen=True)
class Perf:
    """One monitoring-plugin performance datum: 'label'=value[unit];warn;crit;min;max (ranges as text)."""

    label: str
    value: float
    unit: str = ""
    warn: str = ""
    crit: str = ""
    min: float | None = 0
    max: float | None = None


@dataclass(frozen=True)
class CheckResult:
    """One check's verdict: level, what was seen (message), the number behind it and its thresholds."""

    name: str
    level: str
    message: str
    value: float | None = None
    unit: str = ""  # "s", "%", "B" or "" (a count)
    warning: float | None = None
    critical: float | None = None
    lower_is_worse: bool = False  # free disk: alert *below* the thresholds
    perf: tuple[Perf, ...] = ()
    details: dict[str, Any] = field(default_factory=dict)

    def threshold_text(self) -> str:
        """ "warning above 10, critical above 100" (or below), for messages; "" when there are none."""
        word = "below" if self.lower_is_worse else "above"
        parts = []
        for name, limit in (("warning", self.warning), ("critical", self.critical)):
            if limit is not None:
                parts.append(f"{name} {word} {_show_value(limit, self.unit)}")
        return ", ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["threshold"] = self.threshold_text()
        d["value_text"] = _show_value(self.value, self.unit) if self.value is not None else ""
        return d


def _show_value(value: float, unit: str) -> str:
    if unit == "s":  # milliseconds only under 10 s (a latency), as shiptrackctl prints durations
        return format_duration(round(value, 3), parts=2) if value < 10 else span(value)
    if unit == "B":
        return format_size(value)
    if unit == "%":
        return f"{value:.1f}%"
    return f"{value:g}"


def _above(value: float, warning: float, critical: float) -> str:
    return CRITICAL if value > critical else WARNING if value > warning else OK


# --- judging (pure) ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ApiProbe:
    """What one connectivity probe saw: a latency, an error (ProviderError kind), or why it was skipped."""

    latency_s: float | None = None
    error_kind: str | None = None
    error: str = ""
    status: int | None = None
    skipped: str = ""


def judge_api(
    probe: ApiProbe,
    *,
    now: datetime,
    auth_failed_at: datetime | None,
    auth_window_s: float,
    latency_warning_s: float,
    quota_exhausted: str = "",
    key_setting: str = "[provider] api_key",
) -> CheckResult:
    """Unauthorized or unreachable is critical, so is a 401 in a recent sync or a spent quota; an error
    answer or a slow one warns. `quota_exhausted` is "provider: what it said" while registrations fail."""
    name = "api_connectivity"
    latency = probe.latency_s
    perf = (Perf("api_latency", round(latency, 4), "s", f"{latency_warning_s:g}"),) if latency is not None else ()
    if quota_exhausted and probe.error_kind not in ("unauthorized", "unreachable"):
        msg = (
            f"{quota_exhausted.split(':')[0]}: quota exhausted, new shipments cannot be registered"
            " (registered ones are still polled)"
        )
        return CheckResult(name, CRITICAL, msg, perf=perf, details={"error": quota_exhausted})
    if probe.error_kind == "unauthorized":
        msg = f"the API rejected the key (HTTP {probe.status}): check {key_setting}"
        return CheckResult(name, CRITICAL, msg, details={"error": probe.error, "status": probe.status})
    if probe.error_kind == "unreachable":
        return CheckResult(name, CRITICAL, f"the API is unreachable: {probe.error}", details={"error": probe.error})
    if probe.error_kind is not None:
        msg = f"the API answered with an error: {probe.error}"
        return CheckResult(name, WARNING, msg, details={"error": probe.error, "status": probe.status})
    if auth_failed_at is not None and (now - auth_failed_at).total_seconds() <= auth_window_s:
        ago = span((now - auth_failed_at).total_seconds())
        msg = f"the API rejected the key during a sync {ago} ago: check {key_setting}"
        return CheckResult(name, CRITICAL, msg, perf=perf, details={"auth_failed_at": auth_failed_at.isoformat()})
    if probe.skipped:
        return CheckResult(name, OK, f"not probed: {probe.skipped}")
    assert probe.latency_s is not None
    level = WARNING if probe.latency_s > latency_warning_s else OK
    msg = f"the API answered in {_show_value(probe.latency_s, 's')}" + (" (slow)" if level == WARNING else "")
    return CheckResult(name, level, msg, round(probe.latency_s, 4), "s", latency_warning_s, perf=perf)


def judge_accounts(judged: Sequence[tuple[str, CheckResult]]) -> CheckResult:
    """One api_connectivity result from each provider account's: the worst, naming its account.

    A single account's result is returned as it is. With several, a failing account's message
    starts with its name, `details.accounts` has every account's level and message, and each
    account's latency is its own perf label.
    """
    if len(judged) == 1:
        return judged[0][1]
    name, bad = max(judged, key=lambda pair: rank(pair[1].level))  # the first of the worst
    accounts = {n: {"level": r.level, "message": r.message} for n, r in judged}
    perf = tuple(replace(p, label=f"{p.label}_{n}") for n, r in judged for p in r.perf)
    if bad.level == OK:
        answered = ", ".join(f"{n} {_show_value(r.value, 's')}" if r.value is not None else n for n, r in judged)
        message = f"every account answered: {answered}"
        return replace(bad, message=message, perf=perf, details={"accounts": accounts})
    return replace(
        bad,
        message=f"{name}: {bad.message}",
        perf=perf,
        details={**bad.details, "provider": name, "accounts": accounts},
    )


def judge_webhooks(
    *,
    subscribed: int,
    last_push_at: datetime | None,
    listening_since: datetime,
    now: datetime,
    warning_s: float,
    critical_s: float,
    last_hour: dict[str, int],
) -> CheckResult:
    """No push for silence_after while shipments are subscribed warns; longer is critical (polling takes over)."""
    name = "webhooks"
    accepted = sum(n for outcome, n in last_hour.items() if outcome in ("accepted", "duplicate", "stale"))
    rejected = sum(last_hour.values()) - accepted
    details = {"subscribed": subscribed, "last_hour": last_hour}
    tail = f"; {rejected} refused in the last hour" if rejected else ""
    if subscribed <= 0:
        return CheckResult(name, OK, f"no subscribed shipments: no pushes expected{tail}", details=details)
    since = max(last_push_at or listening_since, listening_since)
    quiet = max(0.0, (now - since).total_seconds())
    level = _above(quiet, warning_s - 1e-9, critical_s - 1e-9)
    perf = (Perf("push_silence", round(quiet), "s", f"{warning_s:g}", f"{critical_s:g}"),)
    if level == OK:
        what = f"last push {span(quiet)} ago" if last_push_at else f"no push yet (listening {span(quiet)})"
        msg = f"{what}, {subscribed} subscribed{tail}"
    else:
        what = f"no push for {span(quiet)}" if last_push_at else f"no push since the listener started {span(quiet)} ago"
        msg = f"{what} with {subscribed} subscribed shipments: polling has taken over{tail}"
    return CheckResult(name, level, msg, round(quiet), "s", warning_s, critical_s, perf=perf, details=details)


def judge_recent_sync(
    last_success_at: datetime | None,
    *,
    now: datetime,
    started_at: datetime,
    warning_s: float,
    critical_s: float,
    paused: bool = False,
) -> CheckResult:
    """The age of the last successful sync run against two ages; a young daemon gets time for its first run."""
    name = "recent_sync"
    note = " (the sync loop is paused)" if paused else ""
    if last_success_at is None:
        up = (now - started_at).total_seconds()
        level = _above(up, warning_s, critical_s)
        if level == OK:
            return CheckResult(name, OK, f"no successful sync yet (daemon up {span(up)}){note}")
        msg = f"no successful sync since the daemon started {span(up)} ago{note}"
        return CheckResult(name, level, msg, round(up), "s", warning_s, critical_s)
    age = max(0.0, (now - last_success_at).total_seconds())
    level = _above(age, warning_s, critical_s)
    perf = (Perf("last_sync_age", round(age), "s", f"{warning_s:g}", f"{critical_s:g}"),)
    msg = f"last successful sync {span(age)} ago{note}"
    return CheckResult(name, level, msg, round(age), "s", warning_s, critical_s, perf=perf)


def judge_stale(
    count: int,
    active: int,
    *,
    stale_after_s: float,
    warning: int,
    critical: int,
    alert_threshold: int | None = None,
    top: Sequence[Mapping[str, Any]] = (),
) -> CheckResult:
    """More stale shipments than the warning / critical counts; `alert_threshold` replaces the warning count."""
    if alert_threshold is not None:
        warning, critical = alert_threshold, max(critical, alert_threshold)
    level = _above(count, warning, critical)
    after = span(stale_after_s)
    if count:
        msg = f"{count} of {active} active shipments not updated for over {after}"
    else:
        msg = f"no active shipment is older than {after} ({active} active)"
    perf = (
        Perf("stale_shipments", count, "", str(warning), str(critical)),
        Perf("active_shipments", active),
    )
    details = {"active": active, "stale_after_s": stale_after_s, "top": [_stale_view(s) for s in top]}
    return CheckResult("stale_shipments", level, msg, count, "", warning, critical, perf=perf, details=details)


def stale_entry(shipment: Shipment) -> dict[str, Any]:
    """A stale shipment as the check's details list it (times in RFC 3339, like every answer)."""
    synced = shipment.last_synced_at
    return {
        "id": shipment.id,
        "carrier_code": shipment.carrier_code,
        "tracking_number": shipment.tracking_number,
        "status_code": shipment.status_code,
        "last_synced_at": format_rfc3339(synced) if synced else None,
        "created_at": format_rfc3339(shipment.created_at),
        "last_error": shipment.last_error,
    }


def _stale_view(s: Mapping[str, Any]) -> dict[str, Any]:
    keys = ("id", "carrier_code", "tracking_number", "status_code", "last_synced_at", "created_at", "last_error")
    return {k: s.get(k) for k in keys}


def judge_error_rate(
    failed: int,
    attempted: int,
    kinds: Mapping[str, int],
    *,
    window_s: float,
    warning_pct: float,
    critical_pct: float,
    min_attempts: int,
) -> CheckResult:
    """Failed / attempted tracking fetches over the window, in percent; too few attempts are not judged."""
    rate = 100.0 * failed / attempted if attempted else 0.0
    window = span(window_s)
    perf = (
        Perf("sync_error_rate", round(rate, 2), "%", f"{warning_pct:g}", f"{critical_pct:g}", 0, 100),
        Perf("sync_attempts", attempted),
    )
    top = ", ".join(f"{k} {n}" for k, n in sorted(kinds.items(), key=lambda kv: -kv[1])[:3])
    details = {"failed": failed, "attempted": attempted, "kinds": dict(kinds)}
    if attempted < min_attempts:
        msg = f"{attempted} fetch attempts in the last {window} ({failed} failed): too few to judge"
        return CheckResult("error_rate", OK, msg, round(rate, 2), "%", perf=perf, details=details)
    level = _above(rate, warning_pct, critical_pct)
    msg = f"{rate:.1f}% of fetches failed in the last {window} ({failed} of {attempted}" + (f"; {top})" if top else ")")
    value = round(rate, 2)
    return CheckResult("error_rate", level, msg, value, "%", warning_pct, critical_pct, perf=perf, details=details)


@dataclass(frozen=True)
class LoopView:
    """What the loop check needs of a schedule.Loop."""

    name: str
    paused: bool = False
    running: bool = False
    failures: int = 0
    last_error: str = ""
    next_run_at: datetime | None = None

    @classmethod
    def of(cls, loop: Loop) -> LoopView:
        return cls(loop.name, loop.paused, loop.running, loop.failures, loop.last_error, loop.next_run_at)


def judge_loops(
    loops: Sequence[LoopView],
    *,
    now: datetime,
    sync_running_s: float | None,
    failures_warning: int,
    failures_critical: int,
    overdue_after_s: float,
    max_runtime_s: float,
) -> CheckResult:
    """A loop failing N times in a row, a loop overdue past its next run, a sync running past max_runtime."""
    problems: list[tuple[str, str]] = []
    for loop in loops:
        if loop.failures >= failures_warning:
            level = CRITICAL if loop.failures >= failures_critical else WARNING
            times = "once" if loop.failures == 1 else f"{loop.failures} times in a row"
            problems.append((level, f"loop {loop.name} failed {times} ({loop.last_error})"))
        late = (now - loop.next_run_at).total_seconds() if loop.next_run_at else 0.0
        if not loop.paused and not loop.running and late > overdue_after_s:
            problems.append((WARNING, f"loop {loop.name} is {span(late)} overdue"))
    if sync_running_s is not None and sync_running_s > max_runtime_s:
        level = CRITICAL if sync_running_s > 2 * max_runtime_s else WARNING
        problems.append((level, f"a sync has run for {span(sync_running_s)} (max_runtime {span(max_runtime_s)})"))
    most = max((loop.failures for loop in loops), default=0)
    perf = (
        Perf("loop_failures", most, "", str(failures_warning - 1), str(failures_critical - 1)),
        Perf("sync_runtime", round(sync_running_s or 0), "s", f"{max_runtime_s:g}", f"{2 * max_runtime_s:g}"),
    )
    paused = [loop.name for loop in loops if loop.paused]
    if not problems:
        msg = f"{len(loops)} loops healthy" + (f" ({', '.join(paused)} paused)" if paused else "")
        return CheckResult("loops", OK, msg, most, "", perf=perf, details={"paused": paused})
    problems.sort(key=lambda p: -rank(p[0]))
    level = problems[0][0]
    return CheckResult(
        "loops",
        level,
        "; ".join(text for _, text in problems),
        most,
        "",
        failures_warning - 1,
        failures_critical - 1,
        perf=perf,
        details={"paused": paused, "problems": [text for _, text in problems]},
    )


def space_threshold(spec: str, total_bytes: int) -> float:
    """A free-space threshold ("10%" or "2GB") in bytes, for a disk of *total_bytes*."""
    amount, percent = parse_space(spec)
    return total_bytes * amount / 100 if percent else amount


def judge_store(
    *,
    write_error: str,
    write_s: float | None,
    quick_check: str | None,
    quick_check_age_s: float | None,
    free_bytes: int,
    total_bytes: int,
    size_bytes: int,
    free_warning: str,
    free_critical: str,
    where: str = "",
) -> CheckResult:
    """The store must take a write, pass quick_check, and have free disk above the thresholds."""
    warn = space_threshold(free_warning, total_bytes)
    crit = space_threshold(free_critical, total_bytes)
    perf = (
        Perf("store_free", free_bytes, "B", f"{warn:.0f}:", f"{crit:.0f}:", 0, total_bytes),
        Perf("store_size", size_bytes, "B"),
    )
    pct = 100.0 * free_bytes / total_bytes if total_bytes else 0.0
    free_text = f"{format_size(free_bytes)} free ({pct:.0f}%)" + (f" in {where}" if where else "")

    def result(level: str, msg: str) -> CheckResult:
        details = {"quick_check": quick_check, "write_s": write_s, "size_bytes": size_bytes}
        return CheckResult("store", level, msg, free_bytes, "B", warn, crit, True, perf, details)

    if write_error:
        return result(CRITICAL, f"the store cannot be written: {write_error}")
    if quick_check is not None and quick_check != "ok":
        return result(CRITICAL, f"PRAGMA quick_check failed: {quick_check}")
    if free_bytes < crit:
        return result(CRITICAL, f"only {free_text}")
    if free_bytes < warn:
        return result(WARNING, f"only {free_text}")
    checked = f"quick_check ok {span(quick_check_age_s)} ago" if quick_check_age_s is not None else "quick_check ok"
    write = f"writable ({_show_value(write_s, 's')})" if write_s is not None else "writable"
    return result(OK, f"{write}, {checked}, {free_text}")


def summarise(checks: Sequence[CheckResult]) -> tuple[str, str]:
    """(level, one-line summary): the worst level, and the failing checks' messages, worst first."""
    level = worst(c.level for c in checks)
    failing = sorted((c for c in checks if c.level != OK), key=lambda c: -rank(c.level))
    if not failing:
        recent = next((c.message for c in checks if c.name == "recent_sync"), "")
        return level, f"all {len(checks)} checks ok" + (f"; {recent}" if recent else "")
    return level, "; ".join(f"{c.name}: {c.message}" for c in failing)


def build_report(checks: Sequence[CheckResult], *, at: datetime, host: str, trigger: str) -> dict[str, Any]:
    level, summary = summarise(checks)
    return {
        "at": at.isoformat(),
        "level": level,
        "exit_code": LEVEL_EXIT_CODES[level],
        "summary": summary,
        "host": host,
        "version": __version__,
        "trigger": trigger,
        "checks": [c.to_dict() for c in checks],
    }


def check_from_dict(d: Mapping[str, Any]) -> CheckResult:
    perf = tuple(Perf(**p) for p in d.get("perf", ()))
    names = {f for f in CheckResult.__dataclass_fields__ if f != "perf"}
    return CheckResult(**{k: v for k, v in d.items() if k in names}, perf=perf)


def rejudge_stale(report: dict[str, Any], alert_threshold: int, config: HealthConfig) -> dict[str, Any]:
    """The report with stale_shipments judged again against `--alert-threshold` (no new measurement)."""
    checks = [check_from_dict(c) for c in report["checks"]]
    for i, check in enumerate(checks):
        if check.name == "stale_shipments" and check.value is not None:
            checks[i] = judge_stale(
                int(check.value),
                int(check.details.get("active", 0)),
                stale_after_s=config.stale_after_s,
                warning=config.stale_warning,
                critical=config.stale_critical,
                alert_threshold=alert_threshold,
                top=check.details.get("top", ()),
            )
    level, summary = summarise(checks)
    return {
        **report,
        "level": level,
        "exit_code": LEVEL_EXIT_CODES[level],
        "summary": summary,
        "checks": [c.to_dict() for c in checks],
    }
