"""The Learn mode's engine calls (one each, under the model's lock): a convolution at one row of
positions, dropout's random mask on one image's maps, the learning-rate experiment (in-memory copies:
nothing to clean up) and localization from Grad-CAM."""

from __future__ import annotations

from typing import Any

from app.deps import AppState
from app.encoding import encode_tensor
from app.errors import Conflict, Invalid, NotFound
from app.schemas import LearnConvRequest, LearnDropoutRequest, LearnLocalizeRequest, LearnLrRequest
from app.services.inference import resolve_input
from app.services.training import finite
from app.stores import ModelRecord
from engine.explain import grad_cam
from engine.learn import conv_positions, dropout_demo, localize, lr_experiment


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


def lr_experiment_curves(state: AppState, rec: ModelRecord, body: LearnLrRequest) -> dict[str, Any]:
    """Three (or the given) in-memory copies of the model trained side by side on the same batches,
    one per learning rate: their loss curves. The model itself, its history and disk are untouched."""
    if rec.dataset is None:
        raise Conflict(f"model {rec.id!r} has no dataset to train on; PATCH it with a compatible \"dataset\"")
    dataset = state.datasets.get(rec.dataset)
    with rec.lock.hold(state.settings.lock_wait_s):
        model, hp, seed, step, seen = rec.model.copy(), rec.hp, rec.seed, rec.step, rec.examples_seen
    lr = hp.learning_rate
    rates = body.rates or [lr / 10, lr, min(lr * 10, 10.0)]
    with state.cpu.slot():
        try:
            curves = lr_experiment(model, dataset, hp, rates, body.steps, seed=seed, step=step, examples_seen=seen)
        except ValueError as e:
            raise Invalid(str(e)) from None
    return {"step": step, "steps": body.steps, "optimizer": hp.optimizer, "batch_size": hp.batch_size, "base_rate": lr,
            "curves": [{"learning_rate": c.learning_rate, "loss": [finite(v) for v in c.losses],
                        "final_accuracy": finite(c.final_accuracy)} for c in curves],
            "copies": "made in memory and dropped after the run: nothing was saved"}


def localize_box(state: AppState, rec: ModelRecord, body: LearnLocalizeRequest) -> dict[str, Any]:
    """Grad-CAM at the last layer with feature maps, upsampled to the input, and the box around the cells
    joined to its peak through cells at or above the threshold (``hot`` counts every such cell)."""
    x, _ = resolve_input(state, rec, body)
    with rec.lock.hold(state.settings.lock_wait_s):
        model, classes = rec.model.copy(), list(rec.classes)
    with state.cpu.slot():
        try:
            cam, target, layer = grad_cam(model, x, None, body.target)
            box = localize(cam, body.threshold)
        except ValueError as e:
            raise Invalid(str(e)) from None
    return {"target": target, "class": classes[target] if target < len(classes) else str(target), "layer": layer,
            "threshold": body.threshold, "map": encode_tensor(cam),
            "box": None if box is None else {"top": box.top, "left": box.left, "bottom": box.bottom, "right": box.right,
                                             "cells": box.cells, "hot": box.hot, "peak": box.peak, "peak_row": box.peak_row,
                                             "peak_col": box.peak_col, "cutoff": box.threshold}}
