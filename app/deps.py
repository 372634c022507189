"""The server's state (one `AppState` on ``app.state.cnnvis``, made in the lifespan) and the
dependencies routes use to reach it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Path, Request

from app.concurrency import CpuLimiter
from app.config import Settings
from app.quota import Quota
from app.stores import DatasetStore, ImageStore, ModelRecord, ModelStore
from app.workspaces import Viewer, viewer


@dataclass
class AppState:
    settings: Settings
    models: ModelStore
    datasets: DatasetStore
    images: ImageStore
    cpu: CpuLimiter
    quota: Quota
    live: Any  # app.services.live_registry.LiveRegistry


# The dependencies are `async def` so that FastAPI runs them on the event loop: a plain `def` one is
# sent to the thread pool, a hop that costs more than the attribute read or the dict lookup (its
# lock held for microseconds) it wraps (python -m bench api).


async def get_state(request: Request) -> AppState:
    return request.app.state.cnnvis


async def get_record(state: Annotated[AppState, Depends(get_state)],
                     model_id: Annotated[str, Path(max_length=64, description="a model id from GET /api/v1/models")]) -> ModelRecord:
    """The model, as the request's viewer may see it (`app.workspaces`): another workspace's is 404, as a
    missing id; one opened by its share token is a read-only view."""
    return state.models.get(model_id)


State = Annotated[AppState, Depends(get_state)]
Record = Annotated[ModelRecord, Depends(get_record)]
Who = Annotated[Viewer, Depends(viewer)]  # the request's workspace (app.workspaces)
