"""
The application's door: the /v1 API on TCP (`[api] listen`), behind bearer tokens with scopes.

The same routes as the socket, served by the same server setup (server.build_app, serve_tcp);
this module adds only who may call what. A token is compared in constant time, by its SHA-256,
against every configured one (`token`, `token_file` or `token_sha256`). No token or a bad one is
a 401, a scope too small a 403, both in the JSON error shape with a rate-limited log line: a
scanner cannot flood the journal. Scopes: read (status, shipments), write (read + add, import,
remove, retrack, set a carrier, a targeted sync), admin (everything the socket can do).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from loguru import logger

from ..config import ApiToken
from .audit import peer
from .requests import error_response
from .server import LogLimiter

SCOPE_RANK = {"read": 0, "write": 1, "admin": 2}
OPEN_PATHS = ("/livez", "/readyz")  # probes: a load balancer needs no token, and they say nothing
MAX_SYNC_BODY = 1024 * 1024

# (method, path pattern, scope): the first match decides; anything else needs admin.
_RULES: tuple[tuple[str, re.Pattern[str], str], ...] = tuple(
    (method, re.compile(pattern), scope)
    for method, pattern, scope in (
        ("GET", r"/v1/status", "read"),
        ("GET", r"/v1/health", "read"),
        ("GET", r"/v1/openapi\.json", "read"),
        ("GET", r"/v1/shipments", "read"),
        ("GET", r"/v1/shipments/[^/]+", "read"),
        ("GET", r"/v1/shipments/[^/]+/why", "read"),
        ("POST", r"/v1/shipments", "write"),
        ("DELETE", r"/v1/shipments/[^/]+", "write"),
        ("POST", r"/v1/shipments/[^/]+/retrack", "write"),
        ("POST", r"/v1/shipments/[^/]+/carrier", "write"),
        ("POST", r"/v1/sync", "write"),  # a targeted sync only (checked on the body); a full one is admin
    )
)


def required_scope(method: str, path: str) -> str:
    """The least scope that may call *method* *path*."""
    for rule_method, pattern, scope in _RULES:
        if method == rule_method and pattern.fullmatch(path):
            return scope
    return "admin"


def digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


@dataclass(frozen=True)
class Key:
    name: str
    scope: str
    sha256: bytes


def keys_for(tokens: Sequence[ApiToken]) -> tuple[Key, ...]:
    return tuple(
        Key(t.name, t.scope, digest(t.token.get()) if t.token else bytes.fromhex(t.token_sha256)) for t in tokens
    )


def find_key(keys: Sequence[Key], presented: str) -> Key | None:
    """The key whose hash matches, comparing against every key in constant time (no early exit)."""
    given = digest(presented)
    found = None
    for key in keys:
        if hmac.compare_digest(given, key.sha256):
            found = key
    return found


def _targeted(body: bytes) -> bool:
    """A sync body naming shipments (and not forcing a full run): what a write token may start."""
    try:
        parsed = json.loads(body or b"{}")
    except ValueError:
        return True  # malformed: let the route answer its 400
    if not isinstance(parsed, dict):
        return True
    shipments = parsed.get("shipments")
    return isinstance(shipments, list) and bool(shipments) and not parsed.get("force")


class BearerAuth:
    """ASGI middleware: every request but the probes carries a token whose scope covers it."""

    def __init__(self, app: Any, tokens: Callable[[], Sequence[ApiToken]], *, log_every_s: float = 60.0) -> None:
        """*tokens* gives the live [[api.tokens]]: a reload's new tokens apply to the next request."""
        self.app = app
        self.tokens = tokens
        self._keys: tuple[Sequence[ApiToken], tuple[Key, ...]] | None = None
        self.limiter = LogLimiter(log_every_s)

    @property
    def keys(self) -> tuple[Key, ...]:
        tokens = self.tokens()
        if self._keys is None or self._keys[0] is not tokens:
            self._keys = (tokens, keys_for(tokens))
        return self._keys[1]

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("path") in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        method, path = scope.get("method", ""), scope.get("path", "")
        headers = dict(scope.get("headers") or [])
        auth = headers.get(b"authorization", b"").decode("latin-1")
        scheme, _, presented = auth.partition(" ")
        key = find_key(self.keys, presented.strip()) if scheme.lower() == "bearer" and presented.strip() else None
        if key is None:
            why = "no bearer token" if not auth else "a token that matches none"
            self._log(scope, f"401 {why}")
            response = error_response(
                401, "unauthorized", "a valid bearer token is required (Authorization: Bearer ...)"
            )
            response.headers["www-authenticate"] = 'Bearer realm="shiptrackd"'
            await response(scope, receive, send)
            return
        needed = required_scope(method, path)
        if needed == "write" and path == "/v1/sync" and SCOPE_RANK[key.scope] < SCOPE_RANK["admin"]:
            body, receive = await _buffer(receive)
            if body is None:
                await error_response(413, "body_too_large", "request body too large")(scope, receive, send)
                return
            if not _targeted(body):
                needed = "admin"
        if SCOPE_RANK[key.scope] < SCOPE_RANK[needed]:
            self._log(scope, f"403 token {key.name} ({key.scope}) for {method} {path} (needs {needed})")
            response = error_response(
                403, "forbidden", f"token {key.name!r} has scope {key.scope}; {method} {path} needs {needed}"
            )
            await response(scope, receive, send)
            return
        scope.setdefault("state", {})["token"] = key.name
        await self.app(scope, receive, send)

    def _log(self, scope: Any, what: str) -> None:
        who = peer(scope)
        host = who.rpartition(":")[0] or who  # per client host, not per connection: a scanner opens many
        held = self.limiter.allow(f"{what.split(' ')[0]} {host}")
        if held is not None:
            more = f" ({held} more since the last report)" if held else ""
            logger.bind(peer=who).warning("api door refused: {} from {}{}", what, who, more)


async def _buffer(receive: Any) -> tuple[bytes | None, Any]:
    """Read the whole body (at most MAX_SYNC_BODY), and a receive that hands it on to the route."""
    chunks, size, more = [], 0, True
    while more:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_SYNC_BODY:
            return None, receive
        chunks.append(chunk)
        more = message.get("more_body", False)
    body = b"".join(chunks)
    sent = False

    async def replay() -> Any:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return body, replay
