"""
`shiptrackctl webhooks setup|status`: the push channel (issue 10).

`setup` registers (or, on ShipEngine's 409, finds and updates) the account's `track` webhook at
`<[webhooks] public_url>/hooks/<provider>`; `status` shows the registered URL, the subscribed
count, pushes in the last hour by outcome, the last push and whether the channel is silent.
"""

from __future__ import annotations

import argparse

from ..wire.names import EXIT_FAILURE, EXIT_OK
from .runner import command, output

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from ..api.client import ApiClient
    from ..wire.push import WebhookSetup, WebhooksStatus
    from .render import Output
    from .runner import Subparsers


def register(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    """Add webhooks (setup, status) to shiptrackctl's command tree."""
    p = sub.add_parser("webhooks", parents=[common], help="tracking pushes in: register the webhook, see its health")
    actions = p.add_subparsers(dest="webhooks_action", metavar="ACTION", required=True, parser_class=type(p))
    text = "register or update the provider's track webhook at <[webhooks] public_url>/hooks/<provider>"
    sp = actions.add_parser("setup", parents=[common], help=text, description=text)
    sp.set_defaults(handler=command(setup))
    text = "registered URL, subscriptions, pushes in the last hour by outcome, last push, silence"
    sp = actions.add_parser("status", parents=[common], help=text, description=text)
    sp.set_defaults(handler=command(status))


async def setup(client: ApiClient, args: argparse.Namespace) -> int:
    doc = await client.webhooks_setup()
    output(args).show(doc, render_setup)
    return EXIT_OK


async def status(client: ApiClient, args: argparse.Namespace) -> int:
    doc = await client.webhooks()
    output(args).show(doc, render_status)
    return EXIT_OK if doc.enabled else EXIT_FAILURE


def render_setup(out: Output, doc: WebhookSetup) -> None:
    """One line: what was done to which webhook."""
    previous = f" (was {doc.previous_url})" if doc.previous_url else ""
    out.line(f"{doc.provider} track webhook {doc.action}: {doc.url}{previous} [{doc.webhook_id}]")


def render_status(out: Output, doc: WebhooksStatus) -> None:
    """The push channel at a glance; 'off' with the reason when webhooks are not configured."""
    from .render import inline_counts, rel_time

    if not doc.enabled:
        out.line(doc.message or "webhooks are off")
        return
    last_hour = doc.last_hour or {}
    out.kv(
        [
            ("listening on", doc.listen or "-"),
            ("registered url", doc.registered_url or "not set up here (shiptrackctl webhooks setup)"),
            ("subscribed", doc.subscribed or 0),
            ("pushes last hour", inline_counts(last_hour) if last_hour else "none"),
            ("last push", rel_time(doc.last_push_at) if doc.last_push_at else "never"),
            ("changes by push", doc.changes_by_push or 0),
            ("silence", doc.silence or "?"),
        ]
    )
