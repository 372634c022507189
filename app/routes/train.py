"""Stepped training, evaluation, the history, a look at the next batch, and inside the learning step."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query

from app.deps import Record, State
from app.encoding import encode_tensor
from app.schemas import EvaluateRequest, GradientsRequest, TrainRequest
from app.services import stepview, training

router = APIRouter(tags=["training"])


@router.post("/models/{model_id}/train", summary="Take training steps (omitted hyperparameters keep their values)")
def train(body: TrainRequest, rec: Record, state: State) -> dict:
    return training.train(state, rec, body.steps, body.changes())


@router.post("/models/{model_id}/evaluate", summary="Loss, accuracy and confusion matrix on a split")
def evaluate(rec: Record, state: State, body: EvaluateRequest | None = None) -> dict:
    body = body or EvaluateRequest()
    with state.cpu.slot():
        return training.evaluate(state, rec, body.split, body.max_examples)


@router.get("/models/{model_id}/history", summary="Every recorded step, evaluation and hyperparameter change")
def history(rec: Record, state: State, layers: Annotated[bool, Query(
        description="also each step's per-layer figures by layer index (absent where not recorded): grad_norm, "
                    "update_ratio (update / weight norm) and dead_relu (share of ReLU units that never fire)")] = False) -> dict:
    with rec.lock.hold(state.settings.lock_wait_s):
        steps = list(rec.history["steps"])
        evaluations, events, step = list(rec.history["evaluations"]), list(rec.history["events"]), rec.step
    if not layers:
        steps = [{k: v for k, v in s.items() if k not in training.LAYER_FIELDS} for s in steps]
    return {"step": step, "steps": steps, "evaluations": evaluations, "events": events}


@router.get("/models/{model_id}/train/batch",
            summary="The batch the next step trains on (augmented if on), with the transforms applied to each image")
def next_batch(rec: Record, state: State, count: Annotated[int, Query(ge=1, le=256)] = 16,
               dtype: Literal["float32", "float16"] = "float32") -> dict:
    body = training.batch_preview(state, rec, count)
    return {**body, "images": encode_tensor(body["images"], dtype)}


@router.post("/models/{model_id}/gradients",
             summary="Inside the learning step for one image and label: every layer's output gradient, each weighted "
                     "layer's weights, dL/dW and last applied update, dead ReLU units, dropout masks")
def gradients(body: GradientsRequest, rec: Record, state: State, dtype: Literal["float32", "float16"] = "float32") -> dict:
    return stepview.gradients(state, rec, body, dtype)
