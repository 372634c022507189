"""The page: templates/index.html with the server's constants as bootstrap JSON."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

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
        "layer_types": layer_type_facts(),
        "presets": [{"name": p.name, "title": p.title, "description": p.description, "default_dataset": p.default_dataset,
                     "learning_rate": p.learning_rate} for p in PRESETS.values()],
        "datasets": state.datasets.listing(),
        "limits": {"max_upload_bytes": state.settings.max_upload_bytes, "max_image_side": state.settings.max_image_side},
        "colormaps": colormap_table(),
    }
    text = dumps(data)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


@router.get("/", response_class=HTMLResponse)
def index(request: Request, state: State) -> HTMLResponse:
    templates = request.app.state.templates
    if templates is None or not (state.settings.web_dir / "templates" / "index.html").is_file():
        return HTMLResponse(FALLBACK)
    return templates.TemplateResponse(request, "index.html", {"bootstrap_json": bootstrap_json(state)})
