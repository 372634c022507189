"""What a unit looks for: the dataset images that excite a channel most, the deconvnet projection of
one of those activations back to pixels, and an input optimized to excite the channel.

A unit here is one channel ``c`` of a layer whose output is a stack of maps ``(C, H, W)`` (a
convolution, its ReLU, a pooling layer...). Images are NCHW, uint8 (divided by 255 chunk by chunk,
as `engine.data.dataset.to_float`) or float in the model's input range; results are NCHW floats in
the model's dtype. Receptive-field boxes are ``(top, left, bottom, right)`` in input pixels,
bottom and right exclusive, clipped to the image (the page's `receptiveRect` draws the same box).

Ref: Zeiler & Fergus 2014, "Visualizing and understanding convolutional networks", arXiv:1311.2901
(top-9 crops and their deconvnet projections); Erhan et al. 2009, "Visualizing higher-layer
features of a deep network"; Yosinski et al. 2015, "Understanding neural networks through deep
visualization", arXiv:1506.06579; Olah et al. 2017, "Feature visualization", Distill
(regularized activation maximization).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from engine.explain.backprop import deconvnet_relu, walk
from engine.model import Model

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class TopActivation:
    """One of a channel's strongest responses: image ``index`` of the dataset, the position
    ``(row, col)`` of the maximum in the channel's map, its ``value``, and the receptive field of
    that position as ``box = (top, left, bottom, right)`` in input pixels (clipped)."""

    index: int
    row: int
    col: int
    value: float
    box: tuple[int, int, int, int]


@dataclass(frozen=True)
class LayerTop:
    """Every channel's top ``k`` of one pass over a dataset, best first, each image at most once
    per channel (at the first maximum of its map, in row-major order; ties go to the lower index).

    ``value: (k, C)`` (``-inf`` past the number of images), ``index: (k, C)`` image indices (-1 there),
    ``position: (k, C)`` flat positions ``row * W + col`` in the ``map_shape = (H, W)`` maps.
    """

    model: Model
    layer: int
    value: np.ndarray
    index: np.ndarray
    position: np.ndarray
    map_shape: tuple[int, int]

    @property
    def channels(self) -> int:
        return self.value.shape[1]

    def channel(self, c: int) -> list[TopActivation]:
        """Channel ``c``'s list, best first (shorter than ``k`` when the dataset had fewer images)."""
        check_channel(self.model, self.layer, c)
        w = self.map_shape[1]
        items = []
        for v, i, p in zip(self.value[:, c], self.index[:, c], self.position[:, c]):
            if i < 0:
                break
            row, col = divmod(int(p), w)
            items.append(TopActivation(int(i), row, col, float(v), receptive_box(self.model, self.layer, row, col)))
        return items


class MissingUnit(ValueError):
    """The layer or the channel does not exist (a layer without maps is a plain ValueError)."""


def check_layer(model: Model, layer: int) -> tuple[int, int, int]:
    """The ``(C, H, W)`` output of ``layer``; `MissingUnit` for a missing layer, ValueError for one without maps."""
    n = len(model.layers)
    if not 0 <= layer < n:
        raise MissingUnit(f"layer {layer} does not exist; this model has layers 0 to {n - 1}")
    shape = model.info[layer].output_shape
    if len(shape) != 3:
        spatial = [i.index for i in model.info if len(i.output_shape) == 3]
        raise ValueError(f"layer {layer} ({model.info[layer].type}) has no maps, only {shape[0]} numbers; layers with maps: {spatial}")
    return shape  # type: ignore[return-value]


def check_channel(model: Model, layer: int, channel: int) -> None:
    """As `check_layer`, and `MissingUnit` for a channel the layer does not have."""
    c = check_layer(model, layer)[0]
    if not 0 <= channel < c:
        raise MissingUnit(f"channel {channel} does not exist; layer {layer} has channels 0 to {c - 1}")


def receptive_box(model: Model, layer: int, row: int, col: int) -> tuple[int, int, int, int]:
    """``(top, left, bottom, right)``: the input pixels position ``(row, col)`` of ``layer`` sees,
    from ``model.info[layer].receptive_field`` (centre ``start + i * jump``, side ``size``),
    clipped to the input (bottom and right exclusive)."""
    rf = model.info[layer].receptive_field
    _, h, w = model.input_shape
    half = (rf.size - 1) / 2
    cy, cx = rf.start + row * rf.jump, rf.start + col * rf.jump
    return (max(0, math.floor(cy - half)), max(0, math.floor(cx - half)),
            min(h, math.ceil(cy + half + 1)), min(w, math.ceil(cx + half + 1)))


def as_input(model: Model, images: np.ndarray) -> np.ndarray:
    """uint8 pixels (any shape) -> ``x / 255`` in the model's dtype; floats are only cast."""
    if images.dtype == np.uint8:
        return images.astype(model.dtype) * model.dtype.type(1 / 255)
    return images.astype(model.dtype, copy=False)


def layer_top_activations(model: Model, images: np.ndarray, layer: int, k: int = 9, *, batch: int | None = None,
                          progress: Progress | None = None) -> LayerTop:
    """Every channel's ``k`` strongest images at once: ``images: (N, C_in, H_in, W_in)`` ->
    `LayerTop` with ``(k, C)`` arrays, ``C`` the layer's channels.

    One forward pass up to ``layer`` (``stop = layer + 1``) in chunks of ``batch`` images (default
    `Model.micro_batch_size`); each chunk's per-image maxima ``(n, C)`` are merged into a running
    top ``k`` per channel, so memory stays ``O(batch + k)`` whatever ``N``. ``progress(done, N)``
    is called after each chunk. NaN activations (diverged weights) count as ``-inf``.

    Ref: Zeiler & Fergus 2014, arXiv:1311.2901, section 4 (top 9 activations per feature map).
    """
    c, h, w = check_layer(model, layer)
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    batch = max(1, batch or model.micro_batch_size())
    n = len(images)
    top_v = np.empty((0, c), dtype=model.dtype)
    top_i = np.empty((0, c), dtype=np.int64)
    top_p = np.empty((0, c), dtype=np.int64)
    for a in range(0, n, batch):
        out = model.forward(as_input(model, images[a : a + batch]), stop=layer + 1).output
        flat = out.reshape(len(out), c, h * w)
        if not np.isfinite(flat).all():
            flat = np.where(np.isnan(flat), -np.inf, flat)
        pos = flat.argmax(axis=2)  # (n, C), the first maximum
        val = np.take_along_axis(flat, pos[..., None], axis=2)[..., 0]
        idx = np.broadcast_to(np.arange(a, a + len(out), dtype=np.int64)[:, None], pos.shape)
        cand_v, cand_i, cand_p = np.concatenate([top_v, val]), np.concatenate([top_i, idx]), np.concatenate([top_p, pos])
        order = np.lexsort((cand_i, -cand_v), axis=0)[:k]  # value descending, then index ascending
        top_v, top_i, top_p = (np.take_along_axis(arr, order, axis=0) for arr in (cand_v, cand_i, cand_p))
        if progress is not None:
            progress(min(a + batch, n), n)
    pad = k - len(top_v)
    if pad > 0:
        top_v = np.concatenate([top_v, np.full((pad, c), -np.inf, dtype=model.dtype)])
        top_i = np.concatenate([top_i, np.full((pad, c), -1, dtype=np.int64)])
        top_p = np.concatenate([top_p, np.zeros((pad, c), dtype=np.int64)])
    return LayerTop(model, layer, top_v, top_i, top_p, (h, w))


def top_activations(model: Model, images: np.ndarray, layer: int, channel: int, k: int = 9, *, batch: int | None = None,
                    progress: Progress | None = None) -> list[TopActivation]:
    """The ``k`` images of ``images: (N, C_in, H, W)`` whose map ``channel`` of ``layer`` peaks
    highest, best first: image index, ``(row, col)`` of the peak, its value, its receptive box.
    (The pass costs the same for every channel: `layer_top_activations` keeps them all.)

    Ref: Zeiler & Fergus 2014, arXiv:1311.2901.
    """
    check_channel(model, layer, channel)
    return layer_top_activations(model, images, layer, k, batch=batch, progress=progress).channel(channel)


def deconv_projection(model: Model, x: np.ndarray, layer: int, channel: int, position: tuple[int, int]) -> np.ndarray:
    """``x: (C, H, W)`` -> ``(C, H, W)`` signed: one activation of ``layer`` projected back to pixels.

    Every activation of ``layer`` is set to zero but the one at ``channel, position = (row, col)``,
    which keeps its value; that map then goes down the network with the deconvnet rule
    (`engine.explain.backprop.walk` with `deconvnet_relu`): ReLUs pass ``relu`` of the signal,
    max pooling routes through the forward pass's switches, convolutions apply their transposed
    filters. What shows is the pattern in ``x`` that drove that one unit.

    Ref: Zeiler & Fergus 2014, "Visualizing and understanding convolutional networks", arXiv:1311.2901, section 2.1.
    """
    check_channel(model, layer, channel)
    _, h, w = model.info[layer].output_shape
    row, col = position
    if not (0 <= row < h and 0 <= col < w):
        raise ValueError(f"position ({row}, {col}) is outside layer {layer}'s {h}x{w} maps")
    res = model.forward(x[None].astype(model.dtype, copy=False), stop=layer + 1)
    dout = np.zeros_like(res.output)
    dout[0, channel, row, col] = res.output[0, channel, row, col]
    return walk(model, dout, res.caches, start=layer + 1, rule=deconvnet_relu)[0]


def channel_mean(model: Model, x: np.ndarray, layer: int, channel: int) -> float:
    """The mean of map ``channel`` of ``layer`` for one image ``x: (C, H, W)``: what activation maximization raises."""
    check_channel(model, layer, channel)
    return float(model.forward(x[None].astype(model.dtype, copy=False), stop=layer + 1).output[0, channel].mean())


def seed_image(model: Model, rng: np.random.Generator, noise: float = 0.1) -> np.ndarray:
    """A start for activation maximization: mid-grey plus ``N(0, noise^2)`` noise, clipped to [0, 1], ``(C, H, W)``."""
    x = 0.5 + noise * rng.standard_normal(model.input_shape)
    return np.clip(x, 0.0, 1.0).astype(model.dtype)


def gaussian_blur(x: np.ndarray, sigma: float) -> np.ndarray:
    """``x: (C, H, W)`` blurred by a Gaussian of ``sigma`` pixels (separable, radius ``ceil(2 sigma)``, edges repeated)."""
    r = max(1, math.ceil(2 * sigma))
    t = np.arange(-r, r + 1, dtype=np.float64)
    kernel = np.exp(-(t**2) / (2 * sigma**2))
    kernel /= kernel.sum()
    _, h, w = x.shape
    p = np.pad(x, ((0, 0), (r, r), (0, 0)), mode="edge")
    x = sum(kv * p[:, i : i + h, :] for i, kv in enumerate(kernel))
    p = np.pad(x, ((0, 0), (0, 0), (r, r)), mode="edge")
    return sum(kv * p[:, :, i : i + w] for i, kv in enumerate(kernel))


def tv_gradient(x: np.ndarray) -> np.ndarray:
    """Gradient of the squared total variation ``1/2 sum (x[i+1, j] - x[i, j])^2 + (x[i, j+1] - x[i, j])^2``
    of ``x: (C, H, W)``: -> ``(C, H, W)``."""
    g = np.zeros_like(x)
    dy = x[:, 1:, :] - x[:, :-1, :]
    dx = x[:, :, 1:] - x[:, :, :-1]
    g[:, 1:, :] += dy
    g[:, :-1, :] -= dy
    g[:, :, 1:] += dx
    g[:, :, :-1] -= dx
    return g


def _pass(dout: np.ndarray, out: np.ndarray) -> np.ndarray:
    """A ReLU rule that passes the gradient unchanged (the pre-activation's)."""
    return dout


def activation_maximization(model: Model, layer: int, channel: int, *, rng: np.random.Generator, start: np.ndarray | None = None,
                            steps: int = 96, lr: float = 0.04, jitter: int = 2, blur_every: int = 4, blur_sigma: float = 0.5,
                            l2: float = 0.05, tv: float = 0.25, progress: Progress | None = None) -> np.ndarray:
    """An image ``(C, H, W)`` in [0, 1] that raises the mean of map ``channel`` of ``layer``.

    Gradient ascent on the input from ``start`` (default `seed_image` drawn from ``rng``), ``steps``
    times: ``x += lr * (g / rms(g) - l2 * (x - 0.5) - tv * tv_gradient(x))``, then clip to [0, 1], with

    - ``g``: the gradient of the channel's mean activation w.r.t. the input, computed on a copy of
      ``x`` shifted by a random ``(dy, dx)`` in ``[-jitter, jitter]`` pixels (rolled, drawn from
      ``rng``) and shifted back: jitter keeps the image from exploiting exact pixel positions
      (Olah 2017's "transformation robustness"). Scaled to unit root-mean-square, so ``lr`` is
      in pixel units whatever the layer's scale;
      Between the unit and the layer that made it (the last one with weights), ReLUs pass the
      gradient as if they were on: the ascent follows the pre-activation, so a unit that is off on
      the start image (a ReLU's zero gradient) still gets a direction (Olah 2017 optimizes
      pre-ReLU values too); below that layer the gradient is the true one;
    - ``l2``: weight decay towards mid-grey, which keeps values small where the unit does not care
      (Simonyan 2014; Yosinski 2015);
    - ``tv``: the gradient of the squared total variation, which penalizes differences between
      neighbouring pixels, so high-frequency noise does not build up (Mahendran & Vedaldi 2015);
    - every ``blur_every`` steps (0: never) a Gaussian blur of ``blur_sigma`` pixels, the other
      high-frequency brake of Yosinski 2015.

    ``progress(done, steps)`` is called after each step. Returns the model's dtype.

    Ref: Erhan et al. 2009, "Visualizing higher-layer features of a deep network"; Yosinski et al.
    2015, arXiv:1506.06579; Olah et al. 2017, "Feature visualization", Distill, doi:10.23915/distill.00007.
    """
    c, h, w = check_layer(model, layer)
    check_channel(model, layer, channel)
    if steps < 0 or lr < 0 or jitter < 0 or l2 < 0 or tv < 0 or blur_every < 0 or blur_sigma <= 0:
        raise ValueError("steps, lr, jitter, l2, tv and blur_every must be >= 0 and blur_sigma > 0")
    x = (seed_image(model, rng) if start is None else np.asarray(start, dtype=np.float64)).astype(np.float64)
    if x.shape != tuple(model.input_shape):
        raise ValueError(f"start must have the input shape {tuple(model.input_shape)}, got {x.shape}")
    made = max([i for i in range(layer + 1) if model.layers[i].params] or [-1])
    for step in range(steps):
        dy, dx = (int(v) for v in rng.integers(-jitter, jitter + 1, size=2)) if jitter else (0, 0)
        shifted = np.roll(x, (dy, dx), axis=(1, 2))
        res = model.forward(shifted[None].astype(model.dtype), stop=layer + 1)
        dout = np.zeros_like(res.output)
        dout[0, channel] = 1.0 / (h * w)
        d = walk(model, dout, res.caches, start=layer + 1, stop=made + 1, rule=_pass)
        g = np.roll(walk(model, d, res.caches, start=made + 1)[0].astype(np.float64), (-dy, -dx), axis=(1, 2))
        g /= math.sqrt(float(np.mean(g * g))) + 1e-12
        x = np.clip(x + lr * (g - l2 * (x - 0.5) - tv * tv_gradient(x)), 0.0, 1.0)
        if blur_every and (step + 1) % blur_every == 0:
            x = gaussian_blur(x, blur_sigma)
        if progress is not None:
            progress(step + 1, steps)
    return x.astype(model.dtype)
