"""The page: templates/index.html with the server's constants as bootstrap JSON, and its static files."""

from __future__ import annotations

import stat
from pathlib import Path as FilePath

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.staticfiles import NotModifiedResponse, StaticFiles
from starlette.types import Scope

from app.deps import State
from app.routes.colormaps import colormap_table
from engine.jsonio import dumps
from engine.presets import PRESETS
from engine.registry import layer_types as layer_type_facts

router = APIRouter(include_in_schema=False)
FALLBACK = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>CNN visualizer</title></head>
<body><h1>CNN visualizer</h1><p>The page is not built yet; the API is at <a href="/docs">/docs</a>.</p></body></html>"""


def bootstrap_json(state) -> str:
    """Constants for the page, safe inside ``<script type="application/json">`` (no raw < > &)."""
    models = state.models.list()
    shipped = [m for m in models if m.read_only]
    default = next((m for m in shipped if m.id.startswith("tiny-vgg")), shipped[0] if shipped else (models[0] if models else None))
    data = {
        "api_base": "/api/v1",
        "default_model_id": default.id if default else None,
        "default_model_dataset": default.dataset if default else None,  # the page asks for it beside the model
        "layer_types": layer_type_facts(),
        "presets": [{"name": p.name, "title": p.title, "description": p.description, "default_dataset": p.default_dataset,
                     "learning_rate": p.learning_rate} for p in PRESETS.values()],
        "datasets": state.datasets.listing(),
        "limits": {"max_upload_bytes": state.settings.max_upload_bytes, "max_image_side": state.settings.max_image_side},
        "colormaps": colormap_table(),
        "workspaces": bool(state.settings.workspaces),  # the page offers share links only then
    }
    text = dumps(data)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


@router.get("/", response_class=HTMLResponse)
def index(request: Request, state: State) -> HTMLResponse:
    templates = request.app.state.templates
    if templates is None or not (state.settings.web_dir / "templates" / "index.html").is_file():
        return HTMLResponse(FALLBACK)
    return templates.TemplateResponse(request, "index.html", {"bootstrap_json": bootstrap_json(state)})


REVALIDATE = (b"cache-control", b"no-cache")


class PageFiles(StaticFiles):
    """The page's static files (its ES modules, style sheets and icon), answered from memory.

    A page load asks for some eighty small files, and `StaticFiles` answers each with a `FileResponse`
    that stats, opens, reads and closes the file in worker threads: about 1.8 ms of server CPU per
    file here, against about 0.8 ms from memory (``python -m bench page`` times the whole load). So
    a GET for a regular file of at most ``max_file_bytes`` is looked up on the event loop (the same
    `lookup_path`, which keeps requests inside the folder) and answered with bytes read once and
    kept while the file's size and mtime stay the same: one stat per request, so an edited file is
    served at once. The headers are those `FileResponse` gives (type, length, ETag, Last-Modified),
    and If-None-Match / If-Modified-Since get 304 as before. Everything else (HEAD, Range, larger
    files, odd paths, more than ``max_total_bytes`` in memory) goes to `StaticFiles` unchanged.

    Every answer also says ``Cache-Control: no-cache``: a browser may keep a copy but asks first
    (a 304 costs no body), so a page never runs a stale module after an update.
    """

    def __init__(self, *, max_file_bytes: int = 256 * 1024, max_total_bytes: int = 16 * 1024 * 1024, **kwargs):
        super().__init__(**kwargs)
        self.max_file_bytes, self.max_total_bytes = max_file_bytes, max_total_bytes
        self.kept: dict[str, tuple[tuple[int, int], bytes, list[tuple[bytes, bytes]]]] = {}  # path -> (mtime, size), body, headers
        self.kept_bytes = 0

    async def get_response(self, path: str, scope: Scope) -> Response:
        if scope["method"] != "GET" or any(k == b"range" for k, _ in scope["headers"]):
            return await super().get_response(path, scope)
        try:
            full_path, found = self.lookup_path(path)
        except (OSError, ValueError):  # the parent answers these (401, 404 or the error)
            return await super().get_response(path, scope)
        if found is None or not stat.S_ISREG(found.st_mode) or found.st_size > self.max_file_bytes:
            return await super().get_response(path, scope)
        version = (found.st_mtime_ns, found.st_size)
        entry = self.kept.get(full_path)
        if entry is None or entry[0] != version:
            body = await anyio.to_thread.run_sync(FilePath(full_path).read_bytes)
            headers = self.file_response(full_path, found, {**scope, "headers": []}).raw_headers
            if len(body) != found.st_size:  # changed while being read: let StaticFiles answer, keep nothing
                return await super().get_response(path, scope)
            self._forget(full_path)
            if self.kept_bytes + len(body) <= self.max_total_bytes:
                self.kept[full_path], self.kept_bytes = (version, body, headers), self.kept_bytes + len(body)
            return self._answer(body, headers, scope)
        return self._answer(entry[1], entry[2], scope)

    def _forget(self, full_path: str) -> None:
        old = self.kept.pop(full_path, None)
        if old is not None:
            self.kept_bytes -= len(old[1])

    def _answer(self, body: bytes, headers: list[tuple[bytes, bytes]], scope: Scope) -> Response:
        if self.is_not_modified(Headers(raw=headers), Headers(scope=scope)):
            return NotModifiedResponse(Headers(raw=headers))
        response = Response(body)
        response.raw_headers = list(headers)
        return response

    def file_response(self, full_path, stat_result, scope: Scope, status_code: int = 200) -> Response:
        """`StaticFiles.file_response` (a file, or 304) with ``Cache-Control: no-cache`` added."""
        response = super().file_response(full_path, stat_result, scope, status_code)
        if not any(k == b"cache-control" for k, _ in response.raw_headers):
            response.raw_headers.append(REVALIDATE)
        return response
