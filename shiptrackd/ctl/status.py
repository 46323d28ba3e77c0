"""
`shiptrackctl status/stats/runs/why/loops/reload`: the daemon's state, figures and loops.

Loaded while the parser is built (`--help`), so the API client is imported only inside the
commands; the renderers are stdlib only.
"""

from __future__ import annotations

import argparse

from .. import __version__
from ..wire.names import EXIT_OK, STATUS_NAMES
from .argtypes import positive_int
from .render import (
    Column,
    Output,
    human_bytes,
    human_duration,
    inline_counts,
    outcome_style,
    parse_time,
    rel_next,
    rel_time,
    short_time,
    word_style,
)
from .runner import CtlError, command, output

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from typing import Any

    from ..api.client import ApiClient
    from .runner import Subparsers


def register(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    """Add status, stats, runs, why, loops and reload to shiptrackctl's command tree."""

    def add(name: str, help: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, parents=[common], help=help, description=help)

    p = add("status", "daemon state, loops, the running sync, store size")
    p.set_defaults(handler=command(status))

    p = add("stats", "sync statistics: shipments by status and carrier, runs, errors, API figures, forecast")
    p.set_defaults(handler=command(stats))

    p = add("runs", "recent sync runs")
    p.add_argument("--limit", type=positive_int, default=20, metavar="N", help="how many (default 20)")
    p.set_defaults(handler=command(runs))

    p = add("why", "when a shipment will be checked next, and why")
    p.add_argument("id", metavar="ID")
    p.set_defaults(handler=command(why))

    p = add("loops", "list the timer loops, or pause/resume/trigger one")
    actions = p.add_subparsers(dest="loop_action", metavar="ACTION")
    actions.add_parser("list", parents=[common], help="list the loops (the default)")
    for action, text in (
        ("pause", "stop running a loop on its schedule"),
        ("resume", "run a paused loop on its schedule again"),
        ("trigger", "run a loop now"),
    ):
        lp = actions.add_parser(action, parents=[common], help=text, description=text)
        lp.add_argument("name", metavar="NAME", help="sync, force, health, alerts or retention")
    p.set_defaults(handler=command(loops), loop_action="list")

    p = add("reload", "re-read the daemon's configuration; exit 1 (old one kept) if the new one is invalid")
    p.set_defaults(handler=command(reload))


async def status(client: ApiClient, args: argparse.Namespace) -> int:
    out = output(args)
    out.show(await client.status(), render_status)
    return EXIT_OK


def render_status(out: Output, doc: dict[str, Any]) -> None:
    """The human `status` view: a header, the store, the loops table, the running sync."""
    state = doc.get("state", "?")
    version = doc.get("version", "?")
    head = f"shiptrackd {version}" + (f" (shiptrackctl {__version__})" if version != __version__ else "")
    out.line(
        f"{out.paint(head, 'bold')}  {out.paint(state, word_style(state))}"
        f"  pid {doc.get('pid')}  up {human_duration(float(doc.get('uptime_s') or 0))}"
    )
    store = doc.get("store") or {}
    provider = doc.get("provider") or {}
    pairs = [
        ("config", doc.get("config_file") or "(defaults and environment)"),
        ("provider", f"{provider.get('name', '?')}  {provider.get('base_url', '')}".rstrip()),
        (
            "store",
            f"{store.get('path', '?')}  {human_bytes(store.get('size_bytes'))}  "
            f"{store.get('shipments', 0)} shipments, {store.get('active', 0)} active,"
            f" {store.get('due_now', 0)} due now",
        ),
    ]
    tables = store.get("tables")
    if tables:  # measured by the retention loop; absent until its first pass
        history = ", ".join(
            f"{t['rows']} {name.replace('_', ' ')} ({human_bytes(t['bytes'])})" for name, t in tables.items()
        )
        free, measured = human_bytes(store.get("free_bytes")), rel_time(store.get("measured_at"))
        pairs.append(("history", f"{history}; {free} free in the file (measured {measured})"))
    paused_until = doc.get("rate_limit_paused_until")
    if paused_until:
        pairs.append(
            (
                "rate limit",
                f"paused by the API's Retry-After until {short_time(paused_until)} ({rel_time(paused_until)})",
            )
        )
    heartbeat = doc.get("heartbeat")
    if heartbeat:  # the dead man's switch; its URLs arrive masked
        pairs.append(("heartbeat", describe_heartbeat(heartbeat)))
    out.kv(pairs)
    out.line()
    render_loops(out, doc.get("loops") or [])
    sync = doc.get("sync")
    if sync:
        out.line()
        out.line(f"{out.paint('sync running', 'cyan')}: {describe_progress(sync)}")


def describe_heartbeat(heartbeat: dict[str, Any]) -> str:
    """ "https://hc-ping.com/0...d every 1m; last: success ping ok (HTTP 200) 12s ago" """
    every = human_duration(float(heartbeat.get("interval_s") or 0))
    head = f"{heartbeat.get('url', '?')} every {every}"
    last = heartbeat.get("last")
    if not last:
        return f"{head}; no ping yet"
    how = f"ok (HTTP {last.get('status')})" if last.get("ok") else f"failed: {last.get('error')}"
    return f"{head}; last: {last.get('kind')} ping {how} {rel_time(last.get('at'))} (health {last.get('level')})"


def describe_progress(sync: dict[str, Any]) -> str:
    return (
        f"run {sync.get('run_id')} ({sync.get('trigger')}) started {rel_time(sync.get('started_at'))}: "
        f"{sync.get('done', 0)} of {sync.get('selected', 0)} done, {sync.get('updated', 0)} updated, "
        f"{sync.get('unchanged', 0)} unchanged, {sync.get('failed', 0)} failed"
    )


def loop_state(loop: dict[str, Any]) -> str:
    if loop.get("running"):
        return "running, paused" if loop.get("paused") else "running"
    if loop.get("paused"):
        return "paused"
    if loop.get("failures_in_a_row"):
        return f"failing ({loop['failures_in_a_row']}x)"
    return "scheduled"


def render_loops(out: Output, loops: list[dict[str, Any]]) -> None:
    columns = [
        Column("LOOP"),
        Column("SCHEDULE", 16),
        Column("STATE", style=word_style),
        Column("LAST RUN"),
        Column("NEXT RUN"),
        Column("LAST OUTCOME", 60, style=outcome_style),
    ]
    rows = []
    for loop in loops:
        state = loop_state(loop)
        nxt = "-" if loop.get("paused") or loop.get("running") else rel_next(loop.get("next_run_at"))
        outcome = loop.get("last_error") or loop.get("last_outcome") or "-"
        rows.append([loop.get("name"), loop.get("schedule"), state, rel_time(loop.get("last_run_at")), nxt, outcome])
    out.table(columns, rows)


async def stats(client: ApiClient, args: argparse.Namespace) -> int:
    output(args).show(await client.stats(), render_stats)
    return EXIT_OK


def render_stats(out: Output, doc: dict[str, Any]) -> None:
    """The human `stats` view: one labelled line per figure."""
    s, runs, api, fc = doc.get("shipments", {}), doc.get("runs_24h", {}), doc.get("api", {}), doc.get("forecast", {})
    last = doc.get("last_successful_run")
    limit = fc.get("rate_limit_per_hour")
    forecast = f"{fc.get('calls_per_hour', 0)} API calls/hour at steady state"
    forecast += f" vs a limit of {limit}/hour ({fc.get('utilisation', 0) * 100:.1f}%)" if limit else " (no rate limit)"
    out.kv(
        [
            (
                "shipments",
                f"{s.get('total', 0)} total, {s.get('active', 0)} active, {s.get('due_now', 0)} due now, "
                f"{s.get('overdue', 0)} overdue",
            ),
            ("by status", inline_counts(s.get("by_status") or {}, STATUS_NAMES)),
            ("by carrier", inline_counts(s.get("by_carrier") or {})),
            (
                "runs (24h)",
                f"{runs.get('runs', 0)} runs: {runs.get('selected', 0)} selected, {runs.get('updated', 0)} updated, "
                f"{runs.get('unchanged', 0)} unchanged, {runs.get('failed', 0)} failed",
            ),
            (
                "api (24h)",
                f"{runs.get('api_calls', 0)} calls, {runs.get('retries', 0)} retries, "
                f"{runs.get('rate_limited', 0)} rate-limited (429)",
            ),
            ("errors (24h)", inline_counts(doc.get("errors_24h") or {})),
            (
                "api latency",
                f"p50 {human_duration(api.get('p50_s'))}, p95 {human_duration(api.get('p95_s'))} "
                f"over {api.get('requests', 0)} requests since start",
            ),
            ("forecast", forecast),
            *([("push", push_line(doc["push"]))] if doc.get("push") else []),
            (
                "last good run",
                f"#{last['id']} {last.get('outcome')} {rel_time(last.get('finished_at'))}" if last else "none yet",
            ),
        ]
    )


def push_line(push: dict[str, Any]) -> str:
    """Pushes received, changes they carried, and the polls they save an hour."""
    pushes = sum((push.get("pushes") or {}).values())
    return (
        f"{push.get('subscribed', 0)} subscribed, {pushes} pushes, {push.get('changes_by_push', 0)} changes by push;"
        f" saves {push.get('calls_per_hour_saved', 0)} calls/hour ({push.get('calls_per_hour_polling', 0)} polling"
        f" vs {push.get('calls_per_hour_with_push', 0)} safety polls)"
    )


async def runs(client: ApiClient, args: argparse.Namespace) -> int:
    output(args).show(await client.runs(args.limit), render_runs)
    return EXIT_OK


def render_runs(out: Output, items: list[dict[str, Any]]) -> None:
    """The human `runs` table, newest first as the daemon sends them."""
    if not items:
        out.note("no sync runs yet")
        return
    n = [Column(h, align=">") for h in ("SEL", "UPD", "SAME", "FAIL", "SKIP", "CALLS")]
    columns = [Column("RUN", align=">"), Column("TRIGGER"), Column("STARTED"), Column("TOOK", align=">")]
    columns += [Column("OUTCOME", style=outcome_style), *n, Column("STOP REASON", 50)]
    rows = []
    for r in items:
        started, finished = parse_time(r.get("started_at")), parse_time(r.get("finished_at"))
        took = human_duration((finished - started).total_seconds()) if started and finished else "-"
        counts = [r.get(k, 0) for k in ("selected", "updated", "unchanged", "failed", "skipped", "api_calls")]
        rows.append(
            [r["id"], r.get("trigger"), rel_time(started), took, r.get("outcome"), *counts, r.get("stop_reason") or ""]
        )
    out.table(columns, rows)


async def why(client: ApiClient, args: argparse.Namespace) -> int:
    out = output(args)
    out.show(await client.why(args.id), render_why)
    return EXIT_OK


def render_why(out: Output, doc: dict[str, Any]) -> None:
    state = doc.get("state", "?")
    when = f" ({rel_time(doc['next_sync_at'])})" if doc.get("next_sync_at") and state == "scheduled" else ""
    out.line(f"{doc.get('id')}: {out.paint(state, word_style(state))}{when}")
    for line in doc.get("explanation") or []:
        out.line(f"  {line}")


async def loops(client: ApiClient, args: argparse.Namespace) -> int:
    out = output(args)
    action, name = args.loop_action, getattr(args, "name", "")
    if action == "list":
        out.show(await client.loops(), render_loops)
        return EXIT_OK

    def render(out: Output, doc: dict[str, Any]) -> None:
        if action == "trigger" and doc.get("joined"):
            out.line(f"loop {name} is already running; the trigger joins that run")
        else:
            done = {"pause": "paused", "resume": "resumed", "trigger": "triggered"}[action]
            out.line(f"{done} loop {name}")

    out.show(await client.loop_action(name, action), render)
    return EXIT_OK


async def reload(client: ApiClient, args: argparse.Namespace) -> int:
    from ..api.client import ApiError

    try:
        doc = await client.reload()
    except ApiError as exc:
        if exc.code == "config_invalid":
            raise CtlError(
                f"the new configuration was rejected; the daemon keeps the running one: {exc.message}",
                code=exc.code,
            ) from None
        raise
    output(args).show(doc, render_reload)
    return EXIT_OK


def render_reload(out: Output, doc: dict[str, Any]) -> None:
    """What a reload changed, and what waits for a restart."""
    changed = ", ".join(doc.get("changed") or []) or "nothing"
    out.line(f"configuration reloaded; changed: {changed}")
    if doc.get("needs_restart"):
        out.note(f"these take effect only after a restart: {', '.join(doc['needs_restart'])}", "yellow")
