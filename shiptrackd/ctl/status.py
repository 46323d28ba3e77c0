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
    rel_next,
    rel_time,
    short_time,
    word_style,
)
from .runner import CtlError, command, output

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from ..api.client import ApiClient
    from ..wire import answers as wire
    from ..wire import stats as wire_stats
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


def render_status(out: Output, doc: wire.Status) -> None:
    """The human `status` view: a header, the store, the loops table, the running sync."""
    version = doc.version
    head = f"shiptrackd {version}" + (f" (shiptrackctl {__version__})" if version != __version__ else "")
    out.line(
        f"{out.paint(head, 'bold')}  {out.paint(doc.state, word_style(doc.state))}"
        f"  pid {doc.pid}  up {human_duration(doc.uptime_s)}"
    )
    store, provider = doc.store, doc.provider
    pairs = [
        ("config", doc.config_file or "(defaults and environment)"),
        ("provider", f"{provider.name}  {provider.base_url}".rstrip()),
        *[(f"account {a.name}", account_text(a)) for a in (doc.providers if len(doc.providers) > 1 else [])],
        (
            "store",
            f"{store.path}  {human_bytes(store.size_bytes)}  "
            f"{store.shipments} shipments, {store.active} active, {store.due_now} due now",
        ),
    ]
    if store.tables:  # measured by the retention loop; absent until its first pass
        history = ", ".join(
            f"{t.rows} {name.replace('_', ' ')} ({human_bytes(t.bytes)})" for name, t in store.tables.items()
        )
        free, measured = human_bytes(store.free_bytes), rel_time(store.measured_at)
        pairs.append(("history", f"{history}; {free} free in the file (measured {measured})"))
    paused_until = doc.rate_limit_paused_until
    if paused_until:
        pairs.append(
            (
                "rate limit",
                f"paused by the API's Retry-After until {short_time(paused_until)} ({rel_time(paused_until)})",
            )
        )
    if doc.heartbeat:  # the dead man's switch; its URLs arrive masked
        pairs.append(("heartbeat", describe_heartbeat(doc.heartbeat)))
    out.kv(pairs)
    out.line()
    render_loops(out, doc.loops)
    if doc.cluster and (store.backend != "sqlite" or len(doc.cluster.members) > 1 or doc.cluster.stale):
        out.line()
        render_cluster(out, doc.cluster)
    if doc.sync:
        out.line()
        out.line(f"{out.paint('sync running', 'cyan')}: {describe_progress(doc.sync)}")


def render_cluster(out: Output, cluster: wire.ClusterInfo) -> None:
    """Every live member of a shared store: who it is, what it leads, its claims, its last heartbeat."""
    stale = f", {cluster.stale} stale (heartbeat stopped)" if cluster.stale else ""
    out.line(f"{out.paint('cluster', 'bold')}: {len(cluster.members)} live member(s){stale}")
    columns = [Column("MEMBER"), Column("VERSION"), Column("LEADS", 40), Column("LEASES"), Column("HEARTBEAT")]
    rows = [
        [
            f"{m.host}:{m.pid}" + (" (this)" if m.this else ""),
            m.version,
            ", ".join(m.roles) or "-",
            m.leases,
            f"{human_duration(m.heartbeat_age_s)} ago",
        ]
        for m in cluster.members
    ]
    out.table(columns, rows)


def describe_heartbeat(heartbeat: wire.HeartbeatInfo) -> str:
    """ "https://hc-ping.com/0...d every 1m; last: success ping ok (HTTP 200) 12s ago" """
    head = f"{heartbeat.url} every {human_duration(heartbeat.interval_s)}"
    last = heartbeat.last
    if not last:
        return f"{head}; no ping yet"
    how = f"ok (HTTP {last.status})" if last.ok else f"failed: {last.error}"
    return f"{head}; last: {last.kind} ping {how} {rel_time(last.at)} (health {last.level})"


def describe_progress(sync: wire.SyncProgress) -> str:
    return (
        f"run {sync.run_id} ({sync.trigger}) started {rel_time(sync.started_at)}: "
        f"{sync.done} of {sync.selected} done, {sync.updated} updated, "
        f"{sync.unchanged} unchanged, {sync.failed} failed"
    )


def loop_state(loop: wire.LoopInfo) -> str:
    if loop.running:
        return "running, paused" if loop.paused else "running"
    if loop.paused:
        return "paused"
    if loop.failures_in_a_row:
        return f"failing ({loop.failures_in_a_row}x)"
    return "scheduled"


def render_loops(out: Output, loops: list[wire.LoopInfo]) -> None:
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
        nxt = "-" if loop.paused or loop.running else rel_next(loop.next_run_at)
        outcome = loop.last_error or loop.last_outcome or "-"
        rows.append([loop.name, loop.schedule, loop_state(loop), rel_time(loop.last_run_at), nxt, outcome])
    out.table(columns, rows)


async def stats(client: ApiClient, args: argparse.Namespace) -> int:
    output(args).show(await client.stats(), render_stats)
    return EXIT_OK


def account_text(a: wire.AccountFigures | wire_stats.ProviderFigures) -> str:
    """`aftership: 120 requests, 3 rate-limited (429), 1 errors, circuit closed`: one account's own figures."""
    text = f"{a.kind}: {a.requests} requests, {a.rate_limited} rate-limited (429), {a.errors} errors"
    text += f", circuit {a.circuit}"
    if a.paused_until:
        text += f", paused until {short_time(a.paused_until)}"
    return text


def provider_lines(providers: list[wire_stats.ProviderFigures]) -> list[tuple[str, str]]:
    """A line per provider account with its own figures (several accounts), and a `quota (name)` line
    per account that has a quota: what is left and when it runs out."""
    lines: list[tuple[str, str]] = []
    if len(providers) > 1:
        lines += [(f"account {p.name}", account_text(p)) for p in providers]
    for p in providers:
        q = p.quota
        if q is None:
            continue
        if q.error is not None:
            lines.append((f"quota ({p.name})", f"not read: {q.error}"))
            continue
        text = f"{q.remaining} of {q.total} {q.counts or ''} left".replace("  ", " ")
        if p.quota_exhausted or not q.remaining:
            text += ": EXHAUSTED, new shipments are not registered"
        elif q.runs_out_at is not None:
            text += f"; at {q.per_day}/day it runs out {rel_time(q.runs_out_at)}"
        elif q.per_day == 0:
            text += "; none spent lately"
        else:
            text += "; pace not measured yet"
        lines.append((f"quota ({p.name})", text))
    return lines


def render_stats(out: Output, doc: wire_stats.Stats) -> None:
    """The human `stats` view: one labelled line per figure."""
    s, runs, api, fc = doc.shipments, doc.runs_24h, doc.api, doc.forecast
    last = doc.last_successful_run
    limit = fc.rate_limit_per_hour
    forecast = f"{fc.calls_per_hour} API calls/hour at steady state"
    forecast += f" vs a limit of {limit}/hour ({(fc.utilisation or 0) * 100:.1f}%)" if limit else " (no rate limit)"
    out.kv(
        [
            ("shipments", f"{s.total} total, {s.active} active, {s.due_now} due now, {s.overdue} overdue"),
            ("by status", inline_counts(s.by_status, STATUS_NAMES)),
            ("by carrier", inline_counts(s.by_carrier)),
            (
                "runs (24h)",
                f"{runs.runs} runs: {runs.selected} selected, {runs.updated} updated, "
                f"{runs.unchanged} unchanged, {runs.failed} failed",
            ),
            ("api (24h)", f"{runs.api_calls} calls, {runs.retries} retries, {runs.rate_limited} rate-limited (429)"),
            ("errors (24h)", inline_counts(doc.errors_24h)),
            (
                "api latency",
                f"p50 {human_duration(api.p50_s)}, p95 {human_duration(api.p95_s)} "
                f"over {api.requests} requests since start",
            ),
            ("forecast", forecast),
            *provider_lines(doc.providers),
            *([("push", push_line(doc.push))] if doc.push is not None else []),
            ("last good run", f"#{last.id} {last.outcome} {rel_time(last.finished_at)}" if last else "none yet"),
        ]
    )


def push_line(push: wire_stats.PushStats) -> str:
    """Pushes received, changes they carried, and the polls they save an hour."""
    return (
        f"{push.subscribed} subscribed, {sum(push.pushes.values())} pushes, {push.changes_by_push} changes by push;"
        f" saves {push.calls_per_hour_saved} calls/hour ({push.calls_per_hour_polling} polling"
        f" vs {push.calls_per_hour_with_push} safety polls)"
    )


async def runs(client: ApiClient, args: argparse.Namespace) -> int:
    output(args).show(await client.runs(args.limit), render_runs)
    return EXIT_OK


def render_runs(out: Output, doc: wire.RunList) -> None:
    """The human `runs` table, newest first as the daemon sends them."""
    items = doc.runs
    if not items:
        out.note("no sync runs yet")
        return
    n = [Column(h, align=">") for h in ("SEL", "UPD", "SAME", "FAIL", "SKIP", "CALLS")]
    columns = [Column("RUN", align=">"), Column("TRIGGER"), Column("STARTED"), Column("TOOK", align=">")]
    columns += [Column("OUTCOME", style=outcome_style), *n, Column("STOP REASON", 50)]
    rows = []
    for r in items:
        took = human_duration((r.finished_at - r.started_at).total_seconds()) if r.finished_at else "-"
        counts = [r.selected, r.updated, r.unchanged, r.failed, r.skipped, r.api_calls]
        rows.append([r.id, r.trigger, rel_time(r.started_at), took, r.outcome, *counts, r.stop_reason])
    out.table(columns, rows)


async def why(client: ApiClient, args: argparse.Namespace) -> int:
    out = output(args)
    out.show(await client.why(args.id), render_why)
    return EXIT_OK


def render_why(out: Output, doc: wire.Why) -> None:
    when = f" ({rel_time(doc.next_sync_at)})" if doc.next_sync_at and doc.state == "scheduled" else ""
    out.line(f"{doc.id}: {out.paint(doc.state, word_style(doc.state))}{when}")
    for line in doc.explanation:
        out.line(f"  {line}")


async def loops(client: ApiClient, args: argparse.Namespace) -> int:
    out = output(args)
    action, name = args.loop_action, getattr(args, "name", "")
    if action == "list":
        out.show(await client.loops(), lambda out, doc: render_loops(out, doc.loops))
        return EXIT_OK

    def render(out: Output, doc: wire.LoopInfo) -> None:
        if action == "trigger" and getattr(doc, "joined", False):  # a LoopTriggered
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


def render_reload(out: Output, doc: wire.Reloaded) -> None:
    """What a reload changed, and what waits for a restart."""
    out.line(f"configuration reloaded; changed: {', '.join(doc.changed) or 'nothing'}")
    if doc.needs_restart:
        out.note(f"these take effect only after a restart: {', '.join(doc.needs_restart)}", "yellow")
