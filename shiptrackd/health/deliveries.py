"""
The `deliveries` health check's rule (issue 11), pure: outbox figures, endpoint states and `now` in.

Critical when a webhook went dead recently or the dispatcher disabled an endpoint (410, or failing
past disable_after): that is how a failing receiver reaches people, through the alert pipeline.
Warning when the oldest undelivered webhook of a working endpoint is older than the threshold.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from ..wire.names import CRITICAL, OK, WARNING
from .rules import CheckResult, Perf, span

if TYPE_CHECKING:  # the row type only: the rule stays pure
    from ..store.rows import EndpointFigures

NAME = "deliveries"


def judge_deliveries(
    figures: Mapping[str, EndpointFigures],
    disabled: Mapping[str, str],
    endpoints: Sequence[str],
    *,
    now: datetime,
    age_warning_s: float,
    dead_window_s: float,
) -> CheckResult:
    """*figures*: per endpoint (undelivered, oldest_undelivered_at, dead_recent); *disabled*: name -> reason."""
    oldest_s, oldest_name = 0.0, ""
    undelivered = 0
    for name in endpoints:
        row = figures.get(name)
        if row is None:
            continue
        undelivered += row.undelivered
        at = row.oldest_undelivered_at
        if at is None or name in disabled:
            continue
        age = (now - at).total_seconds()
        if age > oldest_s:
            oldest_s, oldest_name = age, name
    dead = {name: row.dead_recent for name, row in figures.items() if row.dead_recent}
    perf = (
        Perf("deliveries_oldest", round(oldest_s, 3), "s", f"{age_warning_s:g}"),
        Perf("deliveries_undelivered", undelivered),
        Perf("deliveries_dead", sum(dead.values())),
    )
    details = {
        "undelivered": undelivered,
        "dead_recent": dead,
        "disabled": dict(disabled),
        "oldest_endpoint": oldest_name,
    }

    def result(level: str, message: str) -> CheckResult:
        return CheckResult(NAME, level, message, round(oldest_s, 3), "s", age_warning_s, None, False, perf, details)

    if not endpoints and not figures:
        return result(OK, "no outbound endpoints configured")
    problems = [f"endpoint {name} disabled: {reason}" for name, reason in sorted(disabled.items())]
    if dead:
        which = ", ".join(f"{name} {n}" for name, n in sorted(dead.items()))
        problems.append(f"{sum(dead.values())} webhook(s) went dead in the last {span(dead_window_s)} ({which})")
    if problems:
        return result(CRITICAL, "; ".join(problems))
    if oldest_s > age_warning_s:
        return result(
            WARNING,
            f"the oldest undelivered webhook ({oldest_name}) is {span(oldest_s)} old, "
            f"above {span(age_warning_s)}; {undelivered} undelivered",
        )
    if undelivered:
        return result(OK, f"{undelivered} undelivered, the oldest {span(oldest_s)} old")
    return result(OK, f"every webhook delivered ({len(endpoints)} endpoint(s))")
