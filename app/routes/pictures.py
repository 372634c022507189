"""Pictures of a layer: its filters (as numbers or a PNG grid) and its activations for one image."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Response

from app.deps import Record, State
from app.errors import Invalid
from app.routes.colormaps import Cmap
from app.schemas import InputRef, Sample
from app.services import inference

router = APIRouter(tags=["pictures"])
Index = Annotated[int, Path(ge=0, le=10_000, description="layer index")]
PNG = {"response_class": Response, "responses": {200: {"content": {"image/png": {}}}}}


def _png(data: bytes) -> Response:
    return Response(data, media_type="image/png", headers={"Cache-Control": "no-store"})


@router.get("/models/{model_id}/layers/{index}/filters", summary="A conv layer's weights as T [F, C, kh, kw] or a dense layer's as T [units, D], with the bias")
def filters(rec: Record, state: State, index: Index, dtype: Literal["float32", "float16"] = "float32") -> dict:
    return inference.filters(state, rec, index, dtype)


@router.get("/models/{model_id}/layers/{index}/filters.png", summary="A conv layer's filters as a grid", **PNG)
def filters_png(rec: Record, state: State, index: Index, cmap: Cmap = "auto") -> Response:
    return _png(inference.filters_png(state, rec, index, cmap))


@router.get("/models/{model_id}/layers/{index}/activations.png", summary="Every channel of a layer for one image", **PNG)
def activations_png(rec: Record, state: State, index: Index,
                    image_id: Annotated[str | None, Query(max_length=64)] = None,
                    split: Literal["train", "test"] = "test",
                    sample: Annotated[int | None, Query(ge=0, le=10**9, description="a dataset sample index instead of an image")] = None,
                    cmap: Cmap = "auto") -> Response:
    if (image_id is None) == (sample is None):
        raise Invalid("give exactly one of image_id or sample (with split)")
    ref = InputRef(image_id=image_id) if image_id is not None else InputRef(sample=Sample(split=split, index=sample))
    x, _ = inference.resolve_input(state, rec, ref)
    return _png(inference.activations_png(state, rec, index, x, cmap))
