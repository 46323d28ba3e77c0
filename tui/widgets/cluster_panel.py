"""
The dashboard's cluster panel: every daemon sharing the store, as `shiptrackctl status` lists them
(`cluster.members` of GET /v1/status, issue 13): host, pid, version, role, last heartbeat, leases.

Shown only when there is a cluster to see (ConsoleState.cluster_members): a lone daemon on SQLite
is its own one member, and the daemon bar already says everything about it.
"""

from __future__ import annotations

from datetime import datetime

from textual.content import Content

from shiptrackd.wire.answers import ClusterMember

from ..format import duration, fit, number, styled
from ..state import ConsoleState
from .panels import Panel, join_lines, muted


def role_of(member: ClusterMember) -> str:
    """'leader: alerts,force' for a member that leads singletons, 'standby' for one that leads none."""
    return f"leader: {','.join(member.roles)}" if member.roles else "standby"


class ClusterPanel(Panel):
    """One line per live member, this console's daemon marked ●; then how many stopped beating.

    The daemon lists only members whose heartbeat is fresh (cluster/membership.py) and counts the rest.
    """

    def draw(self, state: ConsoleState, now: datetime, width: int) -> Content:
        members = state.cluster_members()
        if not members:
            return muted("no cluster: one daemon on its own store")
        cols = [("", 1), ("MEMBER", 22), ("VERSION", 8), ("HEARTBEAT", 10), ("LEASES", 7)]
        used = sum(w + 1 for _, w in cols)
        role_w = max(width - used, 8)
        lines = [Content.styled(" ".join([*(fit(t, w) for t, w in cols), fit("ROLE", role_w)]), "bold")]
        for m in members:
            lines.append(
                Content.assemble(
                    styled("●", "ok") if m.this else " ",
                    " ",
                    fit(f"{m.host}:{m.pid}", 22),
                    " ",
                    fit(m.version, 8),
                    " ",
                    fit(f"{duration(m.heartbeat_age_s)} ago", 10),
                    " ",
                    fit(number(m.leases), 7),
                    " ",
                    fit(role_of(m), role_w),
                )
            )
        stale = state.status.cluster.stale if state.status and state.status.cluster else 0
        if stale:
            text = f"{stale} member{'s' if stale > 1 else ''} stopped beating (dead or cut off; forgotten after a day)"
            lines.append(styled(text, "warning"))
        return join_lines(lines)
