"""Grad-CAM at any layer with feature maps, and guided Grad-CAM, for one image ``x: (C, H, W)``."""

from __future__ import annotations

import numpy as np

from engine.explain.backprop import guided_relu, one_hot, resolve_target, score_forward, score_layers, walk
from engine.model import Model


def last_conv_index(model: Model) -> int:
    """Index of the last layer whose output is still a (C, H, W) map (Grad-CAM's default layer)."""
    spatial = [i for i, info in enumerate(model.info) if len(info.output_shape) == 3]
    if not spatial:
        raise ValueError("this model has no layer with feature maps; Grad-CAM needs a convolutional layer")
    return spatial[-1]


def upsample(m: np.ndarray, h: int, w: int) -> np.ndarray:
    """Bilinear resize of ``m: (h', w')`` to ``(h, w)`` with aligned pixel centres (PyTorch's
    ``interpolate(mode="bilinear", align_corners=False)``)."""
    hh, ww = m.shape
    ys = np.clip((np.arange(h) + 0.5) * hh / h - 0.5, 0, hh - 1)
    xs = np.clip((np.arange(w) + 0.5) * ww / w - 0.5, 0, ww - 1)
    y0, x0 = np.floor(ys).astype(int), np.floor(xs).astype(int)
    y1, x1 = np.minimum(y0 + 1, hh - 1), np.minimum(x0 + 1, ww - 1)
    fy, fx = (ys - y0)[:, None], (xs - x0)[None, :]
    top = m[y0][:, x0] * (1 - fx) + m[y0][:, x1] * fx
    bottom = m[y1][:, x0] * (1 - fx) + m[y1][:, x1] * fx
    return top * (1 - fy) + bottom * fy


def _cam_layer(model: Model, layer_index: int | None) -> int:
    layer_index = last_conv_index(model) if layer_index is None else layer_index
    if not 0 <= layer_index < score_layers(model) or len(model.info[layer_index].output_shape) != 3:
        raise ValueError(f"layer {layer_index} has no feature maps; choose a conv or pooling layer")
    return layer_index


def _grad_cam(model: Model, x: np.ndarray, layer_index: int, target: int, guided: bool):
    """One forward pass; the Grad-CAM ``(H, W)`` and, when ``guided``, the guided backprop ``(C, H, W)``."""
    res = score_forward(model, x[None], keep=True)
    dout, start = one_hot(res.output, target), score_layers(model)
    grad = walk(model, dout, res.caches, start=start, stop=layer_index + 1)[0]
    acts = res.activations[layer_index][0]
    weights = grad.mean(axis=(1, 2), dtype=np.float64)
    cam = np.maximum(np.tensordot(weights, acts, axes=1), 0)
    cam = upsample(cam, x.shape[1], x.shape[2])
    peak = cam.max()
    cam = (cam / peak if peak > 0 else cam).astype(model.dtype)
    return cam, (walk(model, dout, res.caches, start=start, rule=guided_relu)[0] if guided else None)


def grad_cam(model: Model, x: np.ndarray, layer_index: int | None = None, target: int | None = None) -> tuple[np.ndarray, int, int]:
    """Grad-CAM -> ``(map: (H, W) in [0, 1], target, layer_index)``: ``relu(sum_k alpha_k A_k)``
    with ``A_k`` map k of layer ``layer_index`` (any layer with ``(C, H', W')`` output before the
    logits; default: the last) and ``alpha_k`` the mean gradient of the target's logit over ``A_k``,
    upsampled bilinearly to the input and divided by its maximum.

    Ref: Selvaraju et al. 2017, "Grad-CAM: visual explanations from deep networks", arXiv:1610.02391.
    """
    layer_index = _cam_layer(model, layer_index)
    target = resolve_target(model, x, target)
    cam, _ = _grad_cam(model, x, layer_index, target, guided=False)
    return cam, target, layer_index


def guided_grad_cam(model: Model, x: np.ndarray, layer_index: int | None = None, target: int | None = None) -> tuple[np.ndarray, int, int]:
    """Guided Grad-CAM -> ``(map: (C, H, W) signed, target, layer_index)``: guided backpropagation
    times the upsampled Grad-CAM of `grad_cam`, pixel by pixel (one forward pass for both).

    Ref: Selvaraju et al. 2017, arXiv:1610.02391; Springenberg et al. 2015, arXiv:1412.6806.
    """
    layer_index = _cam_layer(model, layer_index)
    target = resolve_target(model, x, target)
    cam, guided = _grad_cam(model, x, layer_index, target, guided=True)
    return guided * cam[None], target, layer_index
