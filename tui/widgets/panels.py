"""
The dashboard's panels: each renders its part of the console's state as Content.

A panel never fetches anything: the screen calls `refresh()` when its topic changed,
and Textual redraws only the lines that differ, so streaming updates never flicker.
Widths adapt to the panel's size; colours come from theme variables ($success, ...),
and every level also carries a glyph and a word, so NO_COLOR loses nothing.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.content import Content
from textual.widget import Widget
from textual.widgets import ProgressBar, Static

from shiptrackd.wire.alerting import DeliveryBrief, Notification
from shiptrackd.wire.stats import ProviderFigures

from ..events import event_at, event_type
from ..format import (
    LEVEL_GLYPH,
    ago,
    clock_time,
    countdown,
    describe_event,
    duration,
    fit,
    level_badge,
    level_of,
    ms,
    number,
    outcome_word,
    styled,
)
from ..state import ConsoleState

if TYPE_CHECKING:
    from ..app import ShiptrackApp


class Panel(Widget):
    """A bordered box drawn from the app's state."""

    def __init__(self, title: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.border_title = title

    @property
    def console(self) -> ShiptrackApp:
        return self.app  # type: ignore[return-value]

    def render(self) -> Content:
        app = self.console
        width = max(self.content_size.width, 20)
        content = self.draw(app.state, app.clock(), width)
        # One line per row, never wrapped: a cut line keeps the layout still while data streams in.
        lines = content.split("\n", allow_blank=True)
        return Content("\n").join(line.truncate(width, ellipsis=True) for line in lines)

    def get_content_height(self, container: Any, viewport: Any, width: int) -> int:
        # Lines never wrap (render cuts them), so the height is the line count at any width.
        app = self.console
        return len(self.draw(app.state, app.clock(), max(width, 20)).split("\n", allow_blank=True))

    def draw(self, state: ConsoleState, now: datetime, width: int) -> Content:
        raise NotImplementedError


def join_lines(lines: list[Content]) -> Content:
    return Content("\n").join(lines) if lines else Content("")


def muted(text: str) -> Content:
    return Content.styled(text, "$text-muted")


class DaemonBar(Panel):
    """One line: state, version, uptime, store size."""

    def draw(self, state: ConsoleState, now: datetime, width: int) -> Content:
        s, counts = state.status, state.store_counts()
        if s is None or counts is None:
            return muted(f" connecting to shiptrackd at {self.console.socket_label} …")
        daemon_state = s.state
        if state.connected:
            dot = styled("● ", "ok" if daemon_state == "running" else "warning")
            head = styled(daemon_state, "ok" if daemon_state == "running" else "warning")
        else:
            dot = styled("○ ", "critical")
            head = styled(f"disconnected (last seen {daemon_state})", "critical")
        shipments, active, due = counts
        parts = [
            f"v{s.version}",
            f"up {duration(state.uptime_s(now))}",
            f"{number(shipments)} shipments",
            f"{number(active)} active",
            f"{number(due)} due",
        ]
        if s.rate_limit_paused_until is not None:
            parts.append(f"429 pause until {clock_time(s.rate_limit_paused_until)}")
        optional = [f"pid {s.pid}", f"provider {s.provider.name}"]
        sep = " │ " if width < 100 else "  │  "
        line = Content.assemble(" ", dot, head, sep, sep.join(parts))
        for extra in optional:
            if line.cell_length + len(sep) + len(extra) <= width:
                line = Content.assemble(line, sep, extra)
        return line


class LoopsPanel(Panel):
    """Each loop: schedule, state, countdown to the next run, last run and its outcome."""

    def draw(self, state: ConsoleState, now: datetime, width: int) -> Content:
        if not state.loops:
            return muted("no loops reported yet")
        wide = width >= 90
        cols = [("LOOP", 7), ("SCHEDULE", 16 if wide else 11), ("STATE", 8), ("NEXT", 9), ("LAST RUN", 10)]
        used = sum(w + 1 for _, w in cols)
        cols.append(("OUTCOME", max(width - used, 8)))
        lines = [Content.styled(" ".join(fit(t, w) for t, w in cols), "bold")]
        for name, loop in state.loops.items():
            if loop.paused:
                st, key = "paused", "warning"
            elif loop.running:
                st, key = "running", "running"
            else:
                st, key = "idle", ""
            nxt = "paused" if loop.paused else "running" if loop.running else ""
            nxt = nxt or (countdown(loop.next_run_at, now) if state.connected else "—")
            outcome = loop.last_outcome or "—"
            if loop.failures_in_a_row:
                outcome = f"{loop.failures_in_a_row}× failed: {loop.last_error or outcome}"
            okey = "failed" if loop.failures_in_a_row else outcome_word(outcome)
            lines.append(
                Content.assemble(
                    fit(name, cols[0][1]),
                    " ",
                    fit(loop.schedule, cols[1][1]),
                    " ",
                    styled(fit(st, cols[2][1]), key),
                    " ",
                    fit(nxt, cols[3][1]),
                    " ",
                    fit(ago(loop.last_run_at, now), cols[4][1]),
                    " ",
                    styled(fit(outcome, cols[5][1]), okey if okey in ("failed",) else None),
                )
            )
        return join_lines(lines)


class SyncPanel(Vertical):
    """The running sync with a progress bar, rate and errors; the last run's result when idle."""

    def compose(self) -> ComposeResult:
        yield Static(id="sync-head")
        yield ProgressBar(total=1, show_eta=False, id="sync-bar")
        yield Static(id="sync-detail")

    def on_mount(self) -> None:
        self.border_title = "Sync"
        self.refresh_state()

    def refresh_state(self) -> None:
        app: ShiptrackApp = self.app  # type: ignore[assignment]
        state, now = app.state, app.clock()
        head = self.query_one("#sync-head", Static)
        bar = self.query_one("#sync-bar", ProgressBar)
        detail = self.query_one("#sync-detail", Static)
        sync = state.sync
        if sync is not None:
            done = sync.done
            # planned is known at the start; selected only grows batch by batch (bar would step back)
            selected = max(sync.planned, sync.selected, done)
            rate = f"{state.sync_rate:.1f}/s" if state.sync_rate else "—/s"
            head.update(
                Content.assemble(
                    styled("▶ running", "running"),
                    f"  run #{sync.run_id} · {sync.trigger or '?'} · started {ago(sync.started_at, now)}",
                )
            )
            bar.update(total=max(selected, 1), progress=done)
            failed = sync.failed
            if not selected:
                detail.update(muted("selecting the shipments to sync…"))
                return
            detail.update(
                Content.assemble(
                    f"{number(done)}/{number(selected)} done · {rate} · {number(sync.updated)} updated · ",
                    styled(f"{number(failed)} failed", "failed" if failed else None),
                    f" · {number(sync.retries)} retries · {number(sync.rate_limited)} × 429",
                )
            )
            return
        last = state.runs[0] if state.runs else None
        if last is None:
            head.update(muted("idle · no sync has run yet"))
            bar.update(total=1, progress=0)
            detail.update(muted("press r to sync the due shipments, f to force a full sync"))
            return
        outcome = last.outcome or "?"
        head.update(
            Content.assemble(
                "idle · last run ",
                f"#{last.id} {last.trigger} ",
                styled(outcome, outcome),
                f" {ago(last.finished_at or last.started_at, now)}",
            )
        )
        selected = last.selected
        # An idle bar shows how far the last run got (full when it had nothing to do).
        bar.update(total=max(selected, 1), progress=selected - last.skipped if selected else 1)
        failed = last.failed
        detail.update(
            Content.assemble(
                f"{number(selected)} selected · {number(last.updated)} updated · ",
                f"{number(last.unchanged)} unchanged · ",
                styled(f"{number(failed)} failed", "failed" if failed else None),
                f" · {number(last.api_calls)} calls",
                *([" · ", styled(last.stop_reason, "warning")] if last.stop_reason else list[Content | str]()),
            )
        )


class HealthPanel(Panel):
    """The latest health report, check by check."""

    def draw(self, state: ConsoleState, now: datetime, width: int) -> Content:
        report = state.health
        if report is None:
            return muted("no health report yet · press h to run the checks")
        overall = state.health_level()
        lines = [Content.assemble("overall ", level_badge(overall, 11), muted(f" checked {ago(report.at, now)}"))]
        checks = report.checks
        compact = width < 56  # glyph only: ✔ ▲ ✖ still say it without colour
        badge_w = 2 if compact else 11
        name_w = min(max((len(c.name) for c in checks), default=8), 14 if compact else 18)
        msg_w = max(width - badge_w - name_w - 2, 8)
        for check in checks:
            level = level_of(check.level)
            badge = styled(f"{LEVEL_GLYPH.get(level, '?')} ", level) if compact else level_badge(level, 11)
            lines.append(Content.assemble(badge, fit(check.name, name_w), "  ", fit(check.message, msg_w)))
        if len(lines) == 1:
            lines.append(muted("the report has no checks"))
        return join_lines(lines)


TRIGGER_SHORT = {"schedule": "sched", "manual": "manual", "force": "force", "targeted": "target"}


class RunsPanel(Panel):
    """Recent sync runs, newest first."""

    limit = 8

    def draw(self, state: ConsoleState, now: datetime, width: int) -> Content:
        if not state.runs:
            return muted("no sync runs yet")
        wide = width >= 56
        if wide:
            cols = [("RUN", 5), ("TRIGGER", 9), ("OUTCOME", 11), ("STARTED", 10), ("TOOK", 7)]
        else:
            cols = [("RUN", 4), ("TRIG", 6), ("OUTCOME", 8), ("AGO", 7)]
        used = sum(w + 1 for _, w in cols)
        counts_w = max(width - used, 6)
        head = "SEL/UPD/FAIL" if counts_w >= 12 else "S/U/F"
        lines = [Content.styled(" ".join([*(fit(t, w) for t, w in cols), fit(head, counts_w)]), "bold")]
        for run in state.runs[: self.limit]:
            outcome = run.outcome or "?"
            start, end = run.started_at, run.finished_at
            took = duration((end - start).total_seconds()) if end is not None else "—"
            when = ago(start, now) if wide else duration((now - start).total_seconds())
            counts = f"{run.selected}/{run.updated}/{run.failed}"
            trigger = run.trigger
            cells: list[Content | str] = [
                fit(f"#{run.id}", cols[0][1]),
                " ",
                fit(trigger if wide else TRIGGER_SHORT.get(trigger, trigger), cols[1][1]),
                " ",
                styled(fit(outcome, cols[2][1]), outcome),
                " ",
                fit(when, cols[3][1]),
                " ",
            ]
            if wide:
                cells += [fit(took, 7), " "]
            lines.append(Content.assemble(*cells, fit(counts, counts_w)))
        return join_lines(lines)


class AlertsPanel(Panel):
    """The alert log (GET /v1/alerts' notifications): level, the checks it is about, delivery, when."""

    limit = 6

    def draw(self, state: ConsoleState, now: datetime, width: int) -> Content:
        if state.alerts is None:
            return muted("no alert data yet")
        if not state.alerts:
            return muted("no alerts: all quiet")
        lines = []
        compact = width < 56
        badge_w = 2 if compact else 11
        when_w = 10 if width >= 44 else 0
        check_w = max(min(width - badge_w - 10 - 11 - when_w - 3, 20), 8)
        for alert in state.alerts[: self.limit]:
            level = level_of(alert.severity)
            kind = alert.kind
            delivery = delivery_summary(alert.deliveries)
            badge = styled(f"{LEVEL_GLYPH.get(level, '?')} ", level) if compact else level_badge(level, 11)
            cells: list[Content | str] = [
                badge,
                fit(checks_of(alert), check_w),
                " ",
                fit(kind, 9),
                " ",
                styled(fit(delivery, 10), delivery.split(" ")[0]),  # 'failed 1/2'
            ]
            if when_w:
                cells += [" ", fit(ago(alert.created_at, now), when_w)]
            lines.append(Content.assemble(*cells))
        return join_lines(lines)


def checks_of(alert: Notification) -> str:
    """The names of the checks a notification is about ("test" for a test notice)."""
    names = [c.check for c in alert.checks]
    if names:
        return ",".join(names)
    return "test" if alert.kind == "test" else alert.title or "?"


def delivery_summary(deliveries: list[DeliveryBrief]) -> str:
    """'sent 2/2', 'failed 1/2' or 'pending 1/2' from a notification's per-channel deliveries."""
    if not deliveries:
        return "—"
    states = [d.status for d in deliveries]
    sent = states.count("sent")
    for word in ("failed", "sending", "pending"):
        if word in states:
            return f"{word} {len(deliveries) - sent}/{len(deliveries)}"
    return f"sent {sent}/{len(deliveries)}"


class ApiPanel(Panel):
    """The tracking API's figures from /v1/stats: requests, retries, 429s, latency."""

    def draw(self, state: ConsoleState, now: datetime, width: int) -> Content:
        stats = state.stats
        if stats is None:
            return muted("no API figures yet")
        api, runs, forecast = stats.api, stats.runs_24h, stats.forecast
        status_text = " ".join(f"{k}:{v}" for k, v in sorted(api.by_status.items())) or "—"
        lines = [
            Content.assemble(
                f"requests {number(api.requests)} · retries {number(api.retries)} · ",
                styled(f"429s {number(api.rate_limited)}", "warning" if api.rate_limited else None),
            ),
            Content(f"latency p50 {ms(api.p50_s)} · p95 {ms(api.p95_s)}"),
            Content(fit(f"by status {status_text}", width)),
            Content(
                fit(
                    f"24h: {number(runs.runs)} runs · {number(runs.api_calls)} calls · {number(runs.failed)} failed",
                    width,
                )
            ),
        ]
        text = f"forecast {number(forecast.calls_per_hour)}/h"
        if forecast.rate_limit_per_hour:
            used = forecast.utilisation
            text += f" of {number(forecast.rate_limit_per_hour)}/h" + (
                f" ({used * 100:.0f}%)" if used is not None else ""
            )
        lines.append(Content(fit(text, width)))
        if len(stats.providers) > 1:  # several accounts: each one's own figures (issue 12 item 5)
            lines += [account_line(p, now, width) for p in stats.providers]
        return join_lines(lines)


def account_line(p: ProviderFigures, now: datetime, width: int) -> Content:
    """ "intl (17track): 120 req · 3 429s · 1 errors · circuit closed", warning while paused or open."""
    text = f"{p.name} ({p.kind}): {number(p.requests)} req · {number(p.rate_limited)} 429s · {number(p.errors)} errors"
    text += f" · circuit {p.circuit}"
    troubled = p.circuit != "closed" or (p.paused_until is not None and p.paused_until > now) or p.quota_exhausted
    if p.paused_until is not None and p.paused_until > now:
        text += " · paused"
    if p.quota_exhausted:
        text += " · quota exhausted"
    return styled(fit(text, width), "warning" if troubled else None)


class RecentEventsPanel(Panel):
    """The latest events, as many as fit; the full log is on the events screen (3)."""

    def draw(self, state: ConsoleState, now: datetime, width: int) -> Content:
        room = max(self.content_size.height, 1)
        events = list(state.events)[-room:]
        if not events:
            return muted("no events yet: they appear here as the daemon publishes them")
        lines = []
        for event in events:
            lines.append(
                Content.assemble(
                    (f"{clock_time(event_at(event))} ", "$text-muted"),
                    (fit(event_type(event), 24), "bold"),
                    " ",
                    describe_event(event),
                )
            )
        return join_lines(lines)

    def get_content_height(self, container: Any, viewport: Any, width: int) -> int:
        return max(self.content_size.height, 1)
