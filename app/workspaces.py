"""Private workspaces on a shared server (``CNNVIS_WORKSPACES=1`` or ``cnnvis serve --workspaces``).

Off (the default), every request is `EVERYONE` and nothing changes. On, each request is one `Viewer`:

- a browser's workspace is named by a random token (``secrets.token_urlsafe(32)``) in the cookie
  ``cnnvis_ws`` (HttpOnly, SameSite=Strict, Path=/, Secure over https), set on the first response to a
  request that lacks a well-formed one; an API client may send ``Authorization: Bearer <token>``
  instead. The server keeps no list of tokens: the workspace id is HMAC-SHA256(server key, token),
  the key written once (atomically) to ``DATA_DIR/workspaces.key``. A missing or malformed token
  simply gets a new workspace; a cross-site navigation (``Sec-Fetch-Site: cross-site``, which
  SameSite=Strict sends without the cookie) gets a throw-away one and no cookie, so following a link
  to the server does not replace the browser's workspace.
- ``CNNVIS_TEACHER_TOKEN`` (as Bearer or cookie) sees and manages every workspace.
- ``?share=<token>`` or ``X-Share-Token`` carries a model's share-link token (`share_hash` of it is
  what the model's checkpoint keeps); that model is then readable, read-only.

`Workspaces` (pure ASGI middleware) puts the viewer in ``scope["state"]["viewer"]`` (the `viewer`
dependency reads it) and in a context variable for the request's duration, which the stores read
(`current`) so routes that fetch by id need no change: a store answers another workspace's item as
missing (404, never 403). Threads the server starts itself (live training, warming) run outside any
request and see everything.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs

from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.config import Settings

COOKIE = "cnnvis_ws"
COOKIE_MAX_AGE = 400 * 24 * 3600  # the longest browsers keep a cookie
TEACHER = "teacher"  # the owner of what the teacher makes (not a possible HMAC id)
KEY_FILE = "workspaces.key"
TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{43}$")  # secrets.token_urlsafe(32)
OWNER_RE = re.compile(r"^(?:[0-9a-f]{32}|teacher)$")


@dataclass(frozen=True)
class Viewer:
    """Who a request acts for: ``workspace`` owns what it makes (None: workspaces are off);
    ``teacher`` sees and manages everything; ``share`` is the hash of a share token it carries."""

    workspace: str | None
    teacher: bool = False
    share: str | None = None

    def owns(self, owner: str | None) -> bool:
        """Whether this viewer may see and change an item owned by ``owner`` (None: made before workspaces)."""
        return self.teacher or (owner is not None and owner == self.workspace)

    @property
    def scoped(self) -> bool:
        """True when quotas and listings count only this workspace's own items."""
        return self.workspace is not None and not self.teacher


EVERYONE = Viewer(None, teacher=True)  # workspaces off, or the server's own threads
_current: ContextVar[Viewer] = ContextVar("cnnvis_viewer", default=EVERYONE)


def current() -> Viewer:
    """The viewer of the request being handled (`EVERYONE` outside a request or with workspaces off)."""
    return _current.get()


async def viewer(conn: HTTPConnection) -> Viewer:
    """FastAPI dependency: the request's viewer (`async`: on the event loop, as `app.deps` says why)."""
    return conn.scope.get("state", {}).get("viewer", EVERYONE)


def share_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()[:32]


def new_share_token() -> str:
    return secrets.token_urlsafe(24)


def valid_owner(value: object) -> str | None:
    """An owner id read from a file, or None when absent or malformed."""
    return value if isinstance(value, str) and OWNER_RE.match(value) else None


def server_key(data_dir: Path) -> bytes:
    """The HMAC key in ``DATA_DIR/workspaces.key``, made once: written beside, then hard-linked into
    place (which fails if another process won the race; its key is then read)."""
    path = Path(data_dir) / KEY_FILE
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".tmp-{KEY_FILE}-{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, secrets.token_bytes(32))
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink(missing_ok=True)
    key = path.read_bytes()
    if len(key) < 32:
        raise RuntimeError(f"{path} is damaged (fewer than 32 bytes); delete it (every workspace then starts afresh)")
    return key


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


def _cookie(header: str, name: str) -> str | None:
    for part in header.split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value.strip().strip('"')
    return None


class Workspaces:
    """ASGI middleware naming each request's `Viewer` (a pass-through when workspaces are off)."""

    def __init__(self, app: ASGIApp, settings: Settings):
        self.app = app
        self.enabled = settings.workspaces
        self.teacher = (settings.teacher_token or "").encode()
        self.data_dir = Path(settings.data_dir)
        self._key: bytes | None = None

    def workspace_id(self, token: str) -> str:
        if self._key is None:
            self._key = server_key(self.data_dir)
        return hmac.new(self._key, token.encode(), hashlib.sha256).hexdigest()[:32]

    def identify(self, scope: Scope) -> tuple[Viewer, str | None]:
        """The request's viewer, and the token of a new workspace whose cookie the answer should set."""
        headers = _headers(scope)
        scheme, _, value = headers.get("authorization", "").partition(" ")
        bearer = value.strip() if scheme.lower() == "bearer" else None
        cookie = _cookie(headers.get("cookie", ""), COOKIE)
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        share_token = headers.get("x-share-token") or (query.get("share") or [None])[0]
        share = share_hash(share_token) if share_token and len(share_token) <= 200 else None
        if self.teacher and any(t and hmac.compare_digest(t.encode(), self.teacher) for t in (bearer, cookie)):
            return Viewer(TEACHER, teacher=True, share=share), None
        token = next((t for t in (bearer, cookie) if t and TOKEN_RE.match(t)), None)
        fresh = None
        if token is None:
            token = secrets.token_urlsafe(32)
            cross_site = headers.get("sec-fetch-site") == "cross-site"
            fresh = None if cross_site or scope["type"] != "http" else token
        return Viewer(self.workspace_id(token), share=share), fresh

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self.enabled or scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        who, fresh = self.identify(scope)
        scope.setdefault("state", {})["viewer"] = who
        if fresh is not None:
            cookie = f"{COOKIE}={fresh}; Path=/; Max-Age={COOKIE_MAX_AGE}; HttpOnly; SameSite=Strict"
            if scope.get("scheme") == "https":
                cookie += "; Secure"
            inner = send

            async def send(message: Message) -> None:  # noqa: F811  the same send, with the cookie
                if message["type"] == "http.response.start":
                    message = {**message, "headers": [*message.get("headers", []), (b"set-cookie", cookie.encode())]}
                await inner(message)

        token = _current.set(who)
        try:
            await self.app(scope, receive, send)
        finally:
            _current.reset(token)
