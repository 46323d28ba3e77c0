"""
`shiptrackctl status/stats/runs/why/loops/reload`: the daemon's state, figures and loops.

Split out of ctl.py, which keeps the parser and the error-to-exit-code plumbing and must stay
import-light for `--help`; ctl.py's handlers import this module only when one of these
commands runs, so it imports the API client and the renderers at the top.
"""

from __future__ import annotations

import argparse
from typing import Any

from .. import __version__
from ..api.client import ApiClient, ApiError
from ..models import STATUS_NAMES
from .main import EXIT_OK, CtlError, output
from .render import (
    Column,
    Output,
    human_bytes,
    human_duration,
    human_seconds,
    inline_counts,
    outcome_style,
    parse_time,
    rel_next,
    rel_time,
    word_style,
)


async def _status(client: ApiClient, args: argparse.Namespace) -> int:
    out = output(args)
    out.show(await client.status(), render_status)
    return EXIT_OK


def render_status(out: Output, doc: dict[str, Any]) -> None:
    """The human `status` view: a header, the store, the loops table, the running sync, notes."""
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
    paused_until = doc.get("rate_limit_paused_until")
    if paused_until:
        pairs.append(("rate limit", f"paused by the API's Retry-After until {paused_until} ({rel_time(paused_until)})"))
    out.kv(pairs)
    out.line()
    render_loops(out, doc.get("loops") or [])
    sync = doc.get("sync")
    if sync:
        out.line()
        out.line(f"{out.paint('sync running', 'cyan')}: {describe_progress(sync)}")
    for note in doc.get("notes") or []:
        out.line(out.paint(f"note: {note}", "dim"))


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


async def _stats(client: ApiClient, args: argparse.Namespace) -> int:
    out = output(args)
    doc = await client.stats()
    if out.json:
        out.emit(doc)
        return EXIT_OK
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
                f"p50 {human_seconds(api.get('p50_s'))}, p95 {human_seconds(api.get('p95_s'))} "
                f"over {api.get('requests', 0)} requests since start",
            ),
            ("forecast", forecast),
            (
                "last good run",
                f"#{last['id']} {last.get('outcome')} {rel_time(last.get('finished_at'))}" if last else "none yet",
            ),
        ]
    )
    return EXIT_OK


async def _runs(client: ApiClient, args: argparse.Namespace) -> int:
    out = output(args)
    runs = await client.runs(args.limit)
    if out.json:
        out.emit(runs)
        return EXIT_OK
    if not runs:
        out.note("no sync runs yet")
        return EXIT_OK
    n = [Column(h, align=">") for h in ("SEL", "UPD", "SAME", "FAIL", "SKIP", "CALLS")]
    columns = [Column("RUN", align=">"), Column("TRIGGER"), Column("STARTED"), Column("TOOK", align=">")]
    columns += [Column("OUTCOME", style=outcome_style), *n, Column("STOP REASON", 50)]
    rows = []
    for r in runs:
        started, finished = parse_time(r.get("started_at")), parse_time(r.get("finished_at"))
        took = human_duration((finished - started).total_seconds()) if started and finished else "-"
        counts = [r.get(k, 0) for k in ("selected", "updated", "unchanged", "failed", "skipped", "api_calls")]
        rows.append(
            [r["id"], r.get("trigger"), rel_time(started), took, r.get("outcome"), *counts, r.get("stop_reason") or ""]
        )
    out.table(columns, rows)
    return EXIT_OK


async def _why(client: ApiClient, args: argparse.Namespace) -> int:
    out = output(args)
    out.show(await client.why(args.id), render_why)
    return EXIT_OK


def render_why(out: Output, doc: dict[str, Any]) -> None:
    state = doc.get("state", "?")
    when = f" ({rel_time(doc['next_sync_at'])})" if doc.get("next_sync_at") and state == "scheduled" else ""
    out.line(f"{doc.get('id')}: {out.paint(state, word_style(state))}{when}")
    for line in doc.get("explanation") or []:
        out.line(f"  {line}")


async def _loops(client: ApiClient, args: argparse.Namespace) -> int:
    out = output(args)
    action = args.loop_action
    if action == "list":
        out.show(await client.loops(), render_loops)
        return EXIT_OK
    doc = await client.loop_action(args.name, action)
    if out.json:
        out.emit(doc)
    elif action == "trigger" and doc.get("joined"):
        out.line(f"loop {args.name} is already running; the trigger joins that run")
    else:
        done = {"pause": "paused", "resume": "resumed", "trigger": "triggered"}[action]
        out.line(f"{done} loop {args.name}")
    return EXIT_OK


async def _reload(client: ApiClient, args: argparse.Namespace) -> int:
    out = output(args)
    try:
        doc = await client.reload()
    except ApiError as exc:
        if exc.code == "config_invalid":
            raise CtlError(
                f"the new configuration was rejected; the daemon keeps the running one: {exc.message}",
                code=exc.code,
            ) from None
        raise
    if out.json:
        out.emit(doc)
        return EXIT_OK
    changed = ", ".join(doc.get("changed") or []) or "nothing"
    out.line(f"configuration reloaded; changed: {changed}")
    if doc.get("needs_restart"):
        out.note(f"these take effect only after a restart: {', '.join(doc['needs_restart'])}", "yellow")
    return EXIT_OK
