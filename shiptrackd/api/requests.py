"""
Request and response helpers shared by every route module: bodies, query parameters, the error shape.

Routes only parse, call a plain async method and serialise; these helpers make the parsing
strict (a bad parameter is a 400 naming it) and every failure the same JSON shape.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response

from ..errors import InvalidRequestError, ShiptrackError

Handler = Callable[[Request], Awaitable[Any]]

MAX_BODY_BYTES = 8 * 1024 * 1024  # an import of ~100k shipments; anything bigger is refused
MAX_JSON_DEPTH = 32  # our bodies nest 3 deep; far deeper is an attack on the parser or on repr()
MAX_QUERY_INT = 2**63 - 1


def error_response(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


async def read_json(request: Request) -> Any:
    """The request body as JSON, refusing oversize, non-JSON, malformed and pathological bodies with a 4xx."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise BodyTooLargeError()
    check_json_content_type(request)
    body = bytearray()
    try:
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY_BYTES:
                raise BodyTooLargeError()
    except ClientDisconnect:
        raise ClientGoneError() from None
    if not body:
        return None
    return parse_json(bytes(body))


def parse_json(body: bytes) -> Any:
    """JSON from *body*; a 400 for bad syntax, numbers past Python's digit limit, or nesting past MAX_JSON_DEPTH."""
    try:
        value = json.loads(body)
    except RecursionError:
        raise InvalidRequestError(f"body is nested deeper than {MAX_JSON_DEPTH} levels") from None
    except (UnicodeDecodeError, ValueError) as exc:  # JSONDecodeError, and int digits past sys.get_int_max_str_digits
        raise InvalidRequestError(f"body is not valid JSON: {str(exc)[:200]}") from None
    check_parsed(value)
    return value


def check_parsed(value: Any) -> None:
    """
    Refuse what json.loads accepts but nothing downstream can hold: nesting past MAX_JSON_DEPTH
    (repr() and our code recurse), and lone surrogates ("\\ud800"), which SQLite and the log cannot encode.

    Iterative, so it cannot itself recurse too deep.
    """
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            _check_text(item)
            continue
        children = list(item.items()) if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        if depth > MAX_JSON_DEPTH:
            raise InvalidRequestError(f"body is nested deeper than {MAX_JSON_DEPTH} levels")
        for child in children:
            if isinstance(child, tuple):  # a (key, value) pair of an object
                _check_text(child[0])
                child = child[1]
            if isinstance(child, dict | list | str):
                stack.append((child, depth + 1))


def _check_text(text: str) -> None:
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidRequestError("body has a string that is not valid Unicode (a lone surrogate escape)") from None


def check_json_content_type(request: Request) -> None:
    """A body sent as anything but JSON is a 415; no Content-Type at all is read as JSON (curl -X POST)."""
    raw = request.headers.get("content-type")
    if raw is None:
        return
    media = raw.split(";", 1)[0].strip().lower()
    if media == "application/json" or (media.startswith("application/") and media.endswith("+json")):
        return
    if not _has_body(request):
        return  # an empty POST with a stray Content-Type carries nothing to misread
    raise UnsupportedMediaTypeError(media or raw)


def _has_body(request: Request) -> bool:
    length = request.headers.get("content-length")
    return "transfer-encoding" in request.headers or (length is not None and length.strip() not in ("", "0"))


class UnsupportedMediaTypeError(ShiptrackError):
    """A body that is not JSON: said as a 415 rather than read as JSON by guess."""

    code = "unsupported_media_type"
    http_status = 415

    def __init__(self, media: str) -> None:
        super().__init__(f"send the body as Content-Type: application/json, not {media[:80]!r}")


class DaemonStoppingError(ShiptrackError):
    """The daemon began to stop while this request was still being read or served."""

    code = "stopping"
    http_status = 503

    def __init__(self) -> None:
        super().__init__("the daemon is stopping; try again once it is back")


class ClientGoneError(ShiptrackError):
    """The client hung up before its body arrived: a 400 nobody will read, and nothing to log."""

    code = "client_disconnected"
    http_status = 400

    def __init__(self) -> None:
        super().__init__("the client disconnected before sending its whole body")


class BodyTooLargeError(ShiptrackError):
    """The body is over MAX_BODY_BYTES: refused before it is read whole."""

    code = "body_too_large"
    http_status = 413

    def __init__(self) -> None:
        super().__init__(f"body larger than {MAX_BODY_BYTES} bytes")


def query_int(request: Request, name: str, default: int) -> int:
    """An integer query parameter within 64 bits (what SQLite and the JSON answer can carry), or a 400 naming it."""
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw) if len(raw) <= 20 else None
    except ValueError:
        value = None
    if value is None or not -MAX_QUERY_INT <= value <= MAX_QUERY_INT:
        raise InvalidRequestError(f"query parameter {name!r} must be an integer, not {raw[:40]!r}")
    return value


def query_bool(request: Request, name: str) -> bool | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    if raw.lower() in ("1", "true", "yes"):
        return True
    if raw.lower() in ("0", "false", "no"):
        return False
    raise InvalidRequestError(f"query parameter {name!r} must be true or false, not {raw[:40]!r}")


def field(body: Any, name: str, kind: type, default: Any) -> Any:
    if not isinstance(body, dict):
        return default
    value = body.get(name, default)
    if value is not None and not isinstance(value, kind):
        raise InvalidRequestError(f"field {name!r} must be {kind.__name__}")
    return value


def answer(value: object, status: int = 200) -> Response:
    """*value* (a wire type, or plain JSON data) as a JSON answer; datetimes as RFC 3339 with Z."""
    return Response(msgspec.json.encode(value), status_code=status, media_type="application/json")


def json_endpoint(handler: Handler) -> Handler:
    """Wrap a handler: its return value becomes JSON, a ShiptrackError becomes the error shape."""

    async def endpoint(request: Request) -> Response:
        try:
            result = await handler(request)
        except ShiptrackError as exc:
            return error_response(exc.http_status, exc.code, exc.message)
        return result if isinstance(result, Response) else answer(result)

    endpoint.__doc__ = handler.__doc__
    endpoint.__name__ = handler.__name__
    return endpoint
