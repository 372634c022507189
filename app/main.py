"""The ASGI app: `create_app(settings)` wires state, routes, error handlers and middleware.

``app = create_app()`` at import does no heavy work: models are loaded and datasets warmed in the
lifespan, when the server starts.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.templating import Jinja2Templates
from fastapi_offline import FastAPIOffline
from starlette.types import Scope

from app.compression import Compression
from app.concurrency import AdmissionLimit, CpuLimiter
from app.config import Settings, get_settings
from app.deps import AppState
from app import openapi
from app.errors import install_handlers
from app.quota import Quota
from app.routes import (
    checkpoints,
    colormaps,
    datasets,
    export,
    features,
    forward,
    health,
    images,
    learn,
    live,
    models,
    pages,
    pictures,
    train,
)
from app.security import BodyLimit, HostCheck, OriginCheck, SecurityHeaders, host_allowlist, origin_keys
from app.services.live_registry import LiveRegistry
from app.workspaces import Workspaces
from app.stores import DatasetStore, ImageStore, ModelStore
from engine.fileio import remove_stray_temps

log = logging.getLogger("cnnvis")
DESCRIPTION = """See inside a CNN while it works and learns.

**Tensors** are `{"shape": [...], "dtype": "float32" | "float16", "data": "<base64>"}`, the data being the
array's little-endian bytes in C order. **Errors** are `{"detail": "<what to do>"}` (spec errors add
`layer_index`); 503 answers carry `Retry-After`. State-changing requests from another origin get 403.

**Live training**: WebSocket `/api/v1/models/{id}/live`. Send JSON messages
`{"action": "play" | "pause" | "step" | "state", "steps"?: n, <any hyperparameter>?, "eval_every"?: n,
"pin"?: {"image_id": ...} | {"sample": {"split", "index"}} | null, "activations_every_ms"?: n,
"dtype"?: "float32" | "float16", "layers"?: [indices]}`. The server answers `{"type": "state", "playing", "step",
"hyperparameters", ...}` after every message, and sends `{"type": "progress", "step", "loss", "accuracy",
"learning_rate", "steps_per_second", "steps": [every step since the last progress]}` at most ten times a second,
`{"type": "evaluation", ...}` every `eval_every` steps, `{"type": "activations", ...forward response}` for a
pinned image, and `{"type": "error", "detail", "status"}` for a message it cannot follow (the socket stays
open). One connection per model (a second is closed with code 4409); closing the socket pauses training.
Deleting the model (`DELETE /api/v1/models/{id}`) stops its live training, unsaved, and once the model is gone
closes the socket with code 4410, reason `"model deleted"`; do not reconnect.
"""
API = "/api/v1"
ARCHIVE_PATHS = (f"{API}/datasets", f"{API}/models/import")


def clean_temporaries(settings: Settings) -> None:
    """Empty DATA_DIR/tmp and remove the ``.tmp-*`` files of atomic writes a killed server left (at start only)."""
    for path in list(settings.tmp_dir.iterdir()):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    removed = remove_stray_temps(settings.data_dir)
    if removed:
        log.info("removed %d unfinished writes under %s", removed, settings.data_dir)


def make_state(settings: Settings) -> AppState:
    """Create the data folders, clear temporary files and load every model (run in the lifespan, not at import)."""
    for folder in (settings.data_dir, settings.models_dir, settings.datasets_dir, settings.images_dir, settings.import_dir,
                   settings.tmp_dir):
        folder.mkdir(parents=True, exist_ok=True)
    clean_temporaries(settings)
    quota = Quota(settings)
    store = ModelStore(settings, quota)
    store.load()
    datasets = DatasetStore(settings, quota, shared=store.shared_dataset)  # a share link also reads its model's dataset
    state = AppState(settings=settings, models=store, datasets=datasets, images=ImageStore(settings),
                     cpu=CpuLimiter(settings.max_cpu_jobs, settings.cpu_wait_s), quota=quota, live=None)
    pool = None  # LiveRegistry's default: local worker processes
    if settings.ray:
        from app.workers.ray_pool import RayPool  # imports Ray only when it is chosen

        pool = RayPool(settings.ray)
    state.live = LiveRegistry(state, pool)
    return state


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        state = make_state(settings)
        app.state.cnnvis = state
        if settings.warm_datasets:
            state.datasets.warm()
        if settings.warm_worker:
            state.live.pool.warm()
        log.info("cnn-visualizer: %d models in %s", len(state.models.list()), settings.data_dir)
        # Starlette spools uploads over 1 MB to a tempfile with no folder given: put them in DATA_DIR/tmp.
        system_tmp, tempfile.tempdir = tempfile.tempdir, str(settings.tmp_dir)
        try:
            yield
        finally:
            tempfile.tempdir = system_tmp
            state.live.shutdown()

    app = FastAPIOffline(
        title="cnn-visualizer",
        version="1.0.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        openapi_url="/openapi.json",
        redoc_url=None,  # ReDoc fetches its logo from a CDN; /docs (Swagger UI) is fully local
    )
    install_handlers(app)
    openapi.install(app)
    for module in (health, models, images, forward, pictures, colormaps, train, live, checkpoints, export, datasets, features):
        app.include_router(module.router, prefix=API)
    app.include_router(learn.router, prefix=API)
    app.include_router(pages.router)
    templates_dir = settings.web_dir / "templates"
    app.state.templates = Jinja2Templates(directory=str(templates_dir)) if templates_dir.is_dir() else None
    app.mount("/static", pages.PageFiles(directory=str(settings.web_dir / "static"), check_dir=False), name="static")

    def body_limit(scope: Scope) -> int:
        path = scope.get("path", "")
        return settings.max_archive_bytes if path in ARCHIVE_PATHS else settings.max_upload_bytes

    # Added innermost first: compression (none on loopback or for small bodies, else zstd 3 or brotli 1,
    # measured in app/compression.py), the workspace of the request, the body cap, the origin check, the Host allowlist, and outermost
    # the headers every answer carries.
    app.add_middleware(Compression)
    app.add_middleware(Workspaces, settings=settings)  # who is asking (a no-op unless workspaces are on)
    app.add_middleware(BodyLimit, limit_for=body_limit)
    app.add_middleware(OriginCheck, allowed=origin_keys(settings.allowed_origins))
    app.add_middleware(AdmissionLimit, limit=settings.max_in_flight)
    app.add_middleware(HostCheck, allowlist=host_allowlist(settings.allowed_hosts, settings.allowed_origins, settings.bind_host))
    app.add_middleware(SecurityHeaders)
    return app


app = create_app()
