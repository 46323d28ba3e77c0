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

from ..format import (
    LEVEL_GLYPH,
    ago,
    countdown,
    duration,
    fit,
    level_badge,
    level_of,
    ms,
    number,
    outcome_word,
    parse_at,
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


def _rows(lines: list[Content]) -> Content:
    return Content("\n").join(lines) if lines else Content("")


def _muted(text: str) -> Content:
    return Content.styled(text, "$text-muted")


class DaemonBar(Panel):
    """One line: state, version, uptime, store size."""

    def draw(self, state: ConsoleState, now: datetime, width: int) -> Content:
        s = state.status
        if not s:
            return _muted(f" connecting to shiptrackd at {self.console.socket_label} …")
        daemon_state = str(s.get("state", "?"))
        if state.connected:
            dot = styled("● ", "ok" if daemon_state == "running" else "warning")
            head = styled(daemon_state, "ok" if daemon_state == "running" else "warning")
        else:
            dot = styled("○ ", "critical")
            head = styled(f"disconnected (last seen {daemon_state})", "critical")
        store = s.get("store") or {}
        parts = [
            f"v{s.get('version', '?')}",
            f"up {duration(state.uptime_s(now))}",
            f"{number(store.get('shipments'))} shipments",
            f"{number(store.get('active'))} active",
            f"{number(store.get('due_now'))} due",
        ]
        paused = s.get("rate_limit_paused_until")
        if paused:
            parts.append(f"429 pause until {str(paused)[11:19]}")
        optional = [f"pid {s.get('pid', '?')}"]
        provider = s.get("provider") or {}
        if provider.get("name"):
            optional.append(f"provider {provider['name']}")
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
            return _muted("no loops reported yet")
        wide = width >= 90
        cols = [("LOOP", 7), ("SCHEDULE", 16 if wide else 11), ("STATE", 8), ("NEXT", 9), ("LAST RUN", 10)]
        used = sum(w + 1 for _, w in cols)
        cols.append(("OUTCOME", max(width - used, 8)))
        lines = [Content.styled(" ".join(fit(t, w) for t, w in cols), "bold")]
        for name, loop in state.loops.items():
            if loop.get("paused"):
                st, key = "paused", "warning"
            elif loop.get("running"):
                st, key = "running", "running"
            else:
                st, key = "idle", ""
            nxt = "paused" if loop.get("paused") else "running" if loop.get("running") else ""
            nxt = nxt or (countdown(loop.get("next_run_at"), now) if state.connected else "—")
            outcome = str(loop.get("last_outcome") or "—")
            if loop.get("failures_in_a_row"):
                outcome = f"{loop['failures_in_a_row']}× failed: {loop.get('last_error') or outcome}"
            okey = "failed" if loop.get("failures_in_a_row") else outcome_word(outcome)
            lines.append(
                Content.assemble(
                    fit(name, cols[0][1]),
                    " ",
                    fit(loop.get("schedule"), cols[1][1]),
                    " ",
                    styled(fit(st, cols[2][1]), key),
                    " ",
                    fit(nxt, cols[3][1]),
                    " ",
                    fit(ago(loop.get("last_run_at"), now), cols[4][1]),
                    " ",
                    styled(fit(outcome, cols[5][1]), okey if okey in ("failed",) else None),
                )
            )
        return _rows(lines)


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
        if sync:
            done = int(sync.get("done") or 0)
            # planned is known at the start; selected only grows batch by batch (bar would step back)
            selected = max(int(sync.get("planned") or 0), int(sync.get("selected") or 0), done)
            rate = f"{state.sync_rate:.1f}/s" if state.sync_rate else "—/s"
            head.update(
                Content.assemble(
                    styled("▶ running", "running"),
                    f"  run #{sync.get('run_id')} · {sync.get('trigger') or '?'} · started"
                    f" {ago(sync.get('started_at'), now)}",
                )
            )
            bar.update(total=max(selected, 1), progress=done)
            failed = int(sync.get("failed") or 0)
            if not selected:
                detail.update(_muted("selecting the shipments to sync…"))
                return
            detail.update(
                Content.assemble(
                    f"{number(done)}/{number(selected)} done · {rate} · {number(sync.get('updated') or 0)} updated · ",
                    styled(f"{number(failed)} failed", "failed" if failed else None),
                    f" · {number(sync.get('retries') or 0)} retries · {number(sync.get('rate_limited') or 0)} × 429",
                )
            )
            return
        last = state.runs[0] if state.runs else None
        if last is None:
            head.update(_muted("idle · no sync has run yet"))
            bar.update(total=1, progress=0)
            detail.update(_muted("press r to sync the due shipments, f to force a full sync"))
            return
        outcome = str(last.get("outcome") or "?")
        head.update(
            Content.assemble(
                "idle · last run ",
                f"#{last.get('id')} {last.get('trigger', '')} ",
                styled(outcome, outcome),
                f" {ago(last.get('finished_at') or last.get('started_at'), now)}",
            )
        )
        selected = int(last.get("selected") or 0)
        # An idle bar shows how far the last run got (full when it had nothing to do).
        bar.update(total=max(selected, 1), progress=selected - int(last.get("skipped") or 0) if selected else 1)
        failed = int(last.get("failed") or 0)
        detail.update(
            Content.assemble(
                f"{number(selected)} selected · {number(last.get('updated'))} updated · ",
                f"{number(last.get('unchanged'))} unchanged · ",
                styled(f"{number(failed)} failed", "failed" if failed else None),
                f" · {number(last.get('api_calls'))} calls",
                *(
                    [" · ", styled(str(last["stop_reason"]), "warning")]
                    if last.get("stop_reason")
                    else list[Content | str]()
                ),
            )
        )


class HealthPanel(Panel):
    """The latest health report, check by check."""

    def draw(self, state: ConsoleState, now: datetime, width: int) -> Content:
        report = state.health
        if report is None:
            return _muted("no health report yet · press h to run the checks")
        at = report.get("at")
        overall = state.health_level()
        lines = [
            Content.assemble("overall ", level_badge(overall, 11), _muted(f" checked {ago(at, now)}" if at else ""))
        ]
        checks = state.health_checks()
        compact = width < 56  # glyph only: ✔ ▲ ✖ still say it without colour
        badge_w = 2 if compact else 11
        name_w = min(max((len(c.name) for c in checks), default=8), 14 if compact else 18)
        msg_w = max(width - badge_w - name_w - 2, 8)
        for check in checks:
            badge = (
                styled(f"{LEVEL_GLYPH.get(check.level, '?')} ", check.level)
                if compact
                else level_badge(check.level, 11)
            )
            lines.append(Content.assemble(badge, fit(check.name, name_w), "  ", fit(check.message or "", msg_w)))
        if len(lines) == 1:
            lines.append(_muted("the report has no checks"))
        return _rows(lines)


TRIGGER_SHORT = {"schedule": "sched", "manual": "manual", "force": "force", "targeted": "target"}


class RunsPanel(Panel):
    """Recent sync runs, newest first."""

    limit = 8

    def draw(self, state: ConsoleState, now: datetime, width: int) -> Content:
        if not state.runs:
            return _muted("no sync runs yet")
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
            outcome = str(run.get("outcome") or "?")
            start, end = run.get("started_at"), run.get("finished_at")
            s_at, e_at = parse_at(start), parse_at(end)
            took = duration((e_at - s_at).total_seconds()) if s_at and e_at else "—"
            when = ago(start, now) if wide else duration((now - s_at).total_seconds()) if s_at else "—"
            counts = f"{run.get('selected', 0)}/{run.get('updated', 0)}/{run.get('failed', 0)}"
            trigger = str(run.get("trigger") or "")
            cells: list[Content | str] = [
                fit(f"#{run.get('id')}", cols[0][1]),
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
        return _rows(lines)


class AlertsPanel(Panel):
    """The alert log (GET /v1/alerts' notifications): level, the checks it is about, delivery, when."""

    limit = 6

    def draw(self, state: ConsoleState, now: datetime, width: int) -> Content:
        if state.alerts is None:
            return _muted("no alert data yet")
        if not state.alerts:
            return _muted("no alerts: all quiet")
        lines = []
        compact = width < 56
        badge_w = 2 if compact else 11
        when_w = 10 if width >= 44 else 0
        check_w = max(min(width - badge_w - 10 - 11 - when_w - 3, 20), 8)
        for alert in state.alerts[: self.limit]:
            level = level_of(alert.get("severity"))
            kind = str(alert.get("kind") or "")
            delivery = delivery_summary(alert.get("deliveries") or [])
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
                cells += [" ", fit(ago(alert.get("created_at"), now), when_w)]
            lines.append(Content.assemble(*cells))
        return _rows(lines)


def checks_of(alert: dict[str, Any]) -> str:
    """The names of the checks a notification is about ("test" for a test notice)."""
    names = [str(c.get("check")) for c in alert.get("checks") or [] if isinstance(c, dict)]
    if names:
        return ",".join(names)
    return "test" if alert.get("kind") == "test" else str(alert.get("title") or "?")


def delivery_summary(deliveries: list[dict[str, Any]]) -> str:
    """'sent 2/2', 'failed 1/2' or 'pending 1/2' from a notification's per-channel deliveries."""
    if not deliveries:
        return "—"
    states = [str(d.get("status") or "") for d in deliveries]
    sent = states.count("sent")
    for word in ("failed", "sending", "pending"):
        if word in states:
            return f"{word} {len(deliveries) - sent}/{len(deliveries)}"
    return f"sent {sent}/{len(deliveries)}"


class ApiPanel(Panel):
    """The tracking API's figures from /v1/stats: requests, retries, 429s, latency."""

    def draw(self, state: ConsoleState, now: datetime, width: int) -> Content:
        stats = state.stats
        api = stats.get("api") if isinstance(stats, dict) else None
        if not isinstance(api, dict):
            return _muted("no API figures yet")
        by_status = api.get("by_status") or {}
        status_text = " ".join(f"{k}:{v}" for k, v in sorted(by_status.items())) or "—"
        limited = api.get("rate_limited") or 0
        lines = [
            Content.assemble(
                f"requests {number(api.get('requests'))} · retries {number(api.get('retries'))} · ",
                styled(f"429s {number(limited)}", "warning" if limited else None),
            ),
            Content(f"latency p50 {ms(api.get('p50_s'))} · p95 {ms(api.get('p95_s'))}"),
            Content(fit(f"by status {status_text}", width)),
        ]
        runs = stats.get("runs_24h") or {}
        if runs:
            lines.append(
                Content(
                    fit(
                        f"24h: {number(runs.get('runs'))} runs · {number(runs.get('api_calls'))} calls"
                        f" · {number(runs.get('failed'))} failed",
                        width,
                    )
                )
            )
        forecast = stats.get("forecast") or {}
        if forecast.get("calls_per_hour") is not None:
            limit = forecast.get("rate_limit_per_hour")
            used = forecast.get("utilisation")
            text = f"forecast {number(forecast['calls_per_hour'])}/h"
            if limit:
                text += f" of {number(limit)}/h" + (f" ({used * 100:.0f}%)" if isinstance(used, int | float) else "")
            lines.append(Content(fit(text, width)))
        return _rows(lines)


class RecentEventsPanel(Panel):
    """The latest events, as many as fit; the full log is on the events screen (3)."""

    def draw(self, state: ConsoleState, now: datetime, width: int) -> Content:
        from ..format import clock_time, describe_event

        room = max(self.content_size.height, 1)
        events = list(state.events)[-room:]
        if not events:
            return _muted("no events yet: they appear here as the daemon publishes them")
        lines = []
        for event in events:
            kind = str(event.get("type", "?"))
            lines.append(
                Content.assemble(
                    (f"{clock_time(event.get('at'))} ", "$text-muted"),
                    (fit(kind, 24), "bold"),
                    " ",
                    describe_event(event),
                )
            )
        return _rows(lines)

    def get_content_height(self, container: Any, viewport: Any, width: int) -> int:
        return max(self.content_size.height, 1)
