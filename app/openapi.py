"""The OpenAPI contract, made honest: every operation lists each status it can answer, with the
error body the API really sends (``{"detail": "..."}``), not FastAPI's ``{"detail": [...]}``.

Statuses every operation may answer (bad Host, validation, internal error, busy) are added to
all; the ones particular to an operation are declared in `ERRORS`, one row per operation, and a
test checks that every route has its row, so a new route must say what it can answer.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

ERROR_SCHEMA = {
    "title": "Error",
    "type": "object",
    "required": ["detail"],
    "properties": {"detail": {"type": "string", "description": "what went wrong, in words a person can act on"}},
    "additionalProperties": True,
}
REASONS = {
    400: "Refused: the Host header is not one this server answers to (see CNNVIS_ALLOWED_HOSTS)",
    403: "Refused: a state-changing request from another origin",
    404: "Not found: the id, name or index does not exist",
    409: "Conflict with the current state (read-only model, training live, name taken, in use)",
    413: "Too large: the body, or what it would decode to, is over a limit (the message names the setting)",
    415: "Unsupported file type",
    422: "Invalid input: the message names the field and what is allowed",
    500: "Internal error: the message carries an id that the server log repeats",
    501: "Not available on this server: an optional extra is not installed (the message names the pip command)",
    503: "Busy: retry after the seconds in Retry-After",
    507: "A quota is full: the message names the limit and the setting that raises it",
}
COMMON = (400, 422, 500, 503)
UNSAFE = ("post", "put", "patch", "delete")

# Statuses particular to each operation, besides COMMON, 403 and 413 (unsafe methods) and 404 (a path parameter).
ERRORS: dict[tuple[str, str], tuple[int, ...]] = {
    ("get", "/api/v1/health"): (),
    ("get", "/api/v1/presets"): (),
    ("get", "/api/v1/layer-types"): (),
    ("get", "/api/v1/colormaps"): (),
    ("post", "/api/v1/specs/validate"): (),
    ("get", "/api/v1/models"): (),
    ("post", "/api/v1/models"): (404, 409, 507),
    ("get", "/api/v1/models/{model_id}"): (),
    ("patch", "/api/v1/models/{model_id}"): (409,),
    ("delete", "/api/v1/models/{model_id}"): (409,),
    ("post", "/api/v1/models/{model_id}/reset"): (409,),
    ("post", "/api/v1/models/{model_id}/share"): (409,),
    ("post", "/api/v1/models/{model_id}/forward"): (409, 415),
    ("post", "/api/v1/models/{model_id}/explain"): (409, 415),
    ("post", "/api/v1/models/{model_id}/gradients"): (409, 415),
    ("post", "/api/v1/models/{model_id}/explain/stream"): (409, 415),
    ("post", "/api/v1/models/{model_id}/learn/conv"): (409, 415),
    ("post", "/api/v1/models/{model_id}/learn/dropout"): (409, 415),
    ("post", "/api/v1/models/{model_id}/learn/lr-experiment"): (409,),
    ("post", "/api/v1/models/{model_id}/learn/localize"): (409, 415),
    ("get", "/api/v1/models/{model_id}/layers/{index}/filters"): (),
    ("get", "/api/v1/models/{model_id}/export"): (501,),
    ("get", "/api/v1/models/{model_id}/layers/{index}/filters.png"): (),
    ("get", "/api/v1/models/{model_id}/layers/{index}/activations.png"): (409, 415),
    ("get", "/api/v1/models/{model_id}/layers/{index}/channels/{channel}/top"): (),
    ("post", "/api/v1/models/{model_id}/layers/{index}/channels/{channel}/top"): (409,),
    ("get", "/api/v1/models/{model_id}/layers/{index}/channels/{channel}/maximize"): (),
    ("post", "/api/v1/models/{model_id}/layers/{index}/channels/{channel}/maximize"): (),
    ("post", "/api/v1/models/{model_id}/train"): (409,),
    ("post", "/api/v1/models/{model_id}/evaluate"): (409,),
    ("get", "/api/v1/models/{model_id}/history"): (),
    ("get", "/api/v1/models/{model_id}/train/batch"): (409,),
    ("get", "/api/v1/models/{model_id}/checkpoint"): (),
    ("post", "/api/v1/models/import"): (409, 415, 507),
    ("post", "/api/v1/images"): (415, 507),
    ("get", "/api/v1/images/{image_id}"): (),
    ("delete", "/api/v1/images/{image_id}"): (),
    ("get", "/api/v1/datasets"): (),
    ("post", "/api/v1/datasets"): (409, 415, 507),
    ("get", "/api/v1/datasets/{name}"): (),
    ("delete", "/api/v1/datasets/{name}"): (409,),
    ("get", "/api/v1/datasets/{name}/samples/{split}/{index}.png"): (),
    ("post", "/api/v1/datasets/import"): (404, 409, 415, 507),
}


def statuses(method: str, path: str) -> list[int]:
    """Every error status an operation may answer (KeyError for an operation without a row)."""
    codes = set(COMMON) | set(ERRORS[(method, path)])
    if method in UNSAFE:
        codes |= {403, 413}
    if "{" in path:
        codes.add(404)
    return sorted(codes)


def document(app: FastAPI) -> dict[str, Any]:
    """The app's OpenAPI schema with the real error body and every status; built once, then cached."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components.pop("HTTPValidationError", None)
    components.pop("ValidationError", None)
    components["Error"] = ERROR_SCHEMA
    ref = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    for path, operations in schema.get("paths", {}).items():
        for method, op in operations.items():
            responses = op.setdefault("responses", {})
            for code in statuses(method, path):
                entry = responses.setdefault(str(code), {})
                entry["description"] = REASONS[code]
                entry["content"] = ref
                if code == 503:
                    entry["headers"] = {"Retry-After": {"description": "seconds to wait", "schema": {"type": "integer"}}}
    app.openapi_schema = schema
    return schema


def methods_for(app: FastAPI, path: str) -> list[str]:
    """The methods documented for the operation path that ``path`` fills in (HEAD beside GET); where
    several match (``/models/import`` and ``/models/{model_id}``), the one with fewest parameters."""
    matches: dict[int, set[str]] = {}
    for template, operations in document(app).get("paths", {}).items():
        if re.fullmatch(re.sub(r"\\{[^}]+\\}", "[^/]+", re.escape(template)), path):
            matches.setdefault(template.count("{"), set()).update(m.upper() for m in operations)
    methods = matches[min(matches)] if matches else set()
    if "GET" in methods:
        methods.add("HEAD")
    return sorted(methods)


def install(app: FastAPI) -> None:
    """Serve `document` at the app's openapi_url (and to /docs)."""
    app.openapi = lambda: document(app)  # type: ignore[method-assign]
