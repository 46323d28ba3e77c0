"""
`shiptrackctl sync`: start a run, follow it on the event stream to its end, and summarise it.

The daemon runs one sync at a time: a trigger joins the run in progress when that run covers
it; otherwise (`--shipments`, or `--force` during a regular run) it answers 409, so we wait
for the run in progress and retry once.
Waiting never polls in a loop: it follows `/v1/events` for the run's `sync.finished`.
"""

from __future__ import annotations

import argparse
from contextlib import aclosing

from ..wire.names import (
    EXIT_FAILURE,
    EXIT_OK,
    EXIT_TEMPFAIL,
)
from .argtypes import id_list, parse_duration
from .render import Column, Output, ProgressLine, human_duration, outcome_style
from .runner import CtlError, command, output
from .status import stats

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from collections.abc import Callable

    from ..api.client import ApiClient
    from ..wire import answers as wire
    from ..wire.events import FinishedRun, SyncProgressEvent
    from .runner import Subparsers

# The event stream sends a heartbeat line this often when idle. The first line of each
# subscription proves it is live; a run that finished before that is caught by one GET.
FOLLOW_HEARTBEAT_S = 0.2
FAILED_OUTCOMES = ("failed", "aborted", "interrupted")


def register(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    """Add sync to shiptrackctl's command tree."""
    text = "start a sync and follow it to the end (only due shipments unless --force/--shipments)"
    p = sub.add_parser("sync", parents=[common], help=text, description=text)
    p.add_argument("--force", action="store_true", help="sync every active shipment, due or not")
    p.add_argument("--shipments", metavar="ID,ID", type=id_list, help="sync just these shipment ids")
    p.add_argument("--dry-run", action="store_true", help="list what would be synced (with --verbose: and why)")
    p.add_argument("--stats", action="store_true", help="show sync statistics instead (same as `stats`)")
    p.add_argument("--no-wait", action="store_true", help="print the run id and return at once")
    p.add_argument("--wait", action="store_true", help=argparse.SUPPRESS)  # the default; accepted for scripts
    p.add_argument(
        "--timeout",
        metavar="DURATION",
        type=parse_duration,
        help="stop waiting after this long (e.g. 90s, 5m, 1h 30m) and exit 75; the run goes on in the daemon",
    )
    p.add_argument("--strict", action="store_true", help="exit 1 on a partial run too (some shipments failed)")
    p.set_defaults(handler=command(sync))


async def sync(client: ApiClient, args: argparse.Namespace) -> int:
    import anyio
    import msgspec

    if args.stats:
        return await stats(client, args)
    out = output(args)
    if args.dry_run:
        return await dry_run(client, args)
    started: wire.SyncStarted | None = None
    run: wire.RunDetail | FinishedRun | None = None
    with anyio.move_on_after(args.timeout) as scope:
        started = await _start(client, args, out)
        if args.no_wait:
            out.show(started, render_started)
            return EXIT_OK
        if started.joined:
            out.say(f"joined run {started.run_id} already in progress")
        progress = ProgressLine(out)
        try:
            run = await follow_run(client, started.run_id, on_progress=lambda e: _draw(progress, e))
        finally:
            progress.clear()
    if scope.cancelled_caught or run is None:
        what = f"run {started.run_id}" if started else "the sync request"
        raise CtlError(
            f"stopped waiting after {human_duration(args.timeout)}; {what} goes on in the daemon"
            f" (follow it with `shiptrackctl status` or `shiptrackctl runs`)",
            code="wait_timeout",
            exit_code=EXIT_TEMPFAIL,
        )
    assert started is not None
    finished = run
    out.show({**msgspec.structs.asdict(started), "run": finished}, lambda out, doc: render_run(out, finished))
    return exit_code(run, requested=args.shipments, strict=args.strict)


async def _start(client: ApiClient, args: argparse.Namespace, out: Output) -> wire.SyncStarted:
    """POST /v1/sync; on a 409 (a run in progress that does not cover ours), wait for it and retry once."""
    from ..api.client import ApiError

    try:
        return await client.sync(force=args.force, shipments=args.shipments)
    except ApiError as exc:
        if exc.http_status != 409:
            raise
    current = (await client.status()).sync
    if current:
        out.note(f"run {current.run_id} is in progress; waiting for it to finish before starting this sync")
        await follow_run(client, current.run_id)
    return await client.sync(force=args.force, shipments=args.shipments)  # a second 409 is reported as is


async def follow_run(
    client: ApiClient, run_id: int, *, on_progress: Callable[[SyncProgressEvent], None] | None = None
) -> wire.RunDetail | FinishedRun:
    """
    Wait for run *run_id* to finish and return its record.

    1. Subscribe to the event stream (resuming after the last event seen, on a reconnect).
    2. On the subscription's first line, GET the run once: it may have finished before
       the subscription was live, and then no `sync.finished` would ever arrive.
    3. Pass this run's `sync.progress` events to *on_progress*; return on its `sync.finished`.
    4. If the stream ends (the daemon cut off a slow reader), check the run and resubscribe.
    """
    from ..wire.events import Gap, Stamped, SyncFinished, SyncProgressEvent

    since: int | None = None
    while True:
        checked = False
        stream = client.events(since=since, heartbeat_s=FOLLOW_HEARTBEAT_S)
        async with aclosing(stream) as events:
            async for event in events:
                if isinstance(event, Stamped) and not isinstance(event, Gap):  # a heartbeat only repeats a seq
                    since = event.seq
                if isinstance(event, SyncFinished) and event.run.id == run_id:
                    return event.run
                if isinstance(event, SyncProgressEvent) and event.run_id == run_id and on_progress is not None:
                    on_progress(event)
                if not checked:
                    checked = True
                    run = await client.run(run_id)
                    if run.outcome != "running":
                        return run
        run = await client.run(run_id)
        if run.outcome != "running":
            return run


def exit_code(run: wire.RunDetail | FinishedRun, *, requested: list[str] | None, strict: bool) -> int:
    """0 for ok (and partial unless --strict), 1 for failed/aborted/interrupted or when no named id exists."""
    if run.outcome in FAILED_OUTCOMES:
        return EXIT_FAILURE
    unknown = len(requested) - (run.selected or 0) if requested else 0
    if requested and unknown >= len(requested):
        return EXIT_FAILURE  # none of the named shipments exists: nothing was synced
    if strict and (run.outcome == "partial" or unknown > 0):
        return EXIT_FAILURE
    return EXIT_OK


def render_run(out: Output, run: wire.RunDetail | FinishedRun) -> None:
    outcome = run.outcome
    took = ""
    if run.started_at and run.finished_at:
        took = f" in {human_duration((run.finished_at - run.started_at).total_seconds())}"
    out.line(f"run {run.id} ({run.trigger}) {out.paint(outcome, outcome_style(outcome))}{took}")
    counts = {
        "selected": run.selected,
        "updated": run.updated,
        "unchanged": run.unchanged,
        "failed": run.failed,
        "skipped": run.skipped,
    }
    out.line("  " + "  ".join(f"{name} {n or 0}" for name, n in counts.items()))
    calls = {"api calls": run.api_calls, "retries": run.retries, "rate-limited": run.rate_limited}
    out.line("  " + "  ".join(f"{label} {n or 0}" for label, n in calls.items()))
    if run.stop_reason:
        out.line(f"  {run.stop_reason}")
    if run.failed:
        out.note(f"{run.failed} shipment(s) failed; `shiptrackctl stats` shows errors by kind", "yellow")


def render_started(out: Output, started: wire.SyncStarted) -> None:
    """`sync --no-wait`: the run id, started or joined."""
    if started.joined:
        out.line(f"joined run {started.run_id} already in progress")
    else:
        out.line(f"started run {started.run_id} ({started.trigger})")


def _draw(progress: ProgressLine, event: SyncProgressEvent) -> None:
    progress.draw(
        event.done,
        max(event.planned, event.selected),
        f"run {event.run_id}: {event.updated} updated, {event.failed} failed",
    )


async def dry_run(client: ApiClient, args: argparse.Namespace) -> int:
    """`sync --dry-run`: what a sync would select, changing nothing."""
    plan = await client.sync_plan(force=args.force, shipments=args.shipments)
    output(args).show(plan, render_plan)
    return EXIT_OK


def render_plan(out: Output, plan: wire.SyncPlan) -> None:
    """The dry run's count, and with --verbose each shipment and why."""
    listed, total = plan.shipments, plan.would_sync
    out.line(f"would sync {total} shipment(s) ({plan.trigger}); dry run: nothing was changed")
    if out.verbose and listed:
        columns = [Column("ID"), Column("CARRIER"), Column("TRACKING", 28), Column("STATUS"), Column("WHY", 70)]
        rows = [[s.id, s.carrier_code, s.tracking_number, s.status_code or "-", s.why] for s in listed]
        out.table(columns, rows)
        if total > len(listed):
            out.note(f"(the first {len(listed)} of {total} shown)")
    elif listed and not out.verbose:
        out.note("--verbose lists each shipment and why")
    if plan.unknown_ids:
        out.note(f"unknown ids: {', '.join(plan.unknown_ids)}", "yellow")
