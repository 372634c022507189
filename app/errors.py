"""Errors the API answers with: always ``{"detail": "<what to do>"}`` plus optional keys, never a 500 page.

Services raise `AppError` (or one of the named subclasses); the handlers registered by
`install_handlers` turn it, FastAPI's validation errors and Starlette's HTTP errors into JSON.
The validation handler never echoes the input (a NaN in the input would make it unserialisable).
Anything else is a 500 ``{"detail": "internal error <id>; it was logged"}``, the id also in the log line.
"""

from __future__ import annotations

import logging
import secrets
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("cnnvis")


class AppError(Exception):
    """An answer for the client: status, a sentence a person can act on, extra JSON keys and headers."""

    status = 400

    def __init__(self, detail: str, *, status: int | None = None, headers: dict[str, str] | None = None, **extra: Any):
        super().__init__(detail)
        self.detail = detail
        self.status = status or self.status
        self.headers = headers
        self.extra = extra


class NotFound(AppError):
    status = 404


class Conflict(AppError):
    status = 409


class Invalid(AppError):
    status = 422


class TooLarge(AppError):
    status = 413


class Unsupported(AppError):
    status = 415


class QuotaExceeded(AppError):
    """A data-directory quota is full: the message names the limit and the setting that raises it."""

    status = 507


class Busy(AppError):
    """Too much work at once: 503 with ``Retry-After`` so a client backs off instead of piling up."""

    status = 503

    def __init__(self, detail: str, retry_after: int = 2):
        super().__init__(detail, headers={"Retry-After": str(max(1, int(retry_after)))})  # whole seconds, at least 1


def error_body(detail: str, **extra: Any) -> dict[str, Any]:
    return {"detail": detail, **extra}


def _loc(loc: tuple) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path")]
    return ".".join(parts)


def _message(e: dict[str, Any]) -> str:
    """One error in words a person can act on (Pydantic's wording, minus its internal prefixes)."""
    kind, loc = e.get("type", ""), tuple(e.get("loc", ()))
    if kind == "json_invalid":
        return f"the body is not valid JSON ({e.get('ctx', {}).get('error', 'parse error')}); send a JSON object"
    if loc == ("body",) and kind in ("model_attributes_type", "dict_type", "missing"):
        return "send a JSON object as the body, with content-type: application/json"
    msg = str(e.get("msg", "invalid")).removeprefix("Value error, ")
    where = _loc(loc)
    return f"{where}: {msg}" if where else msg


def describe_validation(errors: list[dict[str, Any]], limit: int = 5) -> str:
    """Pydantic errors as one readable sentence, without the offending values."""
    msgs = list(dict.fromkeys(_message(e) for e in errors[:limit]))
    more = f" (and {len(errors) - limit} more)" if len(errors) > limit else ""
    return "; ".join(msgs) + more if msgs else "invalid request"


async def _app_error(request: Request, exc: AppError) -> JSONResponse:
    return JSONResponse(error_body(exc.detail, **exc.extra), status_code=exc.status, headers=exc.headers)


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    return JSONResponse(error_body(describe_validation(list(exc.errors()))), status_code=422)


async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    detail = exc.detail
    if exc.status_code == 400 and isinstance(exc.__cause__, RecursionError):  # FastAPI's "error parsing the body"
        detail = "the JSON body is nested too deeply to parse; send a model spec as an object with a flat list of layers"
        return JSONResponse(error_body(detail), status_code=422)
    if exc.status_code == 404 and detail == "Not Found":
        detail = f"no such resource: {request.url.path} (see /docs for the API)"
    elif exc.status_code == 405:
        allowed = allowed_methods(request)
        detail = f"{request.method} is not allowed on {request.url.path}; it takes {', '.join(allowed)} (see /docs)"
        return JSONResponse(error_body(detail), status_code=405, headers={"Allow": ", ".join(allowed)})
    return JSONResponse(error_body(str(detail)), status_code=exc.status_code, headers=getattr(exc, "headers", None))


def allowed_methods(request: Request) -> list[str]:
    """Every method the API documents on this path (each route holds one method, so Starlette's
    own 405 names only the first route's)."""
    from app.openapi import methods_for  # the contract knows every operation

    return methods_for(request.app, request.url.path)


def internal_error(method: str, path: str, exc: BaseException) -> JSONResponse:
    """Log ``exc`` under a fresh id and answer a 500 that repeats the id (never the exception's text)."""
    error_id = secrets.token_hex(4)
    log.error("internal error %s on %s %s", error_id, method, path, exc_info=exc)
    return JSONResponse(error_body(f"internal error {error_id}; it was logged"), status_code=500)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    return internal_error(request.method, request.url.path, exc)


class CatchUnexpected:
    """ASGI middleware: an unexpected error in a route becomes `internal_error`'s 500, here.

    Starlette's outermost catch-all answers too but then re-raises, and uvicorn closes the connection
    when an app raises; answering here keeps a keep-alive connection usable for the next request.
    """

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watch(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except Exception as exc:
            if started:  # half an answer is out; nothing sensible can follow it
                raise
            await internal_error(scope.get("method", ""), scope.get("path", ""), exc)(scope, receive, send)


def install_handlers(app: FastAPI) -> None:
    app.add_exception_handler(AppError, _app_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _unexpected)  # errors in the outer middleware
    app.add_middleware(CatchUnexpected)  # added first, so innermost: the security headers still wrap its 500s
