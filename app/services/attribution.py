"""Attribution maps as the explain routes send them, computed from a model and one image: what a
worker process runs for an explanation (`app.workers.jobs`); `app.services.explanations` describes
the wire fields and does the server's part.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import numpy as np

from app.images import rgb_png
from app.schemas import ExplainRequest
from engine import colormaps, explain
from engine.model import Model

DELETION_STEPS = 20
Progress = Callable[[int, int], None]
Runner = Callable[..., tuple]

SIGNED = {"gradient": True, "saliency": False, "smoothgrad": True, "gradient_x_input": True, "integrated_gradients": True,
          "guided_backprop": True, "deconvnet": True, "grad_cam": False, "guided_grad_cam": True, "occlusion": True}
HOW_TO_READ = {
    "gradient": "Red pixels would raise the class score if made brighter, blue ones would lower it; white ones barely matter.",
    "saliency": "Bright pixels are where a small change moves the class score most, in either direction.",
    "smoothgrad": "The gradient averaged over noisy copies of the image: red raises the class score, blue lowers it, with less speckle.",
    "gradient_x_input": "Each pixel's value times its gradient: red pixels push the class score up, blue ones pull it down.",
    "integrated_gradients": "Red pixels add to the class score compared with a black image, blue ones take from it; together they sum to the difference.",
    "guided_backprop": "Red marks what excites the units behind the class; sharp edges, but it changes little when the weights do (run the sanity check).",
    "deconvnet": "Patterns the units respond to, projected back onto the image; sharp, but it hardly depends on the class or the weights.",
    "grad_cam": "Bright regions are where the chosen layer's feature maps speak for the class; as coarse as that layer.",
    "guided_grad_cam": "Guided backpropagation kept only where Grad-CAM is bright: fine detail, in the region that counts for the class.",
    "occlusion": "Red: covering this spot with grey lowers the class probability (it helped); blue: covering it raises the probability.",
}


def runner(body: ExplainRequest, progress: Progress | None = None) -> Runner:
    """The engine call of ``body.method`` as ``f(model, x, target=None) -> (map, target, ...)``, with
    its parameters bound (SmoothGrad draws from a fresh generator each call, so two calls agree)."""
    m = body.method
    if m == "smoothgrad":
        return lambda model, x, target=None: explain.smoothgrad(
            model, x, target, rng=np.random.default_rng(body.seed), n=body.samples, sigma=body.sigma)
    if m == "integrated_gradients":
        return lambda model, x, target=None: explain.integrated_gradients(model, x, target, steps=body.steps)
    if m in ("grad_cam", "guided_grad_cam"):
        cam = explain.grad_cam if m == "grad_cam" else explain.guided_grad_cam
        return lambda model, x, target=None: cam(model, x, body.layer, target)
    if m == "occlusion":
        return lambda model, x, target=None: explain.occlusion(model, x, target, patch=body.patch, stride=body.stride,
                                                               progress=progress)
    return {"gradient": explain.gradient, "saliency": explain.saliency, "gradient_x_input": explain.gradient_x_input,
            "guided_backprop": explain.guided_backprop, "deconvnet": explain.deconvnet}[m]


def plane(m: np.ndarray) -> np.ndarray:
    """A map ``(C, H, W)`` or ``(H, W)`` -> ``(H, W)`` float32 (channels summed, keeping the sign), finite."""
    flat = m.sum(axis=0, dtype=np.float64) if m.ndim == 3 else m
    return np.nan_to_num(np.asarray(flat, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)


def overlay(x: np.ndarray, m: np.ndarray, signed: bool) -> np.ndarray:
    """Input ``x: (C, H, W)`` in [0, 1] and map ``m: (H, W)`` -> uint8 ``(H, W, 3)``: the map's colour
    (rdbu when signed, else viridis; engine.colormaps) over the image with weight ``|m| / max |m|``."""
    rgb = np.repeat(x, 3, axis=0) if x.shape[0] == 1 else x[:3]
    image = np.clip(rgb.transpose(1, 2, 0), 0.0, 1.0) * 255.0
    heat = colormaps.colorize(m, "rdbu" if signed else "viridis").astype(np.float64)
    peak = float(np.abs(m).max())
    alpha = (np.abs(m) / peak if peak > colormaps.EPS else np.zeros_like(m, dtype=np.float64))[..., None]
    return np.floor(image * (1.0 - alpha) + heat * alpha + 0.5).astype(np.uint8)


def compute(model: Model, x: np.ndarray, body: ExplainRequest, classes: list[str], progress: Progress | None = None) -> dict[str, Any]:
    """The explain response for ``x: (C, H, W)`` on ``model`` (a private copy), its maps as arrays
    (``app.encoding`` writes either wire form). ValueError for a bad target or layer."""
    run = runner(body, progress)
    tail: list[Any] = []

    def first(model_: Model, x_: np.ndarray, target: int | None = None) -> tuple:
        out = run(model_, x_, target=target)
        if not tail:
            tail.extend(out[2:])
        return out

    checks: dict[str, Any] = {}
    if "randomization" in body.checks:
        r = explain.model_randomization(model, x, first, body.target, seed=body.seed)
        raw, target = r.original, r.target
        checks["randomization"] = {"map": plane(r.randomized), "seed": body.seed,
                                   "rank_correlation": float(np.nan_to_num(r.rank_correlation))}
    else:
        raw, target = first(model, x, body.target)[:2]
    raw = np.nan_to_num(raw, nan=0.0, posinf=0.0, neginf=0.0)
    if "deletion" in body.checks:
        d = explain.deletion_curve(model, x, raw, target, steps=DELETION_STEPS)
        checks["deletion"] = {"fractions": d.fractions.tolist(), "scores": np.nan_to_num(d.scores).tolist(),
                              "auc": float(np.nan_to_num(d.auc)), "baseline": "zero"}
    signed = SIGNED[body.method]
    flat = plane(raw)
    layer = int(tail[0]) if body.method in ("grad_cam", "guided_grad_cam") else None
    body_: dict[str, Any] = {
        "method": body.method, "target": target, "class": classes[target] if target < len(classes) else str(target),
        "layer": layer, "signed": signed, "map": flat,
        "channels": raw if raw.ndim == 3 else None,
        "overlay_png": base64.b64encode(rgb_png(overlay(x, flat, signed))).decode("ascii"),
        "how_to_read": HOW_TO_READ[body.method],
    }  # fmt: skip
    if body.method == "integrated_gradients":
        body_["completeness_gap"] = float(np.nan_to_num(tail[0]))
    if checks:
        body_["checks"] = checks
    return body_
