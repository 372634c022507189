"""The numbers behind the page's "Learn" steps, taken from the model itself.

`conv_positions`: for one convolution, one filter and output positions, the input window the
filter sees, the kernel, their element-wise products, the sum, the bias, the sum plus bias and
the value the model's own forward pass put at that position (the two agree to float rounding;
tests/engine/test_learn.py holds them to each other and to `engine.reference.conv2d_forward`).

`dropout_demo`: the engine's dropout layer run in training mode on one image's maps, with a seed:
the keep mask, the scaled training output and the evaluation output (the input unchanged).

`lr_experiment`: copies of a model trained side by side on the same batches with different learning
rates (in memory only; the copies are dropped when it returns), their loss curves.

`localize`: the box around the hot spot of a class map (Grad-CAM): the cells joined to the map's
peak through cells at or above a share of the peak (`peak_region`), localization from a classifier.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from engine import ops
from engine.model import Model
from engine.reference import conv_pads
from engine.registry import build_layer
from engine.specs import Dropout
from engine.train import Hyperparameters, Trainer


@dataclass(frozen=True)
class ConvPosition:
    """One output position ``(row, col)`` of filter ``f``: ``window, kernel, products: (C, k, k)``.

    ``top, left``: the window's first pixel on the layer's unpadded input (negative inside the
    padding); ``total = sum + bias``; ``activation``: the model's output there.
    """

    row: int
    col: int
    top: int
    left: int
    window: np.ndarray
    products: np.ndarray
    sum: float
    total: float
    activation: float


@dataclass(frozen=True)
class ConvLesson:
    """What one call of `conv_positions` found: the layer's facts and the positions asked for."""

    layer: int
    filter: int
    kernel: np.ndarray  # (C, k, k)
    bias: float
    stride: int
    pads: tuple[int, int]
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    positions: list[ConvPosition]


def layer_input(model: Model, x: np.ndarray, layer: int) -> tuple[np.ndarray, np.ndarray]:
    """``x: (C, H, W)`` one image -> (layer ``layer``'s input ``(C', H', W')``, its output), from one
    forward pass up to that layer."""
    res = model.forward(x[None], keep=True, stop=layer + 1)
    before = x.astype(model.dtype, copy=False) if layer == 0 else res.activations[layer - 1][0]
    return before, res.activations[layer][0]


def conv_positions(model: Model, x: np.ndarray, layer: int, filt: int, row: int, cols: list[int] | None = None) -> ConvLesson:
    """Conv layer ``layer``, filter ``filt``, output row ``row`` and columns ``cols`` (default: all).

    ``products[c, a, b] = xp[c, row*s + a, col*s + b] * weight[filt, c, a, b]`` (``xp`` the padded
    input), ``sum = products.sum()`` in float64, ``total = sum + bias[filt]``: the reference loop of
    `engine.reference.conv2d_forward` at one position. Raises ValueError naming what is out of range.
    """
    if not 0 <= layer < len(model.layers):
        raise ValueError(f"layer {layer} does not exist; this model has layers 0 to {len(model.layers) - 1}")
    spec = model.spec.layers[layer]
    if spec.type != "conv2d":
        convs = [i for i, s in enumerate(model.spec.layers) if s.type == "conv2d"]
        raise ValueError(f"layer {layer} is a {spec.type}, not a convolution; convolutions: {convs}")
    weight = model.params[f"layers.{layer}.weight"]
    bias_arr = model.params.get(f"layers.{layer}.bias")
    f, _, k, _ = weight.shape
    _, ho, wo = model.info[layer].output_shape
    if not 0 <= filt < f:
        raise ValueError(f"filter {filt} does not exist; layer {layer} has filters 0 to {f - 1}")
    if not 0 <= row < ho:
        raise ValueError(f"row {row} is outside the output map: rows 0 to {ho - 1}")
    cols = list(range(wo)) if cols is None else cols
    bad = [c for c in cols if not 0 <= c < wo]
    if bad:
        raise ValueError(f"columns {bad} are outside the output map: columns 0 to {wo - 1}")
    before, after = layer_input(model, x, layer)
    s = spec.stride
    pads = conv_pads(k, spec.padding)
    xp = np.pad(before.astype(np.float64), ((0, 0), pads, pads))
    kernel = weight[filt].astype(np.float64)
    bias = 0.0 if bias_arr is None else float(bias_arr[filt])
    positions = []
    for col in cols:
        window = xp[:, row * s : row * s + k, col * s : col * s + k]
        products = window * kernel
        total = float(products.sum())
        positions.append(ConvPosition(row=row, col=col, top=row * s - pads[0], left=col * s - pads[0], window=window,
                                      products=products, sum=total, total=total + bias,
                                      activation=float(after[filt, row, col])))
    return ConvLesson(layer=layer, filter=filt, kernel=kernel, bias=bias, stride=s, pads=pads,
                      input_shape=tuple(before.shape), output_shape=tuple(after.shape), positions=positions)


@dataclass(frozen=True)
class DropoutLesson:
    """``before``: the maps dropout acts on; ``keep``: 1 kept, 0 dropped; ``train = before * keep / (1 - rate)``;
    ``evaluation = before`` (dropout does nothing then). All the shape of ``before``."""

    layer: int
    rate: float
    seed: int
    in_model: bool
    before: np.ndarray
    keep: np.ndarray
    train: np.ndarray
    evaluation: np.ndarray


def dropout_demo(model: Model, x: np.ndarray, layer: int, rate: float, seed: int) -> DropoutLesson:
    """Dropout on one image ``x: (C, H, W)`` in training mode, from ``numpy.random.default_rng(seed)``.

    If layer ``layer`` is a dropout layer: that layer (its own rate) on its input. Otherwise a dropout
    layer of ``rate`` placed after layer ``layer``, on its output (a model without dropout can still
    show the idea on its real maps). Both modes go through the engine's `DropoutLayer`.
    """
    if not 0 <= layer < len(model.layers):
        raise ValueError(f"layer {layer} does not exist; this model has layers 0 to {len(model.layers) - 1}")
    spec = model.spec.layers[layer]
    in_model = spec.type == "dropout"
    if in_model:
        drop, (before, _) = model.layers[layer], layer_input(model, x, layer)
        rate = spec.rate
    else:
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"rate must be at least 0 and below 1; got {rate}")
        before = layer_input(model, x, layer)[1]
        drop = build_layer(Dropout(rate=rate), tuple(before.shape), np.random.default_rng(0), model.dtype)
    h = ops.nchw_to_cnhw(before[None]) if before.ndim == 3 else before[None]
    train, mask = drop.forward(h, train=True, rng=np.random.default_rng(seed))  # mask: keep / (1 - rate)
    evaluation, _ = drop.forward(h, train=False)
    back = (lambda a: ops.cnhw_to_nchw(a)[0]) if before.ndim == 3 else (lambda a: a[0])
    keep = np.ones_like(before) if mask is None else (back(mask) > 0).astype(np.float32)
    train, evaluation = back(train), back(evaluation)
    return DropoutLesson(layer=layer, rate=float(rate), seed=seed, in_model=in_model, before=before,
                         keep=keep, train=train, evaluation=evaluation)


MAX_EXPERIMENT_STEPS = 200


@dataclass(frozen=True)
class LrCurve:
    """One copy's run: ``losses[t]`` the loss of step ``t + 1`` (NaN or inf once it diverges)."""

    learning_rate: float
    losses: list[float]
    final_accuracy: float  # accuracy on the last step's batch


def lr_experiment(model: Model, dataset, hp: Hyperparameters, rates: list[float], steps: int, *, seed: int = 0,
                  step: int = 0, examples_seen: int = 0) -> list[LrCurve]:
    """Train one in-memory copy of ``model`` per learning rate for ``steps`` steps (at most
    `MAX_EXPERIMENT_STEPS`), every copy on the same batches: a `Trainer` with the same ``seed``, ``step``
    and ``examples_seen`` draws the same batch order, augmentation and dropout masks, so only the
    learning rate differs. Each copy starts from fresh optimizer buffers. ``model`` is not changed.
    Raises ValueError on a bad rate or step count (Hyperparameters' own message)."""
    if not 1 <= steps <= MAX_EXPERIMENT_STEPS:
        raise ValueError(f"steps must be between 1 and {MAX_EXPERIMENT_STEPS}, got {steps}")
    curves = []
    for lr in rates:
        trainer = Trainer(model.copy(), dataset, hp.replace(learning_rate=float(lr)), seed=seed, step=step,
                          examples_seen=examples_seen, dead_relu_every=0)
        with np.errstate(all="ignore"):  # a too-high rate may overflow: that is the lesson, not an error
            records = trainer.train(steps)
        trainer.close()
        curves.append(LrCurve(learning_rate=float(lr), losses=[float(r.loss) for r in records],
                              final_accuracy=float(records[-1].accuracy)))
    return curves


@dataclass(frozen=True)
class Box:
    """Rows ``top..bottom`` and columns ``left..right`` (inclusive) around the peak's region.

    ``cells``: the region's cells; ``hot``: every cell at or above ``threshold`` (the region and any
    separate spots); ``peak`` at ``(peak_row, peak_col)``; ``threshold``: the cutoff value itself.
    """

    top: int
    left: int
    bottom: int
    right: int
    cells: int
    hot: int
    peak: float
    peak_row: int
    peak_col: int
    threshold: float


def peak_region(m: np.ndarray, cutoff: float) -> tuple[np.ndarray, tuple[int, int]]:
    """``m: (H, W)`` -> (``region: (H, W)`` bool, the peak ``(row, col)``): the cells reachable from
    the largest cell (the first in row-major order on a tie) by steps up, down, left or right through
    cells ``>= cutoff``. A breadth-first flood fill: each cell is visited at most once, O(H W).
    The peak is in the region when ``m[peak] >= cutoff``; otherwise the region is empty."""
    m = np.asarray(m)
    if m.ndim != 2 or not m.size:
        raise ValueError(f"the map must be (H, W) with cells, got shape {m.shape}")
    h, w = m.shape
    hot = m >= cutoff
    peak = divmod(int(np.argmax(m)), w)
    region = np.zeros((h, w), dtype=bool)
    if not hot[peak]:
        return region, peak
    region[peak] = True
    todo = deque([peak])
    while todo:
        r, c = todo.popleft()
        for y, x in ((r - 1, c), (r + 1, c), (r, c - 1), (r, c + 1)):
            if 0 <= y < h and 0 <= x < w and hot[y, x] and not region[y, x]:
                region[y, x] = True
                todo.append((y, x))
    return region, peak


def localize(cam: np.ndarray, threshold: float = 0.5) -> Box | None:
    """``cam: (H, W)`` -> the smallest box around the hot spot that holds the map's peak: the cells
    joined to the peak (`peak_region`) through cells ``>= threshold * cam.max()``. Hot cells in
    separate spots are left out (they are counted in ``hot``), so the box is tight around the one
    place the map points at. None when the map has no positive peak (nothing speaks for the class).
    ``0 < threshold <= 1``."""
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold must be above 0 and at most 1, got {threshold}")
    cam = np.asarray(cam, dtype=np.float64)
    if cam.ndim != 2:
        raise ValueError(f"the map must be (H, W), got shape {cam.shape}")
    peak = float(cam.max()) if cam.size else 0.0
    if not peak > 0 or not np.isfinite(peak):
        return None
    cutoff = threshold * peak
    region, (pr, pc) = peak_region(cam, cutoff)
    rows, cols = np.nonzero(region.any(axis=1))[0], np.nonzero(region.any(axis=0))[0]
    return Box(top=int(rows[0]), left=int(cols[0]), bottom=int(rows[-1]), right=int(cols[-1]), cells=int(region.sum()),
               hot=int((cam >= cutoff).sum()), peak=peak, peak_row=pr, peak_col=pc, threshold=cutoff)
