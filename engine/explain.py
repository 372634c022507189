"""Where the network looks: saliency, Grad-CAM and occlusion maps for one image.

Each takes ``x: (C, H, W)`` float32 in [0, 1] and a target class (default: the predicted one) and
returns a map ``(H, W)`` aligned with the input, plus the target it explains.
"""

from __future__ import annotations

import numpy as np

from engine.model import Model


def _resolve_target(model: Model, x: np.ndarray, target: int | None) -> int:
    """The class to explain: ``target`` if given (checked), else the predicted class."""
    k = model.output_shape[0]
    if target is None:
        return int(model.predict_proba(x[None])[0].argmax())
    if not 0 <= target < k:
        raise ValueError(f"target must be a class index from 0 to {k - 1}, got {target}")
    return int(target)


def _score_gradient(model: Model, x: np.ndarray, target: int, stop: int = 0):
    """Gradient of the target's pre-softmax score w.r.t. the output of layer ``stop - 1`` (the input when 0)."""
    n_layers = len(model.layers) - 1 if model.ends_with_softmax else len(model.layers)
    res = model.forward(x[None], stop=n_layers)
    dout = np.zeros_like(res.output)
    dout[0, target] = 1.0
    d, _ = model.backward(dout, res.caches, start=n_layers, stop=stop, need_dx=True)
    return d, res


def saliency(model: Model, x: np.ndarray, target: int | None = None) -> tuple[np.ndarray, int]:
    """Simonyan et al. 2014: ``max_c |d score_target / d x[c]|`` -> ``(H, W)``, >= 0.

    Ref: arXiv:1312.6034.
    """
    target = _resolve_target(model, x, target)
    d, _ = _score_gradient(model, x, target)
    return np.abs(d[0]).max(axis=0).astype(np.float32), target


def last_conv_index(model: Model) -> int:
    """Index of the last layer whose output is still a (C, H, W) map (Grad-CAM's default layer)."""
    spatial = [i for i, info in enumerate(model.info) if len(info.output_shape) == 3]
    if not spatial:
        raise ValueError("this model has no layer with feature maps; Grad-CAM needs a convolutional layer")
    return spatial[-1]


def _upsample(m: np.ndarray, h: int, w: int) -> np.ndarray:
    """Bilinear resize of ``m: (h', w')`` to ``(h, w)`` with aligned pixel centres."""
    hh, ww = m.shape
    ys = np.clip((np.arange(h) + 0.5) * hh / h - 0.5, 0, hh - 1)
    xs = np.clip((np.arange(w) + 0.5) * ww / w - 0.5, 0, ww - 1)
    y0, x0 = np.floor(ys).astype(int), np.floor(xs).astype(int)
    y1, x1 = np.minimum(y0 + 1, hh - 1), np.minimum(x0 + 1, ww - 1)
    fy, fx = (ys - y0)[:, None], (xs - x0)[None, :]
    top = m[y0][:, x0] * (1 - fx) + m[y0][:, x1] * fx
    bottom = m[y1][:, x0] * (1 - fx) + m[y1][:, x1] * fx
    return top * (1 - fy) + bottom * fy


def grad_cam(model: Model, x: np.ndarray, layer_index: int | None = None, target: int | None = None) -> tuple[np.ndarray, int, int]:
    """Selvaraju et al. 2017: ``relu(sum_k alpha_k A_k)`` with ``alpha_k`` the mean gradient of the
    target score over map k of layer ``layer_index``; upsampled to ``(H, W)`` and scaled to [0, 1].

    Ref: arXiv:1610.02391.
    """
    layer_index = last_conv_index(model) if layer_index is None else layer_index
    if not 0 <= layer_index < len(model.layers) or len(model.info[layer_index].output_shape) != 3:
        raise ValueError(f"layer {layer_index} has no feature maps; choose a conv or pooling layer")
    target = _resolve_target(model, x, target)
    grad, _ = _score_gradient(model, x, target, stop=layer_index + 1)
    acts = model.forward(x[None], keep=True, stop=layer_index + 1).activations[layer_index][0]
    weights = grad[0].mean(axis=(1, 2))
    cam = np.maximum((weights[:, None, None] * acts).sum(axis=0), 0)
    cam = _upsample(cam.astype(np.float64), x.shape[1], x.shape[2])
    peak = cam.max()
    return (cam / peak if peak > 0 else cam).astype(np.float32), target, layer_index


def occlusion(model: Model, x: np.ndarray, target: int | None = None, patch: int = 8, stride: int = 4) -> tuple[np.ndarray, int]:
    """Zeiler & Fergus 2014: slide a grey patch over the image; the map holds the mean drop in the
    target's probability when a pixel is covered (positive = the pixel helped). Batched forward passes.
    """
    probs = model.predict_proba(x[None])[0]
    target = _resolve_target(model, x, target) if target is not None else int(probs.argmax())
    base = float(probs[target])
    c, h, w = x.shape
    patch = max(1, min(patch, h, w))
    stride = max(1, stride)
    ys = list(range(0, max(h - patch, 0) + 1, stride))
    xs = list(range(0, max(w - patch, 0) + 1, stride))
    boxes = [(y, xx) for y in ys for xx in xs]
    drop = np.zeros((h, w))
    count = np.zeros((h, w))
    for i in range(0, len(boxes), 64):
        chunk = boxes[i : i + 64]
        batch = np.repeat(x[None], len(chunk), axis=0)
        for b, (y, xx) in enumerate(chunk):
            batch[b, :, y : y + patch, xx : xx + patch] = 0.5
        probs = model.predict_proba(batch)[:, target]
        for b, (y, xx) in enumerate(chunk):
            drop[y : y + patch, xx : xx + patch] += base - probs[b]
            count[y : y + patch, xx : xx + patch] += 1
    return (drop / np.maximum(count, 1)).astype(np.float32), target
