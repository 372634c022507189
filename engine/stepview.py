"""Inside one learning step: every layer's output gradient, every weight gradient, the size of the
update the optimizer applied, ReLU units that never fire, and dropout masks.

What the trainer records every step (`layer_stats`) is a few norms, cheap beside the step; the
rest (`step_view`, `dead_relu`, `dropout_masks`) is computed on request for the page.
Public tensors are NCHW (``(N, C, H, W)``) or ``(N, D)``, as `engine.model`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from engine import losses, ops
from engine.model import Model

RATIO_HEALTHY = 1e-3  # update / weight norm where training usually goes well (CS231n, "ratio of updates")


@dataclass(frozen=True)
class LayerStats:
    """One weighted layer at one step: ``grad_norm = ||dL/dW||`` over all its parameters (the batch's
    loss gradient, before momentum or weight decay) and ``update_ratio = ||applied update|| / ||W||``
    with W the weights before the step."""

    grad_norm: float
    update_ratio: float


@dataclass
class StepView:
    """One image and its label seen by the loss, in evaluation mode (no dropout, running statistics).

    ``output_grads[i]``: dL/d(output of layer i), shaped like that output for one image;
    ``input_grad``: dL/d(input), ``(C, H, W)``; ``grads``: dL/dW for every parameter by name, frozen
    layers included (they would get no update, but the gradient exists).
    """

    loss: float
    probabilities: np.ndarray  # (K,)
    output_grads: list[np.ndarray]
    input_grad: np.ndarray
    grads: dict[str, np.ndarray]


@dataclass(frozen=True)
class DeadReLU:
    """``share``: units (channel x position, or dense unit) whose output is 0 for every image of the
    batch; ``per_filter[c]``: that share within channel c (0 or 1 for a dense unit)."""

    share: float
    per_filter: np.ndarray  # (C,)


def _sq(a: np.ndarray) -> float:
    flat = a.ravel()
    return float(np.dot(flat, flat))


def layer_of(name: str) -> int:
    """``"layers.3.weight"`` -> 3."""
    return int(name.split(".")[1])


def weight_norms(params: Mapping[str, np.ndarray], names) -> dict[int, float]:
    """``||W||`` per layer over the named parameters (weight and bias together)."""
    sq: dict[int, float] = {}
    for name in names:
        i = layer_of(name)
        sq[i] = sq.get(i, 0.0) + _sq(params[name])
    return {i: math.sqrt(v) for i, v in sq.items()}


def layer_stats(grads: Mapping[str, np.ndarray], applied: Mapping[str, np.ndarray],
                norms_before: Mapping[int, float]) -> dict[int, LayerStats]:
    """Per weighted layer that was updated: gradient norm and update-to-weight ratio.

    ``grads``: the step's loss gradients; ``applied``: what the optimizer moved each parameter by
    (`engine.optim.Optimizer.step`); ``norms_before``: `weight_norms` before the step. A layer whose
    weights are all zero has an infinite ratio. NaN gradients give NaN norms (a diverged step).
    """
    g2: dict[int, float] = {}
    u2: dict[int, float] = {}
    for name, g in grads.items():
        i = layer_of(name)
        g2[i] = g2.get(i, 0.0) + _sq(g)
        u2[i] = u2.get(i, 0.0) + _sq(applied[name])
    out = {}
    for i in sorted(g2):
        w = norms_before.get(i, 0.0)
        u = math.sqrt(u2[i])
        out[i] = LayerStats(grad_norm=math.sqrt(g2[i]), update_ratio=u / w if w > 0 else (math.inf if u > 0 else 0.0))
    return out


def relu_layers(model: Model) -> list[int]:
    """Indices of ReLU layers (registry kind ``elementwise``, type ``relu``)."""
    return [info.index for info in model.info if info.kind == "elementwise" and info.type == "relu"]


def dead_relu(model: Model, x: np.ndarray, *, chunk: int | None = None) -> dict[int, DeadReLU]:
    """``x: (N, C, H, W)`` -> for each ReLU layer, the units that never fire on the batch.

    Evaluation mode (no dropout), the current weights; the batch runs ``chunk`` images at a time
    (default `Model.micro_batch_size`) and stops after the last ReLU, so memory stays small.
    """
    picked = relu_layers(model)
    if not picked or len(x) == 0:
        return {}
    stop = picked[-1] + 1
    chunk = chunk or model.micro_batch_size()
    fired: dict[int, np.ndarray] = {}
    for a in range(0, len(x), chunk):
        acts = model.forward(x[a : a + chunk], keep=True, stop=stop).activations
        assert acts is not None
        for i in picked:
            now = (acts[i] > 0).any(axis=0)
            fired[i] = now if i not in fired else fired[i] | now
    out = {}
    for i in picked:
        dead = ~fired[i]
        per = dead.reshape(dead.shape[0], -1).mean(axis=1) if dead.ndim > 1 else dead.astype(np.float64)
        out[i] = DeadReLU(share=float(dead.mean()), per_filter=per)
    return out


def dead_relu_shares(model: Model, x: np.ndarray) -> dict[int, float]:
    """`dead_relu` without the per-filter detail: ``{layer: share}``."""
    return {i: d.share for i, d in dead_relu(model, x).items()}


def dropout_masks(model: Model, x: np.ndarray, rng: np.random.Generator) -> dict[int, np.ndarray]:
    """``x: (C, H, W)`` -> for each dropout layer, the mask a training-mode pass draws from ``rng``
    for this image alone: 1 where a unit is kept, 0 where it is dropped, shaped like the layer's
    output for one image (all ones when the rate is 0)."""
    picked = [info.index for info in model.info if info.type == "dropout"]
    if not picked:
        return {}
    res = model.forward(x[None], train=True, rng=rng, stop=picked[-1] + 1)
    out = {}
    for i in picked:
        cache = res.caches[i]
        shape = model.info[i].output_shape
        if cache is None:
            out[i] = np.ones(shape, dtype=np.float32)
        else:
            mask = ops.cnhw_to_nchw(cache) if cache.ndim == 4 else cache
            out[i] = (mask[0] > 0).astype(np.float32)
    return out


def step_view(model: Model, x: np.ndarray, label: int, *, loss: str = "cross_entropy") -> StepView:
    """``x: (C, H, W)``, its class ``label`` -> the loss's gradient at every layer's output and weight.

    Cross-entropy is ``-log p[label]``: with a final softmax layer its output gradient is
    ``-1/p[label]`` at the label (0 elsewhere), and the gradient below it is ``p - onehot``, taken
    directly as training does. MSE is on the network's output, as `Model.loss_and_grads`.
    Evaluation mode, so a dropout layer passes every gradient.
    """
    if loss not in losses.LOSSES:
        raise ValueError(f"loss must be one of {losses.LOSSES}, got {loss!r}")
    k = model.output_shape[0]
    if not 0 <= int(label) < k:
        raise ValueError(f"label must be a class index from 0 to {k - 1}, got {label}")
    y = np.array([int(label)])
    res = model.forward(x[None], keep=True)
    acts = res.activations
    assert acts is not None
    n = len(model.layers)
    out_grads: list[np.ndarray | None] = [None] * n
    start = n - 1
    if loss == "cross_entropy" and model.ends_with_softmax:
        logits = acts[-2] if n > 1 else x[None].astype(model.dtype)
        value, d, probs = losses.softmax_cross_entropy(logits, y)
        top = np.zeros_like(res.output)
        top[0, y[0]] = -1.0 / max(float(res.output[0, y[0]]), 1e-30)
        out_grads[n - 1] = top
        start = n - 2
    elif loss == "cross_entropy":
        value, d, probs = losses.softmax_cross_entropy(res.output, y)
    else:
        value, d = losses.mean_squared_error(res.output, y)
        probs = res.output if model.ends_with_softmax else np.exp(losses.log_softmax(res.output))
    grads: dict[str, np.ndarray] = {}
    for i in range(start, -1, -1):
        out_grads[i] = d
        inner = ops.nchw_to_cnhw(d) if d.ndim == 4 else d
        dx, g = model.layers[i].backward(inner, res.caches[i], need_dx=True, need_grads=True)
        grads.update({f"layers.{i}.{name}": arr for name, arr in g.items()})
        d = ops.cnhw_to_nchw(dx) if dx.ndim == 4 else dx
    return StepView(
        loss=float(value),
        probabilities=np.asarray(probs)[0],
        output_grads=[g[0] for g in out_grads],  # type: ignore[index]
        input_grad=d[0].reshape(x.shape),
        grads=grads,
    )
