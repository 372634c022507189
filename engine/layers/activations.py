"""Element-wise non-linearities: relu, leaky_relu, sigmoid, tanh (any layout, shape-preserving)."""

from __future__ import annotations

import numpy as np

from engine.layers.base import Layer


class ReLULayer(Layer):
    """``out = max(x, 0)``; the gradient flows where ``x > 0``."""

    def forward(self, x, *, train=False, rng=None):
        out = np.maximum(x, 0)
        return out, out

    def backward(self, dout, cache, *, need_dx=True, need_grads=True):
        return (dout * (cache > 0) if need_dx else None), {}


class LeakyReLULayer(Layer):
    """``out = x if x > 0 else alpha * x``."""

    def forward(self, x, *, train=False, rng=None):
        positive = x > 0
        return np.where(positive, x, x * x.dtype.type(self.spec.alpha)), positive

    def backward(self, dout, cache, *, need_dx=True, need_grads=True):
        if not need_dx:
            return None, {}
        return np.where(cache, dout, dout * dout.dtype.type(self.spec.alpha)), {}


class SigmoidLayer(Layer):
    """``out = 1 / (1 + exp(-x))``, computed without overflow for large ``|x|``."""

    def forward(self, x, *, train=False, rng=None):
        e = np.exp(-np.abs(x))
        out = np.where(x >= 0, 1 / (1 + e), e / (1 + e))
        return out, out

    def backward(self, dout, cache, *, need_dx=True, need_grads=True):
        return (dout * cache * (1 - cache) if need_dx else None), {}


class TanhLayer(Layer):
    """``out = tanh(x)``; ``d/dx = 1 - out^2``."""

    def forward(self, x, *, train=False, rng=None):
        out = np.tanh(x)
        return out, out

    def backward(self, dout, cache, *, need_dx=True, need_grads=True):
        return (dout * (1 - cache * cache) if need_dx else None), {}
