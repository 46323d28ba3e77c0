"""
The OpenAPI 3.1 document of the control API, generated from the routes' Docs and the wire types
(msgspec.json.schema_components), never written by hand: a route, a parameter or an answer that
changes changes the document with it.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec
from starlette.routing import Route

from .. import __version__
from ..outbound.schema import webhooks_section
from ..wire.answers import ErrorAnswer
from .contract import ApiRoute, Doc

REF = "#/components/schemas/{name}"
_CONVERTOR = re.compile(r"\{(\w+):\w+\}")  # Starlette's {id:int} is {id} in OpenAPI


def openapi_spec(routes: list[Route]) -> dict[str, Any]:
    """The document for *routes*; a route without a Doc is listed as undocumented (a test refuses that)."""
    types: list[Any] = [ErrorAnswer]
    for documented in routes:
        if isinstance(documented, ApiRoute):
            types.extend(_types(documented.doc))
    unique = list(dict.fromkeys(types))
    schemas, components = msgspec.json.schema_components(unique, ref_template=REF)
    schema_of = dict(zip(unique, schemas, strict=True))
    paths: dict[str, dict[str, Any]] = {}
    for r in routes:
        path = _CONVERTOR.sub(r"{\1}", r.path)
        for method in sorted((r.methods or set()) - {"HEAD"}):
            op_id = f"{method.lower()}_{path.strip('/').replace('/', '_').replace('{', '').replace('}', '')}"
            if isinstance(r, ApiRoute):
                op = _operation(r.doc, schema_of)
            else:
                op = {"x-undocumented": True, "responses": {"default": {"description": "not documented"}}}
            paths.setdefault(path, {})[method.lower()] = {"operationId": op_id, **op}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "shiptrackd control API",
            "version": __version__,
            "description": "HTTP/1.1 + JSON over the daemon's Unix socket (curl --unix-socket …). Errors are "
            '{"error": {"code", "message"}}; timestamps are RFC 3339 in UTC with Z.',
        },
        "paths": paths,
        "webhooks": webhooks_section(),  # what shiptrackd POSTs to [[outbound]] endpoints (issue 11)
        "components": {"schemas": components},
    }


def _types(doc: Doc) -> list[Any]:
    out: list[Any] = []
    for kind in doc.answers.values():
        out.extend(kind if isinstance(kind, tuple) else (kind,))
    if doc.body is not None:
        out.extend(doc.body if isinstance(doc.body, tuple) else (doc.body,))
    return out


def _schema(kind: Any, schema_of: dict[Any, dict[str, Any]]) -> dict[str, Any]:
    if isinstance(kind, tuple):
        return {"anyOf": [schema_of[k] for k in kind]}
    return schema_of[kind]


def _operation(doc: Doc, schema_of: dict[Any, dict[str, Any]]) -> dict[str, Any]:
    responses: dict[str, Any] = {}
    for status, kind in sorted(doc.answers.items()):
        responses[str(status)] = {
            "description": doc.summary if status < 300 else "the answer, with this status",
            "content": {doc.media_type: {"schema": _schema(kind, schema_of)}},
        }
    error = {"application/json": {"schema": schema_of[ErrorAnswer]}}
    for status, when in sorted(doc.errors.items()):
        if str(status) in responses:  # a status that is either an answer or an error (health's 503)
            content = responses[str(status)]["content"]["application/json"]
            content["schema"] = {"anyOf": [content["schema"], schema_of[ErrorAnswer]]}
            responses[str(status)]["description"] += f"; or an error: {when}"
            continue
        responses[str(status)] = {"description": when, "content": error}
    op: dict[str, Any] = {"summary": doc.summary, "responses": responses}
    if doc.params:
        op["parameters"] = [
            {"name": p.name, "in": p.where, "required": p.required, "description": p.description, "schema": p.schema}
            for p in doc.params
        ]
    if doc.body is not None:
        op["requestBody"] = {
            "required": doc.body_required,
            "content": {"application/json": {"schema": _schema(doc.body, schema_of)}},
        }
    return op
