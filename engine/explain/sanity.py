"""Sanity checks for attribution maps: model randomization and the deletion curve."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from engine.explain.backprop import resolve_target
from engine.model import Model


def _ranks(v: np.ndarray) -> np.ndarray:
    """1-based ranks of ``v: (n,)``, ties sharing the mean of the ranks they span."""
    _, inverse, counts = np.unique(v, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    return ((ends - counts + 1 + ends) / 2)[inverse]


def rank_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation of two maps of the same shape (any): the Pearson correlation of
    their ranks, ties averaged. 0.0 when either map is constant (it orders nothing).
    """
    if a.shape != b.shape:
        raise ValueError(f"maps must have the same shape, got {a.shape} and {b.shape}")
    ra = _ranks(np.asarray(a, dtype=np.float64).ravel())
    rb = _ranks(np.asarray(b, dtype=np.float64).ravel())
    ra -= ra.mean()
    rb -= rb.mean()
    norm = float(np.sqrt((ra * ra).sum() * (rb * rb).sum()))
    return float((ra * rb).sum() / norm) if norm > 0 else 0.0


def randomized_model(model: Model, *, seed: int = 1, down_to: int = 0) -> Model:
    """A copy of ``model`` whose layers ``down_to`` and above have fresh weights (and buffers) from
    ``Model.build(spec, seed=seed)``; layers below keep theirs. ``down_to=0`` re-initializes all
    layers; stepping ``down_to`` from the top layer down gives Adebayo et al.'s cascade.

    Ref: Adebayo et al. 2018, "Sanity checks for saliency maps", arXiv:1810.03292.
    """
    if not 0 <= down_to < len(model.layers):
        raise ValueError(f"down_to must be a layer index from 0 to {len(model.layers) - 1}, got {down_to}")
    fresh = Model.build(model.spec, seed=seed, dtype=model.dtype)
    if down_to == 0:
        return fresh
    out = model.copy()
    new, old = fresh.state(), out.state()  # names "layers.{i}.weight"
    out.load_state({name: (new if int(name.split(".")[1]) >= down_to else old)[name] for name in old})
    return out


@dataclass(frozen=True)
class Randomization:
    """The same method's map on the model and on its randomized copy, and their rank correlation."""

    original: np.ndarray
    randomized: np.ndarray
    rank_correlation: float
    target: int


def model_randomization(model: Model, x: np.ndarray, method: Callable[..., tuple], target: int | None = None, *,
                        seed: int = 1, down_to: int = 0, absolute: bool = True, **kwargs) -> Randomization:
    """Run ``method(model, x, target=target, **kwargs)`` (any explain function; its first result is
    the map) on ``model`` and on `randomized_model` ``(model, seed, down_to)``, for the same target
    (default: the class ``model`` predicts). ``rank_correlation`` compares the maps (their absolute
    values when ``absolute``): near 1 means the map hardly depends on the weights it should explain.

    Ref: Adebayo et al. 2018, "Sanity checks for saliency maps", arXiv:1810.03292.
    """
    target = resolve_target(model, x, target)
    original = method(model, x, target=target, **kwargs)[0]
    randomized = method(randomized_model(model, seed=seed, down_to=down_to), x, target=target, **kwargs)[0]
    a, b = (np.abs(original), np.abs(randomized)) if absolute else (original, randomized)
    return Randomization(original, randomized, rank_correlation(a, b), target)


@dataclass(frozen=True)
class DeletionCurve:
    """``scores[i]``: the target's probability with the ``fractions[i]`` most-attributed pixels removed."""

    fractions: np.ndarray  # (steps + 1,), 0 to 1
    scores: np.ndarray  # (steps + 1,)
    auc: float
    target: int


def deletion_curve(model: Model, x: np.ndarray, attribution: np.ndarray, target: int | None = None, *,
                   steps: int = 20, baseline: str | float = "zero") -> DeletionCurve:
    """Remove the pixels of ``x: (C, H, W)`` most attributed first, in ``steps`` equal steps, and
    track the target's probability (all ``steps + 1`` images in one batched pass).

    ``attribution``: ``(H, W)`` (ranked as given, largest first) or ``(C, H, W)`` (ranked by
    ``max_c |.|``). A removed pixel takes ``baseline`` in every channel: ``"zero"``, ``"mean"`` (the
    image's mean per channel) or a number. ``auc``: the trapezoid area under ``scores`` over
    ``fractions`` in [0, 1]; lower means the map found what the prediction rests on.

    Ref: Petsiuk et al. 2018, "RISE", arXiv:1806.07421; Samek et al. 2017, arXiv:1509.06321.
    """
    c, h, w = x.shape
    importance = np.abs(attribution).max(axis=0) if attribution.ndim == 3 else attribution
    if importance.shape != (h, w):
        raise ValueError(f"attribution must be ({h}, {w}) or ({c}, {h}, {w}), got {attribution.shape}")
    if steps < 1:
        raise ValueError(f"the deletion curve needs steps >= 1, got {steps}")
    if baseline == "zero":
        fill = np.zeros((c, 1), dtype=model.dtype)
    elif baseline == "mean":
        fill = x.reshape(c, -1).mean(axis=1, keepdims=True).astype(model.dtype)
    elif isinstance(baseline, (int, float)) and not isinstance(baseline, bool):
        fill = np.full((c, 1), baseline, dtype=model.dtype)
    else:
        raise ValueError(f'baseline must be "zero", "mean" or a number, got {baseline!r}')
    target = resolve_target(model, x, target)
    order = np.argsort(-importance.ravel(), kind="stable")
    fractions = np.linspace(0.0, 1.0, steps + 1)
    counts = np.round(fractions * h * w).astype(int)
    images = np.repeat(x.reshape(1, c, h * w).astype(model.dtype), steps + 1, axis=0)
    for i, k in enumerate(counts):
        images[i][:, order[:k]] = fill
    scores = model.predict_proba(images.reshape(-1, c, h, w))[:, target].astype(np.float64)
    auc = float(((scores[1:] + scores[:-1]) / 2 * np.diff(fractions)).sum())
    return DeletionCurve(fractions, scores, auc, target)
