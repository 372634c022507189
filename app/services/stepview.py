"""The step view of one image (POST .../gradients): what the loss says to every layer and weight.

The weights are copied under the model's lock with the last update the trainer applied (kept in
memory only: after a restart, or a reset, there is none until the next step), then the gradients
are computed on the copy in a CPU slot, so live training is held up only for the copy.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from app.deps import AppState
from app.encoding import encode_tensor
from app.errors import Invalid
from app.schemas import GradientsRequest
from app.services.inference import resolve_input
from app.services.training import finite
from app.stores import ModelRecord
from engine.data.dataset import to_float
from engine.stepview import RATIO_HEALTHY, dead_relu, dropout_masks, step_view

MAX_DEAD_RELU_BATCH = 256
NO_UPDATE = ("No update to show: the server keeps the last step's update in memory only, so there is none "
             "after a restart, a reset or a dataset change until the model takes its next step.")
DROPOUT_NOTE = ("A fresh mask drawn for this image the way the last step drew its masks (same seed). The step "
                "itself drew one mask per image of its batch and did not keep them, so this is an example of "
                "what dropout does, not the mask this image got.")


def _clean(a: np.ndarray) -> np.ndarray:
    return np.nan_to_num(a, nan=0.0, posinf=0.0, neginf=0.0)


def gradients(state: AppState, rec: ModelRecord, ref: GradientsRequest, dtype: str = "float32") -> dict[str, Any]:
    """Every layer's output gradient for one image and its label; weights, dL/dW and the last applied
    update per weighted layer; dead ReLU units on a training batch; dropout masks."""
    x, sample_label = resolve_input(state, rec, ref)
    label = ref.label if ref.label is not None else sample_label
    k = rec.model.output_shape[0]
    if label is None:
        raise Invalid("an uploaded image needs a label: the class the loss is taken against")
    if not 0 <= label < k:
        raise Invalid(f"label must be a class index from 0 to {k - 1}, got {label}")
    batch = None
    if rec.dataset is not None:
        xs, _ = state.datasets.get(rec.dataset).split("train")
        batch = to_float(xs[: min(rec.hp.batch_size, MAX_DEAD_RELU_BATCH)])
    with rec.lock.hold(state.settings.lock_wait_s):
        model, step, seed, loss, classes = rec.model.copy(), rec.step, rec.seed, rec.hp.loss, list(rec.classes)
        t = rec.trainer
        update = t.last_update if t is not None and t.last_update_step == rec.step else None  # replaced, never mutated
    with state.cpu.slot():
        try:
            view = step_view(model, x, label, loss=loss)
        except ValueError as e:
            raise Invalid(str(e)) from None
        dead = dead_relu(model, batch) if batch is not None and len(batch) else {}
        masks = dropout_masks(model, x, np.random.default_rng([seed, max(step - 1, 0), 2]))
    layers = []
    for info in model.info:
        i, g = info.index, view.output_grads[info.index]
        entry: dict[str, Any] = {"index": i, "type": info.type, "gradient": encode_tensor(_clean(g), dtype),
                                 "norm": finite(float(np.linalg.norm(g))), "max_abs": finite(float(np.abs(g).max()))}
        names = [n for n in model.params if n.startswith(f"layers.{i}.")]
        if names:
            entry["trainable"] = model.trainable(i)
            entry["parameters"] = [
                {"name": n.rsplit(".", 1)[1], "value": encode_tensor(model.params[n], dtype),
                 "grad": encode_tensor(_clean(view.grads[n]), dtype),
                 "update": encode_tensor(update[n], dtype) if update is not None and n in update else None}
                for n in names
            ]  # fmt: skip
        if i in dead:
            entry["dead_relu"] = {"share": dead[i].share, "per_filter": [float(v) for v in dead[i].per_filter]}
        if i in masks:
            entry["dropout_mask"] = encode_tensor(masks[i], dtype)
        layers.append(entry)
    return {
        "step": step, "label": label, "classes": classes, "loss": finite(view.loss), "loss_name": loss,
        "probabilities": [finite(p) for p in view.probabilities.tolist()],
        "input_gradient": encode_tensor(_clean(view.input_grad), dtype), "layers": layers,
        "update_step": step if update is not None else None, "update_note": None if update is not None else NO_UPDATE,
        "dead_relu_batch": {"split": "train", "count": len(batch)} if batch is not None and len(batch) else None,
        "dropout_note": DROPOUT_NOTE if masks else None, "healthy_update_ratio": RATIO_HEALTHY,
    }  # fmt: skip
