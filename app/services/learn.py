"""The Learn mode's engine calls (one each, under the model's lock): a convolution at one row of
positions, and dropout's random mask on one image's maps."""

from __future__ import annotations

from typing import Any

from app.deps import AppState
from app.encoding import encode_tensor
from app.errors import Invalid, NotFound
from app.schemas import LearnConvRequest, LearnDropoutRequest
from app.services.inference import resolve_input
from app.stores import ModelRecord
from engine.learn import conv_positions, dropout_demo


def _check_layer(rec: ModelRecord, index: int) -> None:
    n = len(rec.model.layers)
    if not 0 <= index < n:
        raise NotFound(f"layer {index} does not exist; this model has layers 0 to {n - 1}")


def conv(state: AppState, rec: ModelRecord, body: LearnConvRequest) -> dict[str, Any]:
    """The input window, kernel, products, sum, bias, sum plus bias and the model's activation at
    each position of one output row (or one position)."""
    x, _ = resolve_input(state, rec, body)
    with state.cpu.slot(), rec.lock.hold(state.settings.lock_wait_s):
        _check_layer(rec, body.layer)
        try:
            lesson = conv_positions(rec.model, x, body.layer, body.filter, body.row, None if body.col is None else [body.col])
        except ValueError as e:
            raise Invalid(str(e)) from None
        step = rec.step
    return {
        "step": step, "layer": lesson.layer, "filter": lesson.filter, "row": body.row, "stride": lesson.stride,
        "padding": list(lesson.pads), "kernel_size": int(lesson.kernel.shape[1]), "input_shape": list(lesson.input_shape),
        "output_shape": list(lesson.output_shape), "kernel": lesson.kernel.tolist(), "bias": lesson.bias,
        "positions": [{"row": p.row, "col": p.col, "top": p.top, "left": p.left, "window": p.window.tolist(),
                       "products": p.products.tolist(), "sum": p.sum, "total": p.total, "activation": p.activation}
                      for p in lesson.positions],
    }  # fmt: skip


def dropout(state: AppState, rec: ModelRecord, body: LearnDropoutRequest) -> dict[str, Any]:
    """Dropout's keep mask, training output and evaluation output (tensors) for one image and seed."""
    x, _ = resolve_input(state, rec, body)
    with state.cpu.slot(), rec.lock.hold(state.settings.lock_wait_s):
        _check_layer(rec, body.layer)
        try:
            d = dropout_demo(rec.model, x, body.layer, body.rate, body.seed)
        except ValueError as e:
            raise Invalid(str(e)) from None
        step = rec.step
    return {"step": step, "layer": d.layer, "rate": d.rate, "seed": d.seed, "in_model": d.in_model,
            "scale": 1.0 / (1.0 - d.rate), "kept": int(d.keep.sum()), "count": int(d.keep.size),
            "before": encode_tensor(d.before), "keep": encode_tensor(d.keep), "train": encode_tensor(d.train),
            "evaluation": encode_tensor(d.evaluation)}
