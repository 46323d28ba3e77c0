"""
The dashboard's webhook panels: pushes in from the provider (GET /v1/webhooks, issue 10) and
deliveries out to the application's endpoints (GET /v1/endpoints, issue 11).

Both come with the console's snapshot (re-read every refresh_s: no event carries them). A level
is worded as the daemon's own health checks word it (`webhooks`, `deliveries`), never guessed.
"""

from __future__ import annotations

from datetime import datetime

from textual.content import Content

from shiptrackd.wire.outbound import EndpointInfo

from ..format import LEVEL_GLYPH, LEVEL_RANK, ago, duration, fit, level_badge, level_of, number, styled
from ..state import ConsoleState
from .panels import Panel, join_lines, muted

# An endpoint's state (wire.outbound.EndpointInfo.state) as a level: a failing endpoint retries by
# itself, a disabled one (410, disable_after) waits for `shiptrackctl endpoints enable`.
ENDPOINT_LEVEL = {"ok": "ok", "failing": "warning", "disabled": "critical", "off": "info"}


def badge(level: str, width: int) -> Content:
    """'✔ ok       ' beside the text; the glyph alone in a narrow panel, as the Health panel does.

    (Below 50, not the Health panel's 56: side by side, these two panels are 55 and 56 wide at 120 columns.)
    """
    if width < 50:
        word = level_of(level)
        return styled(f"{LEVEL_GLYPH.get(word, '?')} ", word)
    return level_badge(level, 11)


class PushPanel(Panel):
    """Push health: silence level, subscriptions, the last push, last hour by outcome, calls saved."""

    def draw(self, state: ConsoleState, now: datetime, width: int) -> Content:
        hooks = state.webhooks
        if hooks is None:
            return muted("no push data yet")
        if not hooks.enabled:
            return join_lines([Content("off: polling only"), muted("set [webhooks] listen to receive pushes")])
        last = f"last push {ago(hooks.last_push_at, now)}" if hooks.last_push_at else "no push yet"
        lines = [
            Content.assemble(
                badge(hooks.silence or "unknown", width), f"{number(hooks.subscribed or 0)} subscribed · {last}"
            )
        ]
        last_hour = hooks.last_hour or {}
        if last_hour:
            by_count = sorted(last_hour.items(), key=lambda item: (-item[1], item[0]))
            counts = " · ".join(f"{number(n)} {outcome}" for outcome, n in by_count)
            lines.append(Content(f"1h: {counts}"))
        else:
            lines.append(muted("1h: no pushes"))
        push = state.stats.push if state.stats is not None else None
        if push is not None:
            saved, changes = number(push.calls_per_hour_saved), number(push.changes_by_push)
            lines.append(Content(f"saves {saved} calls/h · {changes} changes by push"))
        jwks_error = hooks.jwks.last_error if hooks.jwks is not None else None
        if jwks_error:
            lines.append(styled(fit(f"JWKS: {jwks_error}", width), "critical"))
        elif hooks.subscription_failures:
            lines.append(styled(f"{number(hooks.subscription_failures)} subscription failures", "warning"))
        elif not hooks.registered_url and hooks.last_push_at is None:  # (the demo registers in its sandbox)
            lines.append(muted("not registered here: shiptrackctl webhooks setup"))
        return join_lines(lines)


def endpoints_level(endpoints: list[EndpointInfo]) -> str:
    """The worst endpoint's level; a dead letter anywhere is critical, as the `deliveries` check says."""
    levels = [ENDPOINT_LEVEL.get(e.state, "unknown") for e in endpoints]
    if any(e.dead for e in endpoints):
        levels.append("critical")
    return max(levels, key=lambda level: LEVEL_RANK.get(level, 1), default="ok")


def endpoint_summary(endpoints: list[EndpointInfo]) -> str:
    """'2 endpoints · 14 waiting, lag 4m · 2 dead' over every endpoint."""
    waiting = sum(e.undelivered for e in endpoints)
    lag = max((e.lag_s for e in endpoints if e.undelivered), default=0.0)
    text = f"{len(endpoints)} endpoint{'s' if len(endpoints) != 1 else ''} · {number(waiting)} waiting"
    if waiting:
        text += f", lag {duration(lag)}"
    return text + f" · {number(sum(e.dead for e in endpoints))} dead"


class DeliveriesPanel(Panel):
    """Deliveries to the application: a summary line, then each endpoint's state, backlog and last error."""

    limit = 3  # endpoints shown here; the deliveries view (4) has them all

    def draw(self, state: ConsoleState, now: datetime, width: int) -> Content:
        endpoints = state.endpoints
        if endpoints is None:
            return muted("no delivery data yet")
        if not endpoints:
            return join_lines([Content("no [[outbound]] endpoints"), muted("status changes stay in shiptrackd")])
        level = endpoints_level(endpoints)
        lines = [Content.assemble(badge(level, width), endpoint_summary(endpoints))]
        name_w = min(max(len(e.name) for e in endpoints), 14)
        for e in endpoints[: self.limit]:
            if e.undelivered:
                backlog = f"{number(e.undelivered)} waiting {duration(e.lag_s)}"
            else:
                backlog = f"sent {ago(e.last_success_at, now)}" if e.last_success_at else "nothing sent yet"
            why = e.disabled_reason or e.last_error
            cells: list[Content | str] = [
                fit(e.name, name_w),
                " ",
                styled(fit(e.state, 8), ENDPOINT_LEVEL.get(e.state)),
                " ",
                fit(backlog, 16),
            ]
            if why:
                cells += [" ", styled(why, "error")]
            lines.append(Content.assemble(*cells))
        if len(endpoints) > self.limit:
            lines.append(muted(f"+{len(endpoints) - self.limit} more · press 4 for the deliveries view"))
        return join_lines(lines)
