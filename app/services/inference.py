"""Forward passes and pictures for one image (the routes' one call each; explanations live in explanations.py).

A forward pass runs while holding the model's lock, so during live training it sees the weights
between two steps, never half an update; encoding the result happens after the lock is released.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np

from app.deps import AppState
from app.encoding import encode_tensor, to_json
from app.errors import Conflict, Invalid, NotFound
from app.images import rgb_png
from app.schemas import InputRef
from app.services.training import finite
from app.stores import ModelRecord
from engine import pictures
from engine.data.dataset import to_float
from engine.losses import log_softmax


def dataset_sample(state: AppState, rec: ModelRecord, split: str, index: int) -> tuple[np.ndarray, int]:
    """``(x: (C, H, W) float32, label)`` from the model's dataset."""
    if rec.dataset is None:
        raise Conflict(f"model {rec.id!r} has no dataset; send an image_id instead of a sample")
    x, y = state.datasets.get(rec.dataset).split(split)
    if not 0 <= index < len(y):
        raise NotFound(f"sample index {index} is out of range: the {split} split of {rec.dataset!r} has {len(y)} images")
    return to_float(x[index]), int(y[index])


def resolve_input(state: AppState, rec: ModelRecord, ref: InputRef) -> tuple[np.ndarray, int | None]:
    """``(x: (C, H, W), label or None)`` for an uploaded image (cropped or padded, ``ref.fit``) or a dataset sample."""
    if ref.image_id is not None:
        return state.images.input_for(ref.image_id, rec.model.input_shape, ref.fit), None
    return dataset_sample(state, rec, ref.sample.split, ref.sample.index)


def parse_layers(raw: str | list[int] | None, n_layers: int) -> list[int]:
    """``"0,3"`` or ``[0, 3]`` -> sorted unique indices (all layers when None; none for "")."""
    if raw is None:
        return list(range(n_layers))
    try:
        picked = [int(p) for p in raw.split(",") if p.strip()] if isinstance(raw, str) else [int(p) for p in raw]
    except ValueError:
        raise Invalid(f"layers must be comma-separated layer indices such as 0,3; got {raw!r}") from None
    bad = [i for i in picked if not 0 <= i < n_layers]
    if bad:
        raise Invalid(f"layers {bad} do not exist; this model has layers 0 to {n_layers - 1}")
    return sorted(set(picked))


def forward(state: AppState, rec: ModelRecord, x: np.ndarray, *, dtype: str = "float32", layers: str | list[int] | None = None,
            label: int | None = None) -> dict[str, Any]:
    """The forward response in the JSON form (each tensor a base64 T): `forward_arrays`, encoded."""
    return to_json(forward_arrays(state, rec, x, layers=layers, label=label), dtype)  # type: ignore[arg-type]


def forward_arrays(state: AppState, rec: ModelRecord, x: np.ndarray, *, layers: str | list[int] | None = None,
                   label: int | None = None) -> dict[str, Any]:
    """The forward response with its tensors as arrays (``app.encoding`` writes either wire form): the
    input ``(C, H, W)``, each kept layer's output with its range and mean, and the prediction."""
    model = rec.model
    picked = parse_layers(layers, len(model.layers))
    with state.cpu.slot(), rec.lock.hold(state.settings.lock_wait_s):
        model = rec.model
        res = model.forward(x[None], keep=True)
        step, classes = rec.step, list(rec.classes)
        out = res.output[0] if model.ends_with_softmax else np.exp(log_softmax(res.output))[0]
    probs = [finite(p) for p in out.tolist()]
    top = int(np.nanargmax(out)) if np.isfinite(out).any() else 0
    body: dict[str, Any] = {
        "step": step,
        "input": x,
        "layers": [
            {"index": i, "type": model.info[i].type, "output": (a := res.activations[i][0]), **summary(a)}
            for i in picked
        ],
        "probabilities": probs,
        "classes": classes,
        "prediction": {"index": top, "class": classes[top] if top < len(classes) else str(top), "probability": probs[top]},
    }  # fmt: skip
    if label is not None:
        body["label"] = label
    return body


@lru_cache(maxsize=64)
def _ones(n: int) -> np.ndarray:
    ones = np.ones(n, np.float32)
    ones.flags.writeable = False
    return ones


def summary(a: np.ndarray) -> dict[str, float | None]:
    """``{"min", "max", "mean"}`` of an array as JSON numbers (null when not finite). A float32 mean is
    a dot product with ones: BLAS sums in several lanes, a few times faster than ``ndarray.mean``
    and as close to the exact mean (tests/api/test_forward.py)."""
    if a.dtype == np.float32 and a.flags.c_contiguous and a.size:
        mean = float(a.reshape(-1) @ _ones(a.size)) / a.size
    else:
        mean = float(a.mean())
    return {"min": finite(float(a.min())), "max": finite(float(a.max())), "mean": finite(mean)}


def layer_weights(rec: ModelRecord, index: int, *, picture: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """Layer ``index``'s weight and bias as copies, in PyTorch layouts (conv ``(F, C, kh, kw)``, dense
    ``(units, D)``, per-channel ``(C,)``); which layers have them is the registry's word.

    404 for a missing layer, 422 for a layer without weights (or, with ``picture``, without 4-D filters).
    """
    model = rec.model
    n = len(model.layers)
    if not 0 <= index < n:
        raise NotFound(f"layer {index} does not exist; this model has layers 0 to {n - 1}")
    info = model.info[index]
    weight = model.params.get(f"layers.{index}.weight")
    if weight is None:
        with_weights = [i for i in range(n) if f"layers.{i}.weight" in model.params]
        raise Invalid(f"layer {index} ({info.type}) has no weights; layers with weights: {with_weights}")
    if picture and weight.ndim != 4:
        raise Invalid(f"layer {index} ({info.type}): only convolution filters are drawn as a picture; "
                      f"GET .../layers/{index}/filters returns its weights as numbers")
    bias = model.params.get(f"layers.{index}.bias")
    return weight.copy(), (None if bias is None else bias.copy())


def filters(state: AppState, rec: ModelRecord, index: int, dtype: str = "float32") -> dict[str, Any]:
    """Weights of a layer that has them (conv ``[F, C, kh, kw]``, dense ``[units, D]``, per-channel ``[C]``), with its bias (or null)."""
    with rec.lock.hold(state.settings.lock_wait_s):
        (w, b), step = layer_weights(rec, index), rec.step
    bias = None if b is None else encode_tensor(b, dtype)
    return {**encode_tensor(w, dtype), "bias": bias, "layer": index, "step": step}


def filters_png(state: AppState, rec: ModelRecord, index: int, cmap: str = "auto") -> bytes:
    with rec.lock.hold(state.settings.lock_wait_s):
        w, _ = layer_weights(rec, index, picture=True)
        first = rec.model.info[index].input_shape == tuple(rec.model.input_shape)
    return rgb_png(pictures.filter_grid(w, rgb=first and w.shape[1] == 3, cmap=cmap))


def activations_png(state: AppState, rec: ModelRecord, index: int, x: np.ndarray, cmap: str = "auto") -> bytes:
    """Every channel of layer ``index``'s output for one image, as a PNG grid."""
    n = len(rec.model.layers)
    if not 0 <= index < n:
        raise NotFound(f"layer {index} does not exist; this model has layers 0 to {n - 1}")
    with state.cpu.slot(), rec.lock.hold(state.settings.lock_wait_s):
        act = rec.model.forward(x[None], stop=index + 1).output[0]
    return rgb_png(pictures.activation_grid(np.nan_to_num(act, nan=0.0, posinf=0.0, neginf=0.0), cmap))
