"""Time per attribution method on the shipped models, one BLAS thread: ``python -m bench explain``.

Each figure is the median of ``rounds`` runs on one test image, target the predicted class, against
the targets of issue 12 (measured on TinyVGG 64x64): a gradient method within 50 ms, SmoothGrad
(25 samples) and integrated gradients (32 steps) within 0.5 s, occlusion (patch 8, stride 4)
within 2 s. The sanity checks are timed too (no target).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bench.timing import median_ms
from engine import explain
from engine.checkpoint import load_checkpoint
from engine.data.digits import make_digits
from engine.data.shapes import make_shapes

PRETRAINED = Path(__file__).resolve().parents[1] / "engine" / "pretrained"
GRADIENT_MS, BATCHED_MS, OCCLUSION_MS = 50.0, 500.0, 2000.0


def _methods(model, x):
    """(name, call, target ms or None) for every method on ``model`` and ``x: (C, H, W)``."""
    rng = np.random.default_rng(0)
    first = next(i for i, info in enumerate(model.info) if len(info.output_shape) == 3)
    g, _ = explain.gradient(model, x)
    return [
        ("gradient", lambda: explain.gradient(model, x), GRADIENT_MS),
        ("saliency", lambda: explain.saliency(model, x), GRADIENT_MS),
        ("gradient x input", lambda: explain.gradient_x_input(model, x), GRADIENT_MS),
        ("guided backprop", lambda: explain.guided_backprop(model, x), GRADIENT_MS),
        ("deconvnet", lambda: explain.deconvnet(model, x), GRADIENT_MS),
        ("grad-cam, last layer", lambda: explain.grad_cam(model, x), GRADIENT_MS),
        (f"grad-cam, layer {first}", lambda: explain.grad_cam(model, x, first), GRADIENT_MS),
        ("guided grad-cam", lambda: explain.guided_grad_cam(model, x), GRADIENT_MS),
        ("smoothgrad, 25 samples", lambda: explain.smoothgrad(model, x, rng=rng, n=25), BATCHED_MS),
        ("integrated gradients, 32 steps", lambda: explain.integrated_gradients(model, x, steps=32), BATCHED_MS),
        ("occlusion, patch 8 stride 4", lambda: explain.occlusion(model, x, patch=8, stride=4), OCCLUSION_MS),
        ("randomization (gradient, all layers)", lambda: explain.model_randomization(model, x, explain.gradient), None),
        ("deletion curve, 20 steps", lambda: explain.deletion_curve(model, x, g, steps=20), None),
    ]


def run(rounds: int = 7) -> dict:
    """Median ms per method on TinyVGG (shapes, 64x64) and LeNet-5 (digits, 28x28)."""
    from threadpoolctl import threadpool_limits

    cases = {
        "tiny-vgg 64x64": ("tiny-vgg-shapes.npz", make_shapes(n_train=1, n_test=1, seed=0).x_test[0]),
        "lenet5 28x28": ("lenet5-digits.npz", make_digits(n_train=1, n_test=1, seed=0).x_test[0]),
    }
    results: dict[str, dict] = {}
    with threadpool_limits(limits=1, user_api="blas"):
        for case, (filename, pixels) in cases.items():
            model = load_checkpoint(PRETRAINED / filename).model
            x = pixels.astype(np.float32) / 255
            for name, call, target in _methods(model, x):
                row = results.setdefault(name, {"method": name, "target_ms": target})
                row[case] = round(median_ms(call, repeat=rounds, warmup=2), 2)
    return {"rounds": rounds, "cases": list(cases), "methods": list(results.values())}


def table(report: dict) -> str:
    cases = report["cases"]
    lines = [f"attribution time per image, ms (median of {report['rounds']} runs, one BLAS thread); target on {cases[0]}",
             f"{'method':<38}" + "".join(f"{c:>16}" for c in cases) + f"{'target':>9}  ok"]
    for m in report["methods"]:
        target = m["target_ms"]
        ok = "" if target is None else ("yes" if m[cases[0]] <= target else "NO")
        lines.append(f"{m['method']:<38}" + "".join(f"{m[c]:>16.1f}" for c in cases)
                     + (f"{target:>9.0f}" if target is not None else f"{'-':>9}") + f"  {ok}")
    return "\n".join(lines)
