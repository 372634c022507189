"""What a unit looks for, timed on the shipped TinyVGG (64x64, one BLAS thread): ``python -m bench features``.

Targets of issue 12 item 3: the top-9 pass over the 6,000 shapes training images at most 10 s (one
pass serves every channel of the layer); activation maximization (96 steps, the page's default) at
most 5 s. The pass is timed at a shallow, a middle and the deepest layer with maps; its figure is
the median of ``rounds`` passes (each is long, so few). The deconvnet projections of one channel's 9
are timed too (the server computes them once per channel).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from bench.timing import median_ms
from engine import features
from engine.checkpoint import load_checkpoint
from engine.data.registry import builtin_dataset

PRETRAINED = Path(__file__).resolve().parents[1] / "engine" / "pretrained"
TOP_S, DREAM_S = 10.0, 5.0
STEPS = 96


def _seconds(fn, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def run(rounds: int = 1) -> dict:
    """Seconds per top-9 pass and per dream on TinyVGG over the shapes training split."""
    from threadpoolctl import threadpool_limits

    model = load_checkpoint(PRETRAINED / "tiny-vgg-shapes.npz").model
    images = builtin_dataset("shapes").split("train")[0]
    spatial = [i.index for i in model.info if len(i.output_shape) == 3]
    layers = sorted({spatial[0] + 1, spatial[len(spatial) // 2], spatial[-1]})
    rows = []
    with threadpool_limits(limits=1, user_api="blas"):
        for layer in layers:
            seconds = _seconds(lambda: features.layer_top_activations(model, images, layer), rounds)
            rows.append({"what": f"top 9 of {len(images):,} images, layer {layer} ({model.info[layer].type})", "s": round(seconds, 2), "target_s": TOP_S})
        top = features.layer_top_activations(model, images[:500], spatial[-1])
        items = top.channel(0)
        xs = [features.as_input(model, images[t.index]) for t in items]
        ms = median_ms(lambda: [features.deconv_projection(model, x, spatial[-1], 0, (t.row, t.col)) for x, t in zip(xs, items)],
                       repeat=max(3, rounds), warmup=1)
        rows.append({"what": f"9 deconvnet projections, layer {spatial[-1]}", "s": round(ms / 1e3, 3), "target_s": None})
        for layer in layers:
            seconds = _seconds(lambda: features.activation_maximization(model, layer, 0, rng=np.random.default_rng(0), steps=STEPS),
                               max(3, rounds))
            rows.append({"what": f"dream, {STEPS} steps, layer {layer} ({model.info[layer].type})", "s": round(seconds, 2), "target_s": DREAM_S})
    return {"rounds": rounds, "images": len(images), "rows": rows}


def table(report: dict) -> str:
    lines = [f"what a unit looks for on tiny-vgg 64x64, seconds (median of {report['rounds']} pass(es), one BLAS thread)",
             f"{'what':<52}{'s':>8}{'target':>8}  ok"]
    for r in report["rows"]:
        t = r["target_s"]
        ok = "" if t is None else ("yes" if r["s"] <= t else "NO")
        lines.append(f"{r['what']:<52}{r['s']:>8.2f}" + (f"{t:>8.0f}" if t is not None else f"{'-':>8}") + f"  {ok}")
    return "\n".join(lines)
