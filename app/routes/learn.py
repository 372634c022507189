"""The Learn mode's own numbers: a convolution spelled out at a row of positions, and dropout's mask."""

from __future__ import annotations

from fastapi import APIRouter

from app.deps import Record, State
from app.schemas import LearnConvRequest, LearnDropoutRequest
from app.services import learn

router = APIRouter(tags=["learn"])


@router.post("/models/{model_id}/learn/conv",
             summary="One filter of a conv layer at one output row (or position): windows, kernel, products, sums and the model's activations")
def learn_conv(body: LearnConvRequest, rec: Record, state: State) -> dict:
    return learn.conv(state, rec, body)


@router.post("/models/{model_id}/learn/dropout",
             summary="Dropout in training mode on one image's maps, with a seed: the keep mask, the scaled output and the evaluation output")
def learn_dropout(body: LearnDropoutRequest, rec: Record, state: State) -> dict:
    return learn.dropout(state, rec, body)
