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


@dataclass
class AppState:
    settings: Settings
    models: ModelStore
    datasets: DatasetStore
    images: ImageStore
    cpu: CpuLimiter
    quota: Quota
    live: Any  # app.services.live.LiveRegistry


def get_state(request: Request) -> AppState:
    return request.app.state.cnnvis


def get_record(state: Annotated[AppState, Depends(get_state)],
               model_id: Annotated[str, Path(max_length=64, description="a model id from GET /api/v1/models")]) -> ModelRecord:
    return state.models.get(model_id)


State = Annotated[AppState, Depends(get_state)]
Record = Annotated[ModelRecord, Depends(get_record)]
