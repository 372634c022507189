"""The Learn mode's own numbers: a convolution spelled out at a row of positions, dropout's mask, the
learning-rate experiment and localization from Grad-CAM."""

from __future__ import annotations

from fastapi import APIRouter

from app.deps import Record, State
from app.schemas import LearnConvRequest, LearnDropoutRequest, LearnLocalizeRequest, LearnLrRequest
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


@router.post("/models/{model_id}/learn/lr-experiment",
             summary="In-memory copies of the model trained side by side on the same batches with different learning "
                     "rates (default its own /10, x1, x10): their loss curves; nothing is saved")
def learn_lr_experiment(body: LearnLrRequest, rec: Record, state: State) -> dict:
    return learn.lr_experiment_curves(state, rec, body)


@router.post("/models/{model_id}/learn/localize",
             summary="Localization from a classifier: Grad-CAM's map for a class and the box around the spot that holds "
                     "its peak (the cells joined to the peak through cells at or above a share of it)")
def learn_localize(body: LearnLocalizeRequest, rec: Record, state: State) -> dict:
    return learn.localize_box(state, rec, body)
