"""
The servers of the HTTP API: one Starlette app setup, one hypercorn setup for the Unix socket and any TCP listener.

Errors are always `{"error": {"code", "message"}}` with a fitting status. hypercorn is given a
shutdown trigger, so it installs no signal handlers of its own.
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
from anyio.abc import ByteStream, TaskStatus
from loguru import logger
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..errors import ShiptrackError
from .contract import Doc, route
from .openapi import openapi_spec
from .requests import DaemonStoppingError, error_response

if TYPE_CHECKING:
    from hypercorn.config import Config as HypercornConfig

INTERNAL_LOG_EVERY_S = 60.0
PROTOCOL_ERRORS = {
    400: ("bad_request", "malformed HTTP request"),
    431: ("headers_too_large", "request headers too large"),
}


def build_app(routes: list[Route], *, openapi: bool = True) -> Starlette:
    """The ASGI app over *routes*, plus /v1/openapi.json describing the /v1 ones (unless *openapi* is False)."""

    document: dict[str, Any] = {}

    async def spec(request: Request) -> Any:
        if not document:  # built once: the routes do not change while the app lives
            document.update(openapi_spec([r for r in all_routes if r.path.startswith("/v1/")]))
        return document

    doc = Doc("this document: OpenAPI 3.1, generated from the routes and the wire types", {200: dict[str, Any]})
    all_routes = [*routes, route("/v1/openapi.json", "GET", spec, doc)] if openapi else routes
    app = Starlette(routes=all_routes, exception_handlers={HTTPException: _http_error})
    app.add_middleware(_RejectBrowsers)
    app.add_middleware(InternalErrors)  # outermost of ours: Starlette's own would log a second traceback
    return app


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    message = f"no route {request.method} {request.url.path}" if exc.status_code in (404, 405) else str(exc.detail)
    response = error_response(exc.status_code, code, message)
    response.headers.update(exc.headers or {})  # a 405 names the methods that would work (Allow)
    return response


class InternalErrors:
    """
    Any exception a route lets escape becomes a 500 in the JSON error shape, logged once a minute per kind.

    Without this, Starlette logs a traceback and re-raises for hypercorn to log another: two
    tracebacks per request, which lets any client that finds a 500 flood the journal.
    """

    def __init__(self, app: Any, *, every_s: float = INTERNAL_LOG_EVERY_S) -> None:
        self.app = app
        self.limiter = LogLimiter(every_s)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked_send(message: Any) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracked_send)
        except Exception as exc:
            endpoint = getattr(scope.get("endpoint"), "__name__", None) or scope.get("path", "?")[:60]
            kind = f"{type(exc).__name__} in {scope.get('method')} {endpoint}"
            suppressed = self.limiter.allow(kind)
            if suppressed is not None:
                more = f" ({suppressed} more since the last report)" if suppressed else ""
                logger.opt(exception=exc).error("control API internal error: {}{}", kind, more)
            if not started:  # else the answer is half sent: returning ends it and hypercorn closes
                response = error_response(500, "internal", f"internal error: {type(exc).__name__}")
                await response(scope, receive, send)


class LogLimiter:
    """At most one report per kind per `every_s`; says how many were held back in between."""

    def __init__(self, every_s: float, max_kinds: int = 256) -> None:
        self.every_s = every_s
        self.max_kinds = max_kinds
        self._last: dict[str, tuple[float, int]] = {}

    def allow(self, kind: str) -> int | None:
        """None: stay quiet; else log now, with the number of reports held back since the last one."""
        now = time.monotonic()
        last = self._last.get(kind)
        if last is not None and now - last[0] < self.every_s:
            self._last[kind] = (last[0], last[1] + 1)
            return None
        if last is None and len(self._last) >= self.max_kinds:
            self._last.pop(next(iter(self._last)))  # bounded: random paths cannot grow this
        self._last[kind] = (now, 0)
        return last[1] if last is not None else 0


class _RejectBrowsers:
    """A browser page must never drive the daemon (DNS rebinding, CSRF): refuse Origin/Referer, as Tailscale does."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            headers = dict(scope.get("headers") or [])
            if b"origin" in headers or b"referer" in headers:
                response = error_response(403, "forbidden", "requests from web pages are refused")
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


# --- the socket -----------------------------------------------------------------------


class SocketInUseError(ShiptrackError):
    code = "socket_in_use"


def claim_socket_path(path: Path) -> None:
    """
    Make *path* free to bind, or refuse.

    HTTP servers silently unlink whatever sits at the path, so a second daemon would
    steal a live socket. Probe it: if something answers, refuse; if the connection
    is refused (a stale file from a crash), remove it; anything else is not ours.
    """
    # Only the socket's own directory is created, never its parents: a socket in an arbitrary
    # missing directory is a configuration mistake (statedir.check_socket_dir says which).
    path.parent.mkdir(exist_ok=True, mode=0o750)
    if not path.exists() and not path.is_symlink():
        return
    if not path.is_socket():
        raise SocketInUseError(f"{path} exists and is not a socket; refusing to replace it")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(str(path))
    except OSError as exc:
        if exc.errno not in (errno.ECONNREFUSED, errno.ENOENT):
            raise SocketInUseError(f"cannot probe {path}: {exc.strerror}") from None
        path.unlink(missing_ok=True)  # stale: nobody is listening
        return
    finally:
        probe.close()
    raise SocketInUseError(f"another shiptrackd is already listening on {path}; refusing to start")


async def serve(
    app: Starlette,
    path: Path,
    mode: int,
    stop: anyio.Event,
    *,
    grace_s: float = 2.0,
    task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Serve *app* on the Unix socket at *path* until *stop* is set; started() once it accepts connections."""
    claim_socket_path(path)
    cfg = _hypercorn_config(f"unix:{path}", grace_s)
    cfg.umask = 0o777 & ~mode  # the socket is never briefly more open than its mode
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(_run_hypercorn, app, cfg, stop)
            await _wait_listening(lambda: anyio.connect_unix(path))
            os.chmod(path, mode)
            task_status.started()
    finally:
        path.unlink(missing_ok=True)  # noqa: ASYNC240  (one unlink on the way out; must not be cancelled)


async def serve_tcp(
    app: Any,
    listen: str,
    stop: anyio.Event,
    *,
    grace_s: float = 1.0,
    task_status: TaskStatus[str] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """
    Serve *app* on TCP HOST:PORT until *stop* is set; started() with the bound HOST:PORT once it accepts.

    Port 0 picks a free port (tests, the demo): the sockets are bound here, so the real port is known.
    """
    host, _, port = listen.rpartition(":")
    host = host.strip("[]")
    if host in ("0.0.0.0", "::", ""):
        logger.warning("{} listens on every interface", listen)
    cfg = _hypercorn_config(listen, grace_s)
    sockets = cfg.create_sockets()
    bound_port = sockets.insecure_sockets[0].getsockname()[1]
    async with anyio.create_task_group() as tg:
        tg.start_soon(_run_hypercorn, app, cfg, stop, sockets)
        await _wait_listening(lambda: anyio.connect_tcp(host, bound_port))
        task_status.started(f"{host if ':' not in host else f'[{host}]'}:{bound_port}")


class Listeners:
    """
    The daemon's servers (the socket and every TCP listener), stopped as one: `stop()` tells them all
    and waits until each has closed within its grace. The task group holding them ends only then:
    hypercorn cancelled in the middle of its graceful close raises InvalidStateError, a traceback at
    a stop (a provider's push still in flight on the webhook listener when the socket had closed).
    """

    def __init__(self) -> None:
        self.stopping = anyio.Event()
        self._done: list[anyio.Event] = []

    async def run(
        self,
        server: Callable[..., Awaitable[None]],
        *args: Any,
        task_status: TaskStatus[Any] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """`server(*args, stop, task_status=...)`: `serve` or `serve_tcp`, stopped by stop()."""
        done = anyio.Event()
        self._done.append(done)
        try:
            await server(*args, self.stopping, task_status=task_status)
        finally:
            done.set()

    async def stop(self, within_s: float) -> None:
        self.stopping.set()
        with anyio.move_on_after(within_s):
            for done in self._done:
                await done.wait()


def _hypercorn_config(bind: str, grace_s: float) -> HypercornConfig:
    """One server setup for the socket and every TCP listener."""
    from hypercorn.config import Config as HypercornConfig

    answer_protocol_errors_in_json()
    quiet_cancelled_connections()

    cfg = HypercornConfig()
    cfg.bind = [bind]
    cfg.graceful_timeout = grace_s
    cfg.errorlog = logging.getLogger("hypercorn.error")  # a Logger: no duplicate stderr handler
    cfg.accesslog = None
    cfg.keep_alive_timeout = 30
    return cfg


class _CancelledConnection(logging.Filter):
    """Drops asyncio's report of a connection task cancelled at shutdown (CPython 3.11; 3.12 is quiet)."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not (
            isinstance(exc, asyncio.CancelledError)
            and record.getMessage().startswith("Exception in callback StreamReaderProtocol.connection_made")
        )


def quiet_cancelled_connections() -> None:
    """
    hypercorn cancels, at the end of its graceful timeout, a connection it cannot close: a client
    that stopped reading leaves unsent bytes that the transport waits to flush. Python 3.11's
    asyncio streams then log a CancelledError traceback per connection (fixed in 3.12): drop
    exactly that record, nothing else from asyncio.
    """
    log = logging.getLogger("asyncio")
    if not any(isinstance(f, _CancelledConnection) for f in log.filters):
        log.addFilter(_CancelledConnection())


def answer_protocol_errors_in_json() -> None:
    """
    Give the 400s of hypercorn's HTTP/1.1 parser (bad header, bad length, not HTTP) the JSON error shape.

    hypercorn answers them itself with an empty body, before any ASGI app sees the request, and
    offers no hook: its one method that writes that answer is replaced, same signature, same framing.
    """
    import h11
    from hypercorn.protocol.h11 import H11Protocol

    if getattr(H11Protocol, "shiptrack_json_errors", False):
        return

    async def send_error_response(self: H11Protocol, status_code: int) -> None:
        code, message = PROTOCOL_ERRORS.get(status_code, ("http_error", f"HTTP error {status_code}"))
        body = json.dumps({"error": {"code": code, "message": message}}).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
            *self.config.response_headers("h11"),
        ]
        for event in (h11.Response(status_code=status_code, headers=headers), h11.Data(data=body), h11.EndOfMessage()):
            await self._send_h11_event(event)

    H11Protocol._send_error_response = send_error_response  # type: ignore[method-assign]
    H11Protocol.shiptrack_json_errors = True  # type: ignore[attr-defined]


async def _run_hypercorn(app: Any, cfg: HypercornConfig, stop: anyio.Event, sockets: Any = None) -> None:
    from hypercorn.asyncio import serve as hypercorn_serve
    from hypercorn.asyncio.run import worker_serve
    from hypercorn.utils import wrap_app

    wrapped = EndOnStop(CloseUnreadBodies(app), stop, grace_s=cfg.graceful_timeout / 2)
    async with anyio.create_task_group() as tg:
        tg.start_soon(wrapped.watch)
        if sockets is None:
            await hypercorn_serve(wrapped, cfg, shutdown_trigger=stop.wait)
        else:  # pre-bound sockets (serve_tcp, for port 0) go through the function hypercorn's serve() wraps
            await worker_serve(
                wrap_app(wrapped, cfg.wsgi_max_body_size, "asgi"), cfg, sockets=sockets, shutdown_trigger=stop.wait
            )
        tg.cancel_scope.cancel()


class CloseUnreadBodies:
    """
    An answer sent before its request's body was read whole says `Connection: close`.

    The server will not read the rest (it closes the connection after the answer); saying so
    lets the client stop sending and not queue its next request on a connection about to close.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        headers = dict(scope.get("headers") or []) if scope["type"] == "http" else {}
        unread = b"transfer-encoding" in headers or headers.get(b"content-length", b"0").strip() not in (b"", b"0")
        if not unread:
            await self.app(scope, receive, send)
            return

        async def tracked_receive() -> Any:
            nonlocal unread
            message = await receive()
            if message["type"] != "http.request" or not message.get("more_body", False):
                unread = False
            return message

        async def closing_send(message: Any) -> None:
            if message["type"] == "http.response.start" and unread:
                message = {**message, "headers": [*message.get("headers", []), (b"connection", b"close")]}
            await send(message)

        await self.app(scope, tracked_receive, closing_send)


class EndOnStop:
    """
    Finish every request promptly once the server stops, so none is left for hypercorn to cancel.

    hypercorn waits out its graceful timeout for a request still reading its body (a client that
    sent half) or still working, then cancels its connection: one asyncio traceback each. Here a
    body read sees a disconnect as soon as *stop* is set, and a request still running *grace_s*
    after it is cancelled and, if nothing was sent yet, answered 503 with Connection: close.
    One `watch` task per server does the watching (a watcher task per request cost ~0.13 ms each).
    """

    def __init__(self, app: Any, stop: anyio.Event, *, grace_s: float) -> None:
        self.app = app
        self.stop = stop
        self.grace_s = grace_s
        self._running: set[_InFlight] = set()
        self._overdue = False  # the grace is over: a request still running, or starting, is cancelled

    async def watch(self) -> None:
        """Run beside the server: at stop, end the body reads under way; after the grace, the requests."""
        await self.stop.wait()
        for flight in list(self._running):
            if flight.receiving is not None:
                flight.receiving.cancel()
        await anyio.sleep(self.grace_s)
        self._overdue = True
        for flight in list(self._running):
            flight.scope.cancel()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False
        flight = _InFlight()

        async def guarded_receive() -> Any:
            if not self.stop.is_set():
                with anyio.CancelScope() as flight.receiving:
                    try:
                        return await receive()
                    finally:
                        flight.receiving = None
            raise DaemonStoppingError()  # a 503 from read_json: no more of this body will be read

        async def tracked_send(message: Any) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        with flight.scope:
            if self._overdue:
                flight.scope.cancel()
            self._running.add(flight)
            try:
                await self.app(scope, guarded_receive, tracked_send)
            finally:
                self._running.discard(flight)
        if flight.scope.cancelled_caught and not started:
            stopping = DaemonStoppingError()
            response = error_response(stopping.http_status, stopping.code, stopping.message)
            response.headers["connection"] = "close"
            await response(scope, guarded_receive, send)


class _InFlight:
    """One request EndOnStop may have to end: its cancel scope, and its body read's while one is under way."""

    __slots__ = ("receiving", "scope")

    def __init__(self) -> None:
        self.scope = anyio.CancelScope()
        self.receiving: anyio.CancelScope | None = None


async def _wait_listening(connect: Callable[[], Awaitable[ByteStream]]) -> None:
    with anyio.fail_after(10):
        while True:
            try:
                stream = await connect()
            except OSError:
                await anyio.sleep(0.005)
                continue
            await stream.aclose()
            return
