"""Backward walks for explanations: the target's score, its gradient, and the modified ReLU rules.

The score is the target's pre-softmax logit: the output of the last layer before a final
output-kind layer (softmax). Gradients flow back with each layer's own ``backward`` and the caches
its forward pass returned, except that a backward ``rule`` may replace ReLU's: guided
backpropagation and the deconvnet are defined on ReLU, so the walk picks the layers whose registry
kind is "elementwise" and whose type is "relu". Layers are never modified and hold no state.

Inside the walk, feature maps are in the engine's ``(C, N, H, W)`` layout (so is ReLU's cache, its
output); inputs and results are NCHW.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from engine import ops
from engine.model import ForwardResult, Model

# A ReLU backward rule: (gradient w.r.t. the relu's output, the relu's cache = its output) -> gradient w.r.t. its input
ReluRule = Callable[[np.ndarray, np.ndarray], np.ndarray]


def guided_relu(dout: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Guided backpropagation: pass only positive gradients, and only where the input was positive:
    ``dx = dout * [x > 0] * [dout > 0]``.

    Ref: Springenberg et al. 2015, "Striving for simplicity", arXiv:1412.6806.
    """
    return np.where((out > 0) & (dout > 0), dout, dout.dtype.type(0))


def deconvnet_relu(dout: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Zeiler-Fergus deconvnet: relu of the gradient, whatever the forward sign: ``dx = max(dout, 0)``.

    Ref: Zeiler & Fergus 2014, "Visualizing and understanding convolutional networks", arXiv:1311.2901.
    """
    return np.maximum(dout, dout.dtype.type(0))


RULES: dict[str, ReluRule | None] = {"gradient": None, "guided": guided_relu, "deconvnet": deconvnet_relu}


def score_layers(model: Model) -> int:
    """Layers up to the score: all but a final output-kind layer (whose input is the logits)."""
    return len(model.layers) - 1 if model.info[-1].kind == "output" else len(model.layers)


def resolve_target(model: Model, x: np.ndarray, target: int | None) -> int:
    """The class to explain for ``x: (C, H, W)``: ``target`` if given (checked), else the predicted class."""
    k = model.output_shape[0]
    if target is None:
        return int(model.predict_proba(x[None])[0].argmax())
    if not 0 <= target < k:
        raise ValueError(f"target must be a class index from 0 to {k - 1}, got {target}")
    return int(target)


def _is_relu(model: Model, index: int) -> bool:
    info = model.info[index]
    return info.kind == "elementwise" and info.type == "relu"


def walk(model: Model, dout: np.ndarray, caches: list[Any], *, start: int, stop: int = 0, rule: ReluRule | None = None) -> np.ndarray:
    """Back-propagate ``dout`` (gradient w.r.t. the output of layer ``start - 1``, NCHW or ``(N, D)``)
    down to the input of layer ``stop``; ReLU layers use ``rule`` when one is given.

    -> ``(N, C, H, W)`` or ``(N, D)``: the gradient w.r.t. the output of layer ``stop - 1`` (the input when 0).
    """
    d = ops.nchw_to_cnhw(dout) if dout.ndim == 4 else dout
    for i in range(start - 1, stop - 1, -1):
        if rule is not None and _is_relu(model, i):
            d = rule(d, caches[i])
        else:
            d, _ = model.layers[i].backward(d, caches[i], need_dx=True, need_grads=False)
    return ops.cnhw_to_nchw(d)


def score_forward(model: Model, xs: np.ndarray, *, keep: bool = False) -> ForwardResult:
    """Forward ``xs: (N, C, H, W)`` up to the logits (``output: (N, K)``), caches for `walk`."""
    return model.forward(xs, keep=keep, stop=score_layers(model))


def one_hot(logits: np.ndarray, target: int) -> np.ndarray:
    """``d score / d logits``: 1 at the target, 0 elsewhere, shaped as ``logits: (N, K)``."""
    dout = np.zeros_like(logits)
    dout[:, target] = 1
    return dout


def score_gradients(model: Model, xs: np.ndarray, target: int, *, rule: ReluRule | None = None) -> tuple[np.ndarray, np.ndarray]:
    """For each image of ``xs: (N, C, H, W)``: the gradient of the target's logit w.r.t. the image
    (``(N, C, H, W)``, ReLU passes by ``rule``) and the logit itself (``(N,)``), computed in
    micro-batches (`Model.micro_batch_size`) of forward and backward passes.
    """
    size = model.micro_batch_size()
    grads, scores = [], []
    for i in range(0, len(xs), size):
        res = score_forward(model, xs[i : i + size])
        grads.append(walk(model, one_hot(res.output, target), res.caches, start=score_layers(model), rule=rule))
        scores.append(res.output[:, target])
    return np.concatenate(grads), np.concatenate(scores)
