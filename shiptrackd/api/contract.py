"""
Routes that carry their own documentation: what a route takes and every status it answers with,
next to the handler, so the OpenAPI document (api/openapi.py) is generated, never written by hand.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, get_origin

from starlette.routing import Route

from .requests import Handler, json_endpoint

# What every /v1 route may answer besides its own statuses.
COMMON_ERRORS: dict[int, str] = {
    403: "a request from a web page (it carries Origin or Referer): refused",
    500: "an internal or store error",
    503: "the daemon is stopping",
}
QUERY_ERRORS: dict[int, str] = {400: "a query parameter is malformed or out of range (named in the message)"}
BODY_ERRORS: dict[int, str] = {
    400: "the body is not valid JSON, is nested too deep, or a field is wrong (named in the message)",
    413: "the body is larger than 8 MiB",
    415: "the body is not sent as application/json",
}
WRITE_ERRORS: dict[int, str] = {507: "the store's disk is full"}
NDJSON = "application/x-ndjson"


@dataclass(frozen=True)
class Param:
    """A query or path parameter; `schema` is its JSON Schema."""

    name: str
    description: str
    schema: dict[str, Any]
    where: str = "query"
    required: bool = False


def query(name: str, description: str, kind: str = "string", **schema: Any) -> Param:
    return Param(name, description, {"type": kind, **schema})


def path(name: str, description: str, kind: str = "string", **schema: Any) -> Param:
    return Param(name, description, {"type": kind, **schema}, where="path", required=True)


@dataclass(frozen=True)
class Doc:
    """
    One operation: `answers` maps each success status to its wire type (a tuple: any of them),
    `body` is the request body's type (a tuple: any of them); `errors` maps each error status to
    when it happens. An error answer has the ErrorAnswer shape. Every answer is a JSON object,
    never a bare array (a list goes under a key, as in `{"runs": [...]}`), so it can grow fields.
    """

    summary: str
    answers: dict[int, Any]
    params: tuple[Param, ...] = ()
    body: Any = None
    body_required: bool = False
    errors: dict[int, str] = field(default_factory=dict)
    media_type: str = "application/json"


class ApiRoute(Route):
    """A Starlette route with its Doc."""

    def __init__(self, path: str, handler: Handler, method: str, doc: Doc) -> None:
        super().__init__(path, json_endpoint(handler), methods=[method])
        self.doc = doc


def route(path: str, method: str, handler: Handler, doc: Doc) -> ApiRoute:
    """A documented /v1 route; the common errors (and those of its params and body) are added here."""
    errors = dict(COMMON_ERRORS)
    if any(p.where == "query" for p in doc.params):
        errors.update(QUERY_ERRORS)
    if doc.body is not None:
        errors.update(BODY_ERRORS)
    if method in ("POST", "DELETE"):
        errors.update(WRITE_ERRORS)
    errors.update(doc.errors)
    for kinds in doc.answers.values():
        for kind in kinds if isinstance(kinds, tuple) else (kinds,):
            origin: Any = get_origin(kind)
            if origin is list:
                raise TypeError(f"{method} {path}: answer {kind} is a bare array; wrap it in an object")
    return ApiRoute(path, handler, method, Doc(**{**doc.__dict__, "errors": errors}))
