"""
The `cluster` health check's rule (issue 13 item 5), pure: the members' heartbeats and which
singletons a leader holds in, a CheckResult out. Run only on a PostgreSQL store (several daemons);
on SQLite the one daemon is the cluster and the check is absent.

Critical when a singleton loop (force, health, alerts, retention, heartbeat) has no leader: that
work runs nowhere. Warning when a member's heartbeat is stale (a dead or cut-off daemon, listed
until it is forgotten): the work goes on without it, but someone should know.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

from ..wire.names import CRITICAL, OK, WARNING
from .rules import CheckResult, Perf, span

NAME = "cluster"


def _who(member: Mapping[str, Any]) -> str:
    return f"{member.get('host', '?')}:{member.get('pid', '?')}"


def judge_cluster(
    members: Sequence[Mapping[str, Any]],
    singletons: Sequence[str],
    held: Collection[str],
    *,
    stale_after_s: float,
) -> CheckResult:
    """
    Judge the cluster from what the store says.

    *members*: each with host, pid, heartbeat_age_s and roles (the singletons it says it leads);
    *held*: the singletons whose leader lock some session holds now (the server's word, not a
    member's: a leader whose connection died holds nothing even before its heartbeat goes stale).
    """
    stale = [m for m in members if float(m.get("heartbeat_age_s", 0.0)) > stale_after_s]
    live = [m for m in members if m not in stale]
    unled = [name for name in singletons if name not in held]
    leaders = {role: _who(m) for m in live for role in m.get("roles", ()) if role in held}
    perf = (
        Perf("cluster_members", len(live)),
        Perf("cluster_stale_members", len(stale), "", "0"),
        Perf("cluster_unled_singletons", len(unled), "", "", "0"),
    )
    details = {
        "members": len(live),
        "stale": [
            {"id": m.get("id"), "host": m.get("host"), "pid": m.get("pid"), "heartbeat_age_s": m.get("heartbeat_age_s")}
            for m in stale
        ],
        "unled": unled,
        "leaders": leaders,
    }

    def result(level: str, message: str) -> CheckResult:
        return CheckResult(NAME, level, message, len(unled), "", None, 0, perf=perf, details=details)

    problems = []
    if unled:
        problems.append(f"no leader holds {', '.join(unled)}: that work runs nowhere")
    for m in stale:
        age = float(m.get("heartbeat_age_s", 0.0))
        problems.append(f"member {_who(m)} silent for {span(age)} (stale after {span(stale_after_s)})")
    if problems:
        return result(CRITICAL if unled else WARNING, "; ".join(problems))
    by_leader: dict[str, list[str]] = {}
    for role in singletons:
        by_leader.setdefault(leaders.get(role, "a member not yet beating"), []).append(role)
    led = "; ".join(f"{', '.join(roles)} led by {who}" for who, roles in sorted(by_leader.items()))
    return result(OK, f"{len(live)} member(s) beating" + (f"; {led}" if led else ""))
