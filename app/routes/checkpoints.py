"""Checkpoints: download a model as the engine's .npz, or import one as a new model."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Response, UploadFile

from app.deps import Record, State
from app.schemas import model_json
from app.services import models as service

router = APIRouter(tags=["checkpoints"])


@router.get("/models/{model_id}/checkpoint", summary="The model as a .npz checkpoint", response_class=Response,
            responses={200: {"content": {"application/octet-stream": {}}}})
def download(rec: Record, state: State) -> Response:
    data, filename = service.export_checkpoint(state, rec)
    return Response(data, media_type="application/octet-stream",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


@router.post("/models/import", status_code=201, summary="Import a .npz checkpoint as a new model")
def import_checkpoint(state: State, file: Annotated[UploadFile, File(description="a .npz checkpoint")]) -> dict:
    data = file.file.read(state.settings.max_archive_bytes + 1)
    with state.cpu.slot():
        return model_json(service.import_checkpoint(state, data, file.filename))
