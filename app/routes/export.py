"""Export: download a model as an ONNX file (onnxruntime, Netron); the ``onnx`` extra must be installed."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response

from app.deps import Record, State
from app.errors import AppError, Invalid
from engine.export_onnx import MEDIA_TYPE, ExportError, OnnxMissing, onnx_bytes

router = APIRouter(tags=["checkpoints"])


@router.get("/models/{model_id}/export", summary="The model as an ONNX file (runs in onnxruntime, opens in Netron)",
            description="Input `input` (batch, C, H, W) float32 with a dynamic batch; output `output`; the class names "
            "(a JSON list), model id, name and spec in `metadata_props`. Dropout is an identity and batch norm uses its "
            "running statistics. 501 when the server lacks the onnx extra; 422 names a layer that cannot be exported.",
            response_class=Response, responses={200: {"content": {MEDIA_TYPE: {}}}})
def export(rec: Record, state: State,
           format: Annotated[Literal["onnx"], Query(description="the file format; only onnx for now")] = "onnx") -> Response:
    try:
        with rec.lock.hold(state.settings.lock_wait_s):
            data = onnx_bytes(rec.model, classes=rec.classes, model_id=rec.id, name=rec.name)
    except ExportError as e:
        raise Invalid(e.message, layer_index=e.layer_index) from None
    except OnnxMissing as e:
        raise AppError(str(e), status=501) from None
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", rec.name).strip("-.")[:60] or rec.id
    return Response(data, media_type=MEDIA_TYPE, headers={"Content-Disposition": f'attachment; filename="{safe}.onnx"'})
