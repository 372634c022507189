"""Stepped training, evaluation, the history, a look at the next batch, and inside the learning step."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response
from fastapi.responses import StreamingResponse

from app.deps import Record, State
from app.encoding import encode_tensor
from app.schemas import MAX_INT, EvaluateRequest, GradientsRequest, HistoryAnswer, TrainRequest
from app.services import stepview, training
from engine.jsonio import dumps

router = APIRouter(tags=["training"])


@router.post("/models/{model_id}/train", summary="Take training steps (omitted hyperparameters keep their values)")
def train(body: TrainRequest, rec: Record, state: State) -> dict:
    return training.train(state, rec, body.steps, body.changes())


@router.post("/models/{model_id}/evaluate", summary="Loss, accuracy and confusion matrix on a split")
def evaluate(rec: Record, state: State, body: EvaluateRequest | None = None) -> dict:
    body = body or EvaluateRequest()
    with state.cpu.slot():
        return training.evaluate(state, rec, body.split, body.max_examples)


@router.get("/models/{model_id}/history", response_model=HistoryAnswer,
            summary="The recorded steps, evaluations and hyperparameter changes: downsampled, by page, or as CSV",
            description="By default a downsampled history that any length keeps small (what the page draws): at most "
                        "`points` steps; a longer history is cut into equal ranges of steps, each giving its first and "
                        "last step and those with the lowest and highest loss and batch accuracy, so no spike or dip "
                        "is lost. Evaluations are thinned alike (per split) to a sixth of `points`, events to a tenth. With "
                        "`from_step`, every step from there on, `limit` at a time, with the evaluations and events of "
                        "those steps; `next_from_step` asks for the next page. With `format=csv`, everything at once "
                        "as CSV (one row per step, evaluation and event).",
            responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}}})
def history(
    rec: Record, state: State,
    layers: Annotated[bool, Query(description="also each step's per-layer figures by layer index (absent where not "
                                  "recorded): grad_norm, update_ratio (update / weight norm) and dead_relu (share of ReLU "
                                  "units that never fire)")] = False,
    points: Annotated[int | None, Query(ge=12, le=100_000, description="downsampled answer: at most this many steps "
                                        "(default 1000, or 250 with layers=true)")] = None,
    from_step: Annotated[int | None, Query(ge=0, le=MAX_INT, description="every step from this one on, not "
                                           "downsampled; with limit, a page")] = None,
    limit: Annotated[int, Query(ge=1, le=50_000, description="with from_step: steps per page")] = 10_000,
    format: Annotated[Literal["json", "csv"], Query(description="csv: every step, evaluation and event as CSV "
                      "(split,step,epoch,loss,accuracy,learning_rate,time,changes,per_class_accuracy,layers), an "
                      "attachment; points, from_step and limit do not apply")] = "json",
) -> Response:
    if format == "csv":
        return StreamingResponse(training.history_csv(state, rec, layers), media_type="text/csv",
                                 headers={"Content-Disposition": f'attachment; filename="{rec.id}-history.csv"'})
    body = training.history(state, rec, layers=layers, points=points, from_step=from_step, limit=limit)
    return Response(dumps(body), media_type="application/json")


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
