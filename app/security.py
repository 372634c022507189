"""Four pure-ASGI middlewares: security headers, a Host allowlist, a same-origin check, and a request-body cap.

- `SecurityHeaders`: a Content-Security-Policy on every HTTP response (relaxed on /docs
  only, whose offline Swagger/ReDoc pages need one inline script and inline styles).
- `HostCheck`: every request and WebSocket handshake whose ``Host`` names a host outside the
  allowlist (`host_allowlist`) gets 400, so DNS rebinding (evil.example resolving to 127.0.0.1,
  with a matching Origin) cannot reach the API.
- `OriginCheck`: a state-changing request (POST, PUT, PATCH, DELETE, and every WebSocket handshake)
  whose ``Origin`` header is present and names another scheme, host or port than the request gets 403.
- `BodyLimit`: 413 as soon as ``Content-Length`` or the bytes received so far pass the cap,
  without reading the rest of the body.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from engine.jsonio import dumps

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


async def send_json(send: Send, status: int, detail: str, headers: list[tuple[bytes, bytes]] | None = None,
                    kind: str = "http") -> None:
    """A ``{"detail": ...}`` answer; ``kind="websocket"`` sends it as a handshake's denial response."""
    body = dumps({"detail": detail}).encode()
    prefix = "websocket.http" if kind == "websocket" else "http"
    await send({
        "type": f"{prefix}.response.start",
        "status": status,
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *(headers or [])],
    })
    await send({"type": f"{prefix}.response.body", "body": body})


def _security_headers(csp: str) -> tuple[tuple[bytes, bytes], ...]:
    return ((b"content-security-policy", csp.encode()), (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"same-origin"), (b"x-frame-options", b"DENY"))


class SecurityHeaders:
    """Adds each of `_security_headers` that a response does not set itself (the lists are built once)."""

    def __init__(self, app: ASGIApp):
        self.app = app
        self.page_headers, self.docs_headers = _security_headers(CSP), _security_headers(DOCS_CSP)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        extra = self.docs_headers if scope.get("path", "").startswith(DOCS_PATHS) else self.page_headers

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {k.lower() for k, _ in headers}
                headers.extend(h for h in extra if h[0] not in names)
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


async def refuse(scope: Scope, receive: Receive, send: Send, status: int, detail: str) -> None:
    """Answer ``status`` with a JSON ``detail``. A WebSocket handshake is refused before accept: with
    the same status and body where the server offers the ``websocket.http.response`` extension
    (uvicorn and Starlette's TestClient do), else by a plain close, which the server answers with 403."""
    if scope["type"] != "websocket":
        return await send_json(send, status, detail)
    await receive()  # the websocket.connect message
    if "websocket.http.response" in (scope.get("extensions") or {}):
        return await send_json(send, status, detail, kind="websocket")
    await send({"type": "websocket.close", "code": 4000 + status, "reason": "refused"})


HOST_RE = re.compile(r"([a-z0-9_.-]+)(?::[0-9]*)?")
BRACKETED_RE = re.compile(r"\[([0-9a-f:.]+)\](?::[0-9]*)?")
ALL_ADDRESSES = frozenset({"", "0.0.0.0", "::"})


def host_name(host: str) -> str | None:
    """The name in a ``Host`` header (``name[:port]`` or ``[v6]:port``): lower case, without port or
    trailing dot, an IP address in its compressed form without brackets; None when malformed."""
    host = host.strip().lower()
    match = BRACKETED_RE.fullmatch(host) or HOST_RE.fullmatch(host)
    if match is None:
        return None
    name = match.group(1).rstrip(".")
    try:
        return str(ipaddress.ip_address(name))
    except ValueError:
        return None if host.startswith("[") or not name else name


def _entry_name(entry: str) -> str | None:
    """An allowlist entry: a name or address, bare IPv6 (``::1``) accepted too."""
    try:
        return str(ipaddress.ip_address(entry.strip()))
    except ValueError:
        return host_name(entry)


def is_loopback(name: str) -> bool:
    try:
        return ipaddress.ip_address(name).is_loopback  # 127.0.0.0/8 and ::1
    except ValueError:
        return name == "localhost"


@dataclass(frozen=True)
class HostAllowlist:
    """Names a request's ``Host`` may give besides the loopback ones (localhost, 127.x.x.x, ::1).
    ``any_host`` ("*") turns the check off; ``all_addresses`` (bound to 0.0.0.0 or ::) only makes
    the refusal say that the machine's LAN name must be listed."""

    names: frozenset[str] = frozenset()
    any_host: bool = False
    all_addresses: bool = False

    def allows(self, host: str | None) -> bool:
        name = None if host is None else host_name(host)
        return self.any_host or (name is not None and (is_loopback(name) or name in self.names))

    def refusal(self, host: str | None) -> str:
        if host is None:
            return "the request has no Host header (an HTTP/1.0 client?); send one naming this server, e.g. Host: localhost"
        also = "".join(f", {n}" for n in sorted(self.names) if not is_loopback(n))
        detail = (f"Host {host[:100]!r} is not allowed: this server answers to localhost, 127.0.0.1 and [::1]{also} "
                  "(a guard against DNS rebinding); to reach it by this name, add the name to CNNVIS_ALLOWED_HOSTS "
                  "(comma-separated; * allows any host, which is unsafe)")
        if self.all_addresses:
            detail += "; the server listens on every address, so a LAN name or address it is reached by must be listed there"
        return detail


def host_allowlist(hosts: tuple[str, ...] = (), origins: tuple[str, ...] = (), bind: str | None = None) -> HostAllowlist:
    """The allowlist from ``CNNVIS_ALLOWED_HOSTS`` (``hosts``), the hosts of ``CNNVIS_ALLOWED_ORIGINS``
    and the address the server is bound to, when it is one; ValueError naming any bad entry of ``hosts``."""
    if "*" in hosts:
        return HostAllowlist(any_host=True)
    names = {e: _entry_name(e) for e in hosts}
    bad = [e for e, n in names.items() if n is None]
    if bad:
        raise ValueError(f"CNNVIS_ALLOWED_HOSTS must list host names or addresses like cnn.example.org, got {', '.join(bad)}")
    from_origins = (_entry_name(urlsplit(o).hostname or "") for o in origins)
    everywhere = bind is not None and bind.strip() in ALL_ADDRESSES
    bound = _entry_name(bind) if bind is not None and not everywhere else None
    allowed = {n for n in (*names.values(), *from_origins, bound) if n is not None}
    return HostAllowlist(frozenset(allowed), all_addresses=everywhere)


class HostCheck:
    """400 (`refuse`: before accept for a WebSocket) for any request whose ``Host`` is missing or
    not in ``allowlist``, so a page on another name that resolves to this machine cannot use it."""

    def __init__(self, app: ASGIApp, allowlist: HostAllowlist):
        self.app = app
        self.allowlist = allowlist
        self.last: tuple[str | None, bool] = (None, False)  # the last Host seen and its verdict (`allows`)

    def allows(self, host: str | None) -> bool:
        """`HostAllowlist.allows`, remembered for the last Host value: nearly every request repeats
        it, and parsing it (a regex and an IP address) was the costliest part of the checks here."""
        seen, verdict = self.last
        if host is None or host != seen:
            verdict = self.allowlist.allows(host)
            self.last = (host, verdict)
        return verdict

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            host = Headers(scope=scope).get("host")
            if not self.allows(host):
                return await refuse(scope, receive, send, 400, self.allowlist.refusal(host))
        await self.app(scope, receive, send)


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


def request_scheme(scope: Scope) -> str:
    """``http`` or ``https`` for a request or WebSocket handshake (ws -> http, wss -> https). Behind
    a TLS proxy, uvicorn's --proxy-headers sets the scope's scheme from X-Forwarded-Proto (trusted
    from --forwarded-allow-ips only); otherwise list the proxy's public origin in CNNVIS_ALLOWED_ORIGINS."""
    return "https" if scope.get("scheme") in ("https", "wss") else "http"


def origin_matches(origin: str, host: str, scheme: str = "http") -> bool:
    """True when the ``Origin`` URL names the same scheme, host and port as the request (``scheme``
    from `request_scheme`, ``host`` its ``Host`` header): https://localhost is not http://localhost."""
    key = _origin_key(origin)
    return key is not None and key == _origin_key(f"{scheme}://{host}")


def origin_keys(origins: tuple[str, ...]) -> frozenset[str]:
    """The allowed origins in the form `OriginCheck` compares; ValueError naming any that is not an http(s) URL."""
    keys = {o: _origin_key(o) for o in origins}
    bad = [o for o, k in keys.items() if k is None]
    if bad:
        raise ValueError(f"CNNVIS_ALLOWED_ORIGINS must list http(s) origins like https://example.org, got {', '.join(bad)}")
    return frozenset(keys.values())  # type: ignore[arg-type]


class OriginCheck:
    """``allowed`` (from `origin_keys`): origins accepted besides the request's own, e.g. the public
    URL of a reverse proxy that passes on a different Host (``CNNVIS_ALLOWED_ORIGINS``)."""

    def __init__(self, app: ASGIApp, allowed: frozenset[str] = frozenset()):
        self.app = app
        self.allowed = allowed
        self.last: tuple[tuple[str, str, str] | None, bool] = (None, False)  # as in `HostCheck.allows`

    def _accepts(self, origin: str, host: str, scheme: str) -> bool:
        """Whether ``origin`` may change state here; the verdict for the last (origin, host, scheme) is kept."""
        key = (origin, host, scheme)
        seen, verdict = self.last
        if key != seen:
            verdict = origin_matches(origin, host, scheme) or _origin_key(origin) in self.allowed
            self.last = (key, verdict)
        return verdict

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "websocket" or (kind == "http" and scope.get("method") in UNSAFE_METHODS):
            headers = Headers(scope=scope)
            origin, host, scheme = headers.get("origin"), headers.get("host", ""), request_scheme(scope)
            if origin is not None and not self._accepts(origin, host, scheme):
                detail = (f"cross-origin request refused: Origin {origin!r} does not match {scheme}://{host} "
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
