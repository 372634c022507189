"""Three pure-ASGI middlewares: security headers, a same-origin check, and a request-body cap.

- `SecurityHeaders`: a Content-Security-Policy on every HTTP response (relaxed on /docs
  only, whose offline Swagger/ReDoc pages need one inline script and inline styles).
- `OriginCheck`: a state-changing request (POST, PUT, PATCH, DELETE, and every WebSocket handshake)
  whose ``Origin`` header is present and names another host than ``Host`` gets 403.
- `BodyLimit`: 413 as soon as ``Content-Length`` or the bytes received so far pass the cap,
  without reading the rest of the body.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSP = (
    "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; object-src 'none'; frame-ancestors 'none'; base-uri 'self'"
)
DOCS_CSP = (
    "default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self' 'unsafe-inline'; connect-src 'self'; worker-src 'self' blob:; object-src 'none'; "
    "frame-ancestors 'none'; base-uri 'self'"
)
DOCS_PATHS = ("/docs",)
UNSAFE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


async def send_json(send: Send, status: int, detail: str, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *(headers or [])],
    })
    await send({"type": "http.response.body", "body": body})


class SecurityHeaders:
    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope.get("path", "")
        csp = DOCS_CSP if path.startswith(DOCS_PATHS) else CSP

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {k.lower() for k, _ in headers}
                for name, value in (
                    (b"content-security-policy", csp.encode()),
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"same-origin"),
                    (b"x-frame-options", b"DENY"),
                ):
                    if name not in names:
                        headers.append((name, value))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _origin_key(url: str) -> str | None:
    """``scheme://host:port`` of an http(s) origin (default port filled in), or None."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:  # a port that is not a number
        return None
    return f"{parts.scheme}://{parts.hostname}:{port}".lower()


def origin_matches(origin: str, host: str) -> bool:
    """True when the ``Origin`` URL names the same host (and port) as the ``Host`` header."""
    key = _origin_key(origin)
    if key is None:
        return False
    scheme = key.split(":", 1)[0]
    return key == _origin_key(f"{scheme}://{host}")


def origin_keys(origins: tuple[str, ...]) -> frozenset[str]:
    """The allowed origins in the form `OriginCheck` compares; ValueError naming any that is not an http(s) URL."""
    keys = {o: _origin_key(o) for o in origins}
    bad = [o for o, k in keys.items() if k is None]
    if bad:
        raise ValueError(f"CNNVIS_ALLOWED_ORIGINS must list http(s) origins like https://example.org, got {', '.join(bad)}")
    return frozenset(keys.values())  # type: ignore[arg-type]


class OriginCheck:
    """``allowed`` (from `origin_keys`): origins accepted besides the Host's own, e.g. the public
    URL of a reverse proxy that passes on a different Host (``CNNVIS_ALLOWED_ORIGINS``)."""

    def __init__(self, app: ASGIApp, allowed: frozenset[str] = frozenset()):
        self.app = app
        self.allowed = allowed

    def _accepts(self, origin: str, host: str) -> bool:
        return origin_matches(origin, host) or _origin_key(origin) in self.allowed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "websocket" or (kind == "http" and scope.get("method") in UNSAFE_METHODS):
            headers = Headers(scope=scope)
            origin, host = headers.get("origin"), headers.get("host", "")
            if origin is not None and not self._accepts(origin, host):
                detail = (f"cross-origin request refused: Origin {origin!r} does not match Host {host!r} "
                          "(behind a proxy, list its public origin in CNNVIS_ALLOWED_ORIGINS)")
                if kind == "websocket":
                    await receive()  # the websocket.connect message
                    await send({"type": "websocket.close", "code": 4403, "reason": "cross-origin"})
                    return
                return await send_json(send, 403, detail)
        await self.app(scope, receive, send)


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int):
        super().__init__(413, f"the request body is larger than the {limit / 1048576:g} MB limit")


class BodyLimit:
    """``limit_for(scope) -> bytes`` picks the cap per request (archives get a larger one)."""

    def __init__(self, app: ASGIApp, limit_for: Callable[[Scope], int]):
        self.app = app
        self.limit_for = limit_for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = self.limit_for(scope)
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            return await send_json(send, 413, BodyTooLarge(limit).detail, [(b"connection", b"close")])
        seen = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge(limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge as exc:
            if started:
                raise
            await send_json(send, 413, exc.detail, [(b"connection", b"close")])
