"""Models: presets, layer types, spec validation, and create / list / read / change / delete / reset."""

from __future__ import annotations

from fastapi import APIRouter, Response

from app.deps import Record, State
from app.schemas import CreateModel, PatchModel, ResetRequest, SpecRequest, model_json
from app.services import models as service
from engine.presets import PRESETS
from engine.registry import layer_types as layer_type_facts

router = APIRouter(tags=["models"])


@router.get("/presets", summary="Named architectures to start from")
def presets() -> list[dict]:
    return [{"name": p.name, "title": p.title, "description": p.description, "default_dataset": p.default_dataset,
             "learning_rate": p.learning_rate} for p in PRESETS.values()]


@router.get("/layer-types", summary="Every layer type: title, kind, a one-sentence explanation, its fields "
            "(kind, default or required, min, max, choices), and the parameters and buffers it may hold")
def layer_types() -> list[dict]:
    return layer_type_facts()


@router.post("/specs/validate", summary="Check a spec: its layers' shapes, or {valid: false, detail, layer_index} naming the bad layer")
def validate_spec(body: SpecRequest, state: State) -> dict:
    return service.validate_spec(state, body.spec)


@router.get("/models", summary="Every model, shipped (read-only) ones first")
def list_models(state: State) -> list[dict]:
    return [model_json(r) for r in state.models.list()]


@router.post("/models", status_code=201, summary="Create a model from a preset, a spec, or a copy of another")
def create_model(body: CreateModel, state: State) -> dict:
    with state.cpu.slot():
        return model_json(service.create(state, body))


@router.get("/models/{model_id}", summary="One model")
def get_model(rec: Record) -> dict:
    return model_json(rec)


@router.patch("/models/{model_id}", summary="Rename, change hyperparameters, freeze layers or switch dataset")
def patch_model(body: PatchModel, rec: Record, state: State) -> dict:
    return service.patch(state, rec, body)


@router.delete("/models/{model_id}", status_code=204, summary="Delete a model and its files", description=(
    "Answers 204 at once, also while the model trains live: that training stops first, unsaved, and once the "
    'model is gone its WebSocket `/api/v1/models/{id}/live` is closed with code **4410**, reason `"model deleted"` '
    "(do not reconnect). A shipped, read-only model is 409."))
def delete_model(rec: Record, state: State) -> Response:
    service.delete(state, rec)
    return Response(status_code=204)


@router.post("/models/{model_id}/reset", summary="New weights from a seed; step and history start afresh")
def reset_model(rec: Record, state: State, body: ResetRequest | None = None) -> dict:
    return service.reset(state, rec, body.seed if body else None)


@router.post("/models/{model_id}/share", summary="A read-only share link for a model (workspaces on; its workspace only)",
             description="Answers a new token (the previous one stops working): a request with `?share=<token>` or the "
                         "header `X-Share-Token` may then read the model (GET, forward, explanations, pictures, checkpoint, "
                         "history) and its dataset (`GET /datasets/{name}`, its samples) but not change, train or "
                         "delete either (409 for the model, 404 for the dataset). 409 too for a shipped or shared-with-you model, or "
                         "when the server runs without workspaces.")
def share_model(rec: Record, state: State) -> dict:
    return service.share(state, rec)
