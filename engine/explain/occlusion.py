"""Occlusion: how much the target's probability drops when a patch of the image is covered."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from engine.explain.backprop import resolve_target
from engine.model import Model


def patch_boxes(h: int, w: int, patch: int, stride: int) -> list[tuple[int, int]]:
    """Top-left corners ``(y, x)`` of the ``patch x patch`` windows every ``stride`` pixels that fit in ``(h, w)``."""
    return [(y, xx) for y in range(0, max(h - patch, 0) + 1, stride) for xx in range(0, max(w - patch, 0) + 1, stride)]


def occlusion(model: Model, x: np.ndarray, target: int | None = None, patch: int = 8, stride: int = 4, *,
              baseline: float = 0.5, progress: Callable[[int, int], None] | None = None) -> tuple[np.ndarray, int]:
    """Occlusion -> ``(map: (H, W) signed, target)``: slide a ``patch x patch`` square of value
    ``baseline`` over ``x: (C, H, W)`` every ``stride`` pixels; each pixel holds the mean drop in
    the target's probability over the placements that cover it (positive: the pixel helped; 0 where
    none covers it). The covered copies run in batches of `Model.micro_batch_size`, and
    ``progress(done, total)`` is called after each batch with placements done and in all.

    Ref: Zeiler & Fergus 2014, "Visualizing and understanding convolutional networks", arXiv:1311.2901.
    """
    probs = model.predict_proba(x[None])[0]
    target = resolve_target(model, x, target) if target is not None else int(probs.argmax())
    base = float(probs[target])
    _, h, w = x.shape
    patch = max(1, min(patch, h, w))
    boxes = patch_boxes(h, w, patch, max(1, stride))
    drop = np.zeros((h, w))
    count = np.zeros((h, w))
    size = model.micro_batch_size()
    for i in range(0, len(boxes), size):
        chunk = boxes[i : i + size]
        batch = np.repeat(x[None].astype(model.dtype, copy=False), len(chunk), axis=0)
        for b, (y, xx) in enumerate(chunk):
            batch[b, :, y : y + patch, xx : xx + patch] = baseline
        probs = model.predict_proba(batch, batch_size=len(chunk))[:, target]
        for b, (y, xx) in enumerate(chunk):
            drop[y : y + patch, xx : xx + patch] += base - float(probs[b])
            count[y : y + patch, xx : xx + patch] += 1
        if progress is not None:
            progress(min(i + size, len(boxes)), len(boxes))
    return (drop / np.maximum(count, 1)).astype(model.dtype), target
