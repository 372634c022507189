"""Softmax over the class axis."""

from __future__ import annotations

import numpy as np

from engine.layers.base import Layer, Shape, ShapeError


def softmax(z: np.ndarray) -> np.ndarray:
    """``z: (N, K) -> (N, K)``, rows summing to 1; shifted by the row max so exp never overflows."""
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


class SoftmaxLayer(Layer):
    """``x: (N, K) -> p: (N, K)``. Backward: ``dx = p * (dout - sum(dout * p))``.

    With cross-entropy the model skips this backward and uses the fused ``p - onehot`` instead.
    """

    def output_shape(self, in_shape: Shape) -> Shape:
        if len(in_shape) != 1:
            raise ShapeError(f"needs a flat vector of class scores but gets a {'x'.join(map(str, in_shape))} map; add flatten/dense or global_avgpool2d first")
        return tuple(in_shape)

    def forward(self, x, *, train=False, rng=None):
        p = softmax(x)
        return p, p

    def backward(self, dout, cache, *, need_dx=True, need_grads=True):
        if not need_dx:
            return None, {}
        p = cache
        return p * (dout - (dout * p).sum(axis=1, keepdims=True)), {}
