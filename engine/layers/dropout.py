"""Inverted dropout: random zeroes in training, identity in evaluation."""

from __future__ import annotations

import numpy as np

from engine.layers.base import Layer


class DropoutLayer(Layer):
    """Training: ``out = x * mask / (1 - rate)`` with ``mask ~ Bernoulli(1 - rate)`` drawn from ``rng``.

    Evaluation: ``out = x``. Scaling at training time keeps expected activations equal in both modes.
    """

    def forward(self, x, *, train=False, rng=None):
        rate = self.spec.rate
        if not train or rate == 0:
            return x, None
        if rng is None:
            raise ValueError("dropout in training needs an explicit numpy Generator (rng=...)")
        mask = (rng.random(x.shape, dtype=np.float32) >= rate).astype(x.dtype) * x.dtype.type(1.0 / (1.0 - rate))
        return x * mask, mask

    def backward(self, dout, cache, *, need_dx=True, need_grads=True):
        if not need_dx:
            return None, {}
        return (dout if cache is None else dout * cache), {}
