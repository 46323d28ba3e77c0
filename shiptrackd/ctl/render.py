"""
How shiptrackctl prints: aligned tables, relative times, colour only on a terminal, and JSON.

Stdlib only and cheap to import, so every command group can import it at its top:
    out = Output.for_args(args)
    out.table([Column("NAME"), Column("OUTCOME", style=outcome_style)], rows)
    out.emit(doc)       # --json: one document on stdout
    out.error(code, message)   # stderr: one line, or {"error": {...}} under --json
"""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime

# Loaded while `shiptrackctl --help` builds the tree (< 0.1 s): no typing, dataclasses or json at
# run time (together ~25 ms here); json is imported when a document is printed.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from typing import Any, TextIO

ELLIPSIS = "…"
DASH = "-"

_ANSI = {"bold": "1", "dim": "2", "red": "31", "green": "32", "yellow": "33", "blue": "34", "cyan": "36"}
# Outcome and state words -> a colour; anything else prints plain.
_WORD_STYLES = {
    "ok": "green",
    "running": "cyan",
    "idle": "green",
    "scheduled": "green",
    "healthy": "green",
    "partial": "yellow",
    "paused": "yellow",
    "joined": "yellow",
    "warning": "yellow",
    "due": "yellow",
    "starting": "yellow",
    "stopping": "yellow",
    "failed": "red",
    "failing": "red",
    "aborted": "red",
    "interrupted": "red",
    "critical": "red",
    "expired": "dim",
    "terminal": "dim",
}


def want_color(isatty: bool, env: Mapping[str, str]) -> bool:
    """Colour only on a terminal, unless NO_COLOR is set to something non-empty or TERM is dumb (no-color.org)."""
    return isatty and not env.get("NO_COLOR") and env.get("TERM", "") != "dumb"


def word_style(text: str) -> str | None:
    """The colour of an outcome or state word: the first word of *text*, e.g. "failed (3)" -> red."""
    first = text.split(" ", 1)[0].split(":", 1)[0].lower()
    return _WORD_STYLES.get(first)


def outcome_style(text: str) -> str | None:
    """The colour of the first outcome word in a text ("run 12 partial: 3 updated, 1 failed" -> yellow)."""
    for word in text.split():
        style = _WORD_STYLES.get(word.strip(",.:;()").lower())
        if style:
            return style
    return None


# --- text helpers -----------------------------------------------------------------------


def truncate(text: str, width: int | None) -> str:
    """*text* cut to *width* characters, the last one an ellipsis when something was cut."""
    if width is None or len(text) <= width:
        return text
    return text[: max(width - 1, 0)] + ELLIPSIS if width > 0 else ""


# Times, durations and sizes are parsed and printed by shiptrackd.units (one grammar with config, the
# daemon's messages and the console); these wrappers only add "-" for none and the relative phrasing.
# units is imported where it is used: its dataclasses import would cost `--help` ~20 ms at the top
# (python -X importtime, this 2-core box under load).


def parse_time(value: str | datetime | None) -> datetime | None:
    """An aware UTC datetime from the API's RFC 3339 text (or a datetime); None for none or unreadable."""
    if value is None or value == "":
        return None
    from ..units import parse_rfc3339

    try:
        return parse_rfc3339(value)
    except ValueError:
        return None


def human_duration(seconds: float | None) -> str:
    """
    A duration in units.py's grammar, its two largest units: 850ms, 4s250ms, 4m12s, 3h12m, 2d3h; "-" for none.

    Milliseconds count only under 10 s (a latency, a short run); longer figures round to the second.
    """
    if seconds is None:
        return DASH
    from ..units import format_duration

    seconds = abs(seconds)
    return format_duration(seconds if seconds < 10 else round(seconds), parts=2)


def rel_time(value: str | datetime | None, now: datetime | None = None) -> str:
    """ "42s ago", "in 4m12s" or "now"; "-" for no time."""
    at = parse_time(value)
    if at is None:
        return DASH
    delta = (at - (now or datetime.now(UTC))).total_seconds()
    if abs(delta) < 1:
        return "now"
    text = human_duration(round(delta))
    return f"in {text}" if delta > 0 else f"{text} ago"


def rel_next(value: str | datetime | None, now: datetime | None = None) -> str:
    """A time something is due: "in 4m", or "due now" once it has passed; "-" for none."""
    at = parse_time(value)
    if at is None:
        return DASH
    return "due now" if at <= (now or datetime.now(UTC)) else rel_time(at, now)


def short_time(value: str | datetime | None) -> str:
    """`2026-01-05T09:00:12Z` (RFC 3339 to the second), for timelines where relative times blur together."""
    at = parse_time(value)
    if at is None:
        return DASH
    from ..units import format_rfc3339

    return format_rfc3339(at.replace(microsecond=0))


def human_bytes(size: float | None) -> str:
    """A size in IEC units, as everywhere (512 B, 8.8 GiB); "-" when unknown."""
    if size is None:
        return DASH
    from ..units import format_size

    return format_size(size)


def inline_counts(counts: Mapping[str, Any], names: Mapping[str, str] | None = None) -> str:
    """`IT 800 · DE 300`, largest first; names add a label (`IT in transit 800`)."""
    if not counts:
        return DASH
    items = sorted(counts.items(), key=lambda kv: (-int(kv[1] or 0), str(kv[0])))
    return " · ".join(f"{k}{' ' + names[k] if names and k in names else ''} {v}" for k, v in items)


# --- tables -----------------------------------------------------------------------------


class Column:
    """One table column: its header, a width cap (cells past it end in …), alignment and an optional colour."""

    __slots__ = ("align", "header", "max_width", "style")

    def __init__(
        self,
        header: str,
        max_width: int | None = None,
        align: str = "<",  # "<" or ">"
        style: Callable[[str], str | None] | None = None,  # cell text -> a colour name, e.g. word_style
    ) -> None:
        self.header = header
        self.max_width = max_width
        self.align = align
        self.style = style


class Table:
    """Aligned columns with a header; widths fixed by the first rows rendered, so pages can stream."""

    def __init__(self, columns: Sequence[Column], *, wide: bool = False, gap: int = 2) -> None:
        self.columns = list(columns)
        self.wide = wide
        self.gap = gap
        self.widths: list[int] | None = None

    def _fit(self, rows: Sequence[Sequence[str]]) -> list[int]:
        widths = []
        for i, col in enumerate(self.columns):
            longest = max([len(col.header), *(len(r[i]) for r in rows)])
            widths.append(longest if self.wide or col.max_width is None else min(longest, max(col.max_width, 1)))
        return widths

    def render(
        self, rows: Sequence[Sequence[Any]], *, paint: Callable[[str, str | None], str], header: bool = True
    ) -> str:
        cells = [["" if c is None else str(c) for c in row] for row in rows]
        if self.widths is None:
            self.widths = self._fit(cells)
        lines = []
        if header:
            lines.append(self._line([c.header for c in self.columns], paint, head=True))
        lines.extend(self._line(row, paint) for row in cells)
        return "\n".join(lines)

    def _line(self, row: Sequence[str], paint: Callable[[str, str | None], str], head: bool = False) -> str:
        assert self.widths is not None
        out = []
        last = len(self.columns) - 1
        for i, (col, width) in enumerate(zip(self.columns, self.widths, strict=True)):
            text = row[i] if head or self.wide else truncate(row[i], width)
            padded = text if i == last and col.align == "<" else f"{text:{col.align}{width}}"
            style = "bold" if head else (col.style(text) if col.style else None)
            out.append(paint(padded, style) if style else padded)
        return (" " * self.gap).join(out).rstrip()


# --- the output object ------------------------------------------------------------------


class Output:
    """Where and how a command prints: JSON or human, colour or not, stdout for data, stderr for the rest."""

    def __init__(
        self,
        *,
        json_mode: bool = False,
        wide: bool = False,
        verbose: bool = False,
        stdout: TextIO | None = None,
        stderr: TextIO | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.json = json_mode
        self.wide = wide
        self.verbose = verbose
        self.stdout = stdout or sys.stdout
        self.stderr = stderr or sys.stderr
        env = os.environ if env is None else env
        self.color = not json_mode and want_color(_isatty(self.stdout), env)
        self.err_color = want_color(_isatty(self.stderr), env)
        self.progress = _isatty(self.stderr)  # progress bars only on a terminal, never in pipes

    @classmethod
    def for_args(cls, args: Any) -> Output:
        return cls(
            json_mode=bool(getattr(args, "json", False)),
            wide=bool(getattr(args, "wide", False)),
            verbose=bool(getattr(args, "verbose", False)),
        )

    def paint(self, text: str, style: str | None) -> str:
        """*text* in colour *style* ("red", "bold", ...) when stdout is a colour terminal."""
        return _paint(text, style) if self.color and style else text

    def line(self, text: str = "") -> None:
        """One line of human output on stdout (never call it in JSON mode)."""
        print(text, file=self.stdout)

    def say(self, text: str) -> None:
        """A line for a person on stdout; nothing under --json, whose stdout is the one JSON document."""
        if not self.json:
            self.line(text)

    def note(self, text: str, style: str | None = None) -> None:
        """A message for the operator on stderr: keeps stdout clean for pipes and --json."""
        self.stdout.flush()  # so a note lands after the output it follows when both reach one terminal
        print(_paint(text, style) if self.err_color and style else text, file=self.stderr)

    def show(self, doc: Any, render: Callable[[Output, Any], None]) -> None:
        """The command's document: as JSON under --json, else drawn by *render* for a person."""
        if self.json:
            self.emit(doc)
        else:
            render(self, doc)

    def emit(self, doc: Any) -> None:
        """The one JSON document of a --json command, on stdout."""
        import json

        if "msgspec" in sys.modules:  # a wire type from the client: as the JSON the daemon sent
            doc = sys.modules["msgspec"].to_builtins(doc)
        json.dump(doc, self.stdout, indent=2, ensure_ascii=False, default=str)
        self.stdout.write("\n")

    def error(self, code: str, message: str, *, show_code: bool = False, **extra: Any) -> None:
        """
        An error: one line on stderr, for a person; under --json also the document on stdout,
        `{"error": {"code", "message"}}` (the API's error shape), for the program reading it.
        """
        if self.json:
            import json

            print(json.dumps({"error": {"code": code, "message": message, **extra}}), file=self.stdout)
        suffix = f" [{code}]" if show_code else ""
        self.note(f"shiptrackctl: {message}{suffix}", "red")

    def table(self, columns: Sequence[Column], rows: Sequence[Sequence[Any]]) -> None:
        table = Table(columns, wide=self.wide)
        if rows:
            self.line(table.render(rows, paint=self.paint))

    def kv(self, pairs: Sequence[tuple[str, Any]]) -> None:
        """`label   value` lines, labels aligned."""
        width = max((len(k) for k, _ in pairs), default=0)
        for key, value in pairs:
            self.line(f"{self.paint(f'{key:<{width}}', 'dim')}  {value}")


class ProgressLine:
    """A one-line `\\r` progress bar on stderr, drawn only when stderr is a terminal."""

    WIDTH = 24

    def __init__(self, out: Output) -> None:
        self.out = out
        self.enabled = out.progress
        self._last = 0

    def draw(self, done: int, total: int | None, detail: str = "") -> None:
        """Redraw the line: a bar for done/total, or just the detail when the total is unknown (None)."""
        if not self.enabled:
            return
        if total is None:
            text = detail
        else:
            filled = int(self.WIDTH * min(done / total, 1.0)) if total else 0
            text = f"[{'#' * filled}{'.' * (self.WIDTH - filled)}] {done}/{total} {detail}".rstrip()
        pad = " " * max(self._last - len(text), 0)
        self.out.stderr.write(f"\r{text}{pad}")
        self.out.stderr.flush()
        self._last = len(text)

    def clear(self) -> None:
        if self.enabled and self._last:
            self.out.stderr.write("\r" + " " * self._last + "\r")
            self.out.stderr.flush()
            self._last = 0


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _paint(text: str, style: str | None) -> str:
    code = _ANSI.get(style or "")
    return f"\x1b[{code}m{text}\x1b[0m" if code else text
