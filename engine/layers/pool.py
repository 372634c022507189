"""Max, average and global-average pooling on ``(C, N, H, W)`` maps via strided views."""

from __future__ import annotations

import numpy as np

from engine import ops
from engine.layers.base import (
    Layer,
    ReceptiveField,
    Shape,
    ShapeError,
    global_receptive_field,
    require_spatial,
    window_receptive_field,
)


class _WindowPool(Layer):
    """Shared geometry of max and average pooling: window ``pool_size``, ``stride``, symmetric ``padding``."""

    def __init__(self, spec, in_shape: Shape):
        super().__init__(spec, in_shape)
        self.k = spec.pool_size
        self.s = spec.stride if spec.stride is not None else spec.pool_size
        self.p = spec.padding
        if self.p > self.k // 2:
            raise ShapeError(f"padding {self.p} must be at most half of pool_size {self.k} (as in PyTorch)")
        self.output_shape(in_shape)

    def output_shape(self, in_shape: Shape) -> Shape:
        c, h, w = require_spatial(in_shape, "put pooling before flatten/dense")
        if h + 2 * self.p < self.k or w + 2 * self.p < self.k:
            raise ShapeError(f"input {h}x{w} is smaller than pool_size {self.k}")
        return (c, ops.conv_output_size(h, self.k, self.s, self.p, self.p), ops.conv_output_size(w, self.k, self.s, self.p, self.p))

    def receptive_field(self, rf: ReceptiveField, in_shape: Shape) -> ReceptiveField:
        return window_receptive_field(rf, self.k, self.s, self.p)

    def _geometry(self, x):
        _, _, h, w = x.shape
        return ops.conv_output_size(h, self.k, self.s, self.p, self.p), ops.conv_output_size(w, self.k, self.s, self.p, self.p)


class MaxPool2DLayer(_WindowPool):
    """``out[c, n, i, j] = max`` over the window; the gradient goes to the first maximum (PyTorch's tie rule)."""

    def forward(self, x, *, train=False, rng=None):
        ho, wo = self._geometry(x)
        xp = ops.pad_chw(x, (self.p,) * 4, value=-np.inf)
        out = None
        for _, _, view in ops.window_views(xp, self.k, self.k, self.s, ho, wo):
            out = view.copy() if out is None else np.maximum(out, view, out=out)
        return out, (xp, out)

    def backward(self, dout, cache, *, need_dx=True, need_grads=True):
        if not need_dx:
            return None, {}
        xp, out = cache
        ho, wo = out.shape[2], out.shape[3]
        dxp = np.zeros_like(xp)
        views = list(ops.window_views(xp, self.k, self.k, self.s, ho, wo))
        dviews = ops.window_views(dxp, self.k, self.k, self.s, ho, wo)
        hit = np.empty(out.shape, dtype=bool)
        pending = None  # windows whose maximum has not been claimed yet: a tie routes to the first only
        for n, ((_, _, view), (_, _, dview)) in enumerate(zip(views, dviews)):
            np.equal(view, out, out=hit)
            if pending is None:
                pending = ~hit
            else:
                hit &= pending
                if n < len(views) - 1:
                    pending ^= hit
            if self.k <= self.s:  # windows do not overlap: each input belongs to one window at most
                np.multiply(dout, hit, out=dview)
            else:
                dview += dout * hit
        return ops.unpad_chw(dxp, (self.p,) * 4), {}


class AvgPool2DLayer(_WindowPool):
    """Mean over each window; zero padding counts in the mean (PyTorch ``count_include_pad=True``)."""

    def forward(self, x, *, train=False, rng=None):
        ho, wo = self._geometry(x)
        xp = ops.pad_chw(x, (self.p,) * 4)
        out = np.zeros((x.shape[0], x.shape[1], ho, wo), dtype=x.dtype)
        for _, _, view in ops.window_views(xp, self.k, self.k, self.s, ho, wo):
            out += view
        out *= x.dtype.type(1.0 / (self.k * self.k))
        return out, xp.shape

    def backward(self, dout, cache, *, need_dx=True, need_grads=True):
        if not need_dx:
            return None, {}
        ho, wo = dout.shape[2], dout.shape[3]
        dxp = np.zeros(cache, dtype=dout.dtype)
        share = dout * dout.dtype.type(1.0 / (self.k * self.k))
        for _, _, view in ops.window_views(dxp, self.k, self.k, self.s, ho, wo):
            view += share
        return ops.unpad_chw(dxp, (self.p,) * 4), {}


class GlobalAvgPool2DLayer(Layer):
    """``x: (C, N, H, W) -> out: (N, C)``, the mean of each map (NIN's classifier head)."""

    def __init__(self, spec, in_shape: Shape):
        super().__init__(spec, in_shape)
        self.output_shape(in_shape)

    def output_shape(self, in_shape: Shape) -> Shape:
        c, _, _ = require_spatial(in_shape, "global pooling needs feature maps")
        return (c,)

    def receptive_field(self, rf, in_shape):
        return global_receptive_field(rf, in_shape)

    def forward(self, x, *, train=False, rng=None):
        return x.mean(axis=(2, 3)).T, x.shape

    def backward(self, dout, cache, *, need_dx=True, need_grads=True):
        if not need_dx:
            return None, {}
        c, n, h, w = cache
        dx = np.empty(cache, dtype=dout.dtype)
        dx[...] = (dout.T / (h * w))[:, :, None, None]
        return dx, {}
