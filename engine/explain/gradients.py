"""Gradient attributions for one image ``x: (C, H, W)`` and one class (default: the predicted one).

Each returns ``(map, target)`` (integrated gradients adds its completeness gap). Maps are at input
resolution in the model's dtype: ``(C, H, W)`` and signed for the gradient methods, ``(H, W)``
and >= 0 for `saliency`; `saliency_of` turns any ``(C, H, W)`` map into a ``(H, W)`` one.
The score is the target's pre-softmax logit (`engine.explain.backprop`).
"""

from __future__ import annotations

import numpy as np

from engine.explain.backprop import RULES, resolve_target, score_gradients
from engine.model import Model


def saliency_of(m: np.ndarray) -> np.ndarray:
    """``m: (C, H, W) -> (H, W)``: ``max_c |m[c]|``, the per-pixel saliency of Simonyan et al."""
    return np.abs(m).max(axis=0)


def _gradient(model: Model, x: np.ndarray, target: int | None, rule: str) -> tuple[np.ndarray, int]:
    target = resolve_target(model, x, target)
    grads, _ = score_gradients(model, x[None], target, rule=RULES[rule])
    return grads[0], target


def gradient(model: Model, x: np.ndarray, target: int | None = None) -> tuple[np.ndarray, int]:
    """Vanilla gradient ``d score_target / d x`` -> ``(C, H, W)``, signed.

    Ref: Simonyan et al. 2014, "Deep inside convolutional networks", arXiv:1312.6034.
    """
    return _gradient(model, x, target, "gradient")


def saliency(model: Model, x: np.ndarray, target: int | None = None) -> tuple[np.ndarray, int]:
    """Saliency ``max_c |d score_target / d x[c]|`` -> ``(H, W)``, >= 0.

    Ref: Simonyan et al. 2014, arXiv:1312.6034.
    """
    g, target = gradient(model, x, target)
    return saliency_of(g), target


def gradient_x_input(model: Model, x: np.ndarray, target: int | None = None) -> tuple[np.ndarray, int]:
    """``x * d score_target / d x`` -> ``(C, H, W)``, signed (a first-order Taylor term per value).

    Ref: Shrikumar et al. 2016, arXiv:1605.01713 (as compared by Sundararajan et al. 2017).
    """
    g, target = gradient(model, x, target)
    return (x * g).astype(g.dtype, copy=False), target


def guided_backprop(model: Model, x: np.ndarray, target: int | None = None) -> tuple[np.ndarray, int]:
    """Guided backpropagation -> ``(C, H, W)``, signed: the gradient, except that each ReLU passes
    back only positive gradients and only where its input was positive.

    Ref: Springenberg et al. 2015, "Striving for simplicity: the all convolutional net", arXiv:1412.6806.
    """
    return _gradient(model, x, target, "guided")


def deconvnet(model: Model, x: np.ndarray, target: int | None = None) -> tuple[np.ndarray, int]:
    """Zeiler-Fergus deconvnet -> ``(C, H, W)``, signed: the gradient, except that each ReLU applies
    relu to the gradient, ignoring the forward sign; max pooling routes through its switches.

    Ref: Zeiler & Fergus 2014, "Visualizing and understanding convolutional networks", arXiv:1311.2901.
    """
    return _gradient(model, x, target, "deconvnet")


def smoothgrad(model: Model, x: np.ndarray, target: int | None = None, *, rng: np.random.Generator,
               n: int = 25, sigma: float = 0.15) -> tuple[np.ndarray, int]:
    """SmoothGrad -> ``(C, H, W)``, signed: the mean gradient over ``n`` noisy copies
    ``x + N(0, (sigma * (max x - min x))^2)``, drawn from ``rng``, run as one batch (in micro-batches).

    Ref: Smilkov et al. 2017, "SmoothGrad: removing noise by adding noise", arXiv:1706.03825.
    """
    if n < 1 or sigma < 0:
        raise ValueError(f"SmoothGrad needs n >= 1 and sigma >= 0, got n={n}, sigma={sigma}")
    target = resolve_target(model, x, target)
    scale = sigma * float(x.max() - x.min())
    noisy = (x[None] + rng.normal(0.0, scale, size=(n, *x.shape))).astype(model.dtype)
    grads, _ = score_gradients(model, noisy, target)
    return grads.mean(axis=0, dtype=np.float64).astype(model.dtype), target


def integrated_gradients(model: Model, x: np.ndarray, target: int | None = None, *, baseline: np.ndarray | float | None = None,
                         steps: int = 32) -> tuple[np.ndarray, int, float]:
    """Integrated gradients -> ``(attributions: (C, H, W) signed, target, gap)``.

    ``(x - x0) * integral_0^1 grad(x0 + a (x - x0)) da`` with ``x0`` the ``baseline`` (zeros by
    default; an array broadcastable to ``x`` or a number), the integral by the trapezoid rule on
    ``steps`` intervals (``steps + 1`` interpolants, run as one batch in micro-batches). ``gap`` is
    the completeness error ``sum(attributions) - (score(x) - score(x0))``, which shrinks with ``steps``.

    Ref: Sundararajan et al. 2017, "Axiomatic attribution for deep networks", arXiv:1703.01365.
    """
    if steps < 1:
        raise ValueError(f"integrated gradients needs steps >= 1, got {steps}")
    target = resolve_target(model, x, target)
    x0 = np.broadcast_to(np.zeros_like(x) if baseline is None else np.asarray(baseline, dtype=x.dtype), x.shape)
    alphas = np.linspace(0.0, 1.0, steps + 1)
    path = (x0[None] + alphas[:, None, None, None] * (x - x0)[None]).astype(model.dtype)
    grads, scores = score_gradients(model, path, target)
    weights = np.full(steps + 1, 1.0 / steps)
    weights[[0, -1]] /= 2
    attributions = (x - x0) * np.tensordot(weights, grads, axes=1)
    gap = float(attributions.sum() - (float(scores[-1]) - float(scores[0])))
    return attributions.astype(model.dtype), target, gap
