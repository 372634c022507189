"""Attribution maps for one image and any class, their overlay picture and their two checks: the
explain routes' one call each.

The map runs on a copy of the weights taken under the model's lock, so training may go on. Each
method's engine function is named once in `RUNNERS`; what the wire carries:

- ``map``: ``(H, W)`` at input resolution; a ``(C, H, W)`` method is summed over channels (signed),
  ``channels`` then holds the engine's own ``(C, H, W)`` map.
- ``overlay_png``: the map coloured (diverging rdbu when signed, sequential viridis otherwise) over
  the input, each pixel's colour weighted by ``|value| / max |value|``; base64 PNG of the input's size.
- ``checks.randomization``: the same method on a copy with freshly initialized weights (seed
  ``seed``), its ``(H, W)`` map and the rank correlation of the two maps' absolute values.
- ``checks.deletion``: the target's probability as the most-attributed pixels are set to zero.
"""

from __future__ import annotations

import base64
import json
import logging
import queue
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import numpy as np

from app.deps import AppState
from app.encoding import to_json
from app.errors import Invalid
from app.images import rgb_png
from app.schemas import ExplainRequest
from app.stores import ModelRecord
from engine import colormaps, explain
from engine.model import Model

log = logging.getLogger("cnnvis")
MAX_PLACEMENTS = 1024  # occlusion: forward passes one request may ask for
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


def check_occlusion_size(body: ExplainRequest, x: np.ndarray) -> None:
    if body.method != "occlusion":
        return
    _, h, w = x.shape
    patch = min(body.patch, h, w)
    n = ((h - patch) // body.stride + 1) * ((w - patch) // body.stride + 1)
    if n > MAX_PLACEMENTS:
        raise Invalid(f"occlusion with patch {body.patch} and stride {body.stride} needs {n} forward passes; "
                      f"at most {MAX_PLACEMENTS}: choose a larger stride")


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


def _prepare(state: AppState, rec: ModelRecord, x: np.ndarray, body: ExplainRequest) -> tuple[Model, list[str]]:
    check_occlusion_size(body, x)
    with rec.lock.hold(state.settings.lock_wait_s):
        return rec.model.copy(), list(rec.classes)


def explain_map(state: AppState, rec: ModelRecord, x: np.ndarray, body: ExplainRequest) -> dict[str, Any]:
    """The explain response, computed in one CPU slot on a copy of the current weights."""
    model, classes = _prepare(state, rec, x, body)
    with state.cpu.slot():
        try:
            return compute(model, x, body, classes)
        except ValueError as e:
            raise Invalid(str(e)) from None


def explain_stream(state: AppState, rec: ModelRecord, x: np.ndarray, body: ExplainRequest) -> Iterator[bytes]:
    """The same response as NDJSON lines: ``{"done", "total", "pass"}`` as occlusion batches finish
    (pass 1: the map; pass 2: the randomized copy's), then ``{"result": {...}}`` or ``{"error": "..."}``.

    The CPU slot is taken here (a busy server answers 503 before the stream starts), the target and
    layer are checked first (422), and the work runs in its own thread, which releases the slot
    when it ends even if the client has gone.
    """
    model, classes = _prepare(state, rec, x, body)
    try:
        explain.resolve_target(model, x, body.target)
        if body.method in ("grad_cam", "guided_grad_cam"):
            layer = explain.last_conv_index(model) if body.layer is None else body.layer
            if not 0 <= layer < len(model.info) or len(model.info[layer].output_shape) != 3:
                raise ValueError(f"layer {layer} has no feature maps; choose a conv or pooling layer")
    except ValueError as e:
        raise Invalid(str(e)) from None
    stack = ExitStack()
    stack.enter_context(state.cpu.slot())
    lines: queue.Queue[dict[str, Any] | None] = queue.Queue()
    seen = {"pass": 0, "done": 0}

    def progress(done: int, total: int) -> None:
        if seen["pass"] == 0 or done <= seen["done"]:  # occlusion started again: the randomized copy's pass
            seen["pass"] += 1
        seen["done"] = done
        lines.put({"done": done, "total": total, "pass": seen["pass"]})

    def work() -> None:
        try:
            lines.put({"result": to_json(compute(model, x, body, classes, progress))})
        except ValueError as e:  # the stream has begun: an error becomes its last line
            lines.put({"error": str(e)})
        except Exception:  # noqa: BLE001
            log.exception("explain stream failed")
            lines.put({"error": "the explanation failed; the server log has the details"})
        finally:
            stack.close()
            lines.put(None)

    threading.Thread(target=work, name="explain-stream", daemon=True).start()
    return _lines(lines)


def _lines(lines: queue.Queue) -> Iterator[bytes]:
    while (item := lines.get()) is not None:
        yield (json.dumps(item) + "\n").encode()
