"""Layer pairs that run faster as one unit when no one looks between them (training, batched prediction).

`fuse` maps a model's layers to the units its training pass runs; the page and the explanations
still run the layers one by one, since they read every layer's output or gradient.
"""

from __future__ import annotations

import numpy as np

from engine.layers.activations import ReLULayer
from engine.layers.base import Layer, Shape
from engine.layers.pool import MaxPool2DLayer


class ReLUMaxPool:
    """``relu`` then ``maxpool2d``, run as the pool then the relu on its (k*k times smaller) output.

    The two commute exactly: relu is monotone and the pool only picks values. Gradients match the
    pair's too: where a window's maximum is positive its first maximum is the same input either way;
    elsewhere the relu passes no gradient. Same cache contract as a layer.
    """

    def __init__(self, pool: MaxPool2DLayer):
        self.pool = pool
        self.params: dict[str, np.ndarray] = {}

    def output_shape(self, in_shape: Shape) -> Shape:
        return self.pool.output_shape(in_shape)

    def forward(self, x, *, train=False, rng=None):
        pooled, cache = self.pool.forward(x)
        out = np.maximum(pooled, 0)
        return out, (cache, out)

    def backward(self, dout, cache, *, need_dx=True, need_grads=True):
        if not need_dx:
            return None, {}
        pool_cache, out = cache
        return self.pool.backward(dout * (out > 0), pool_cache)

    def updated_buffers(self, cache) -> dict:
        """Neither half keeps buffers."""
        return {}


def fuse(layers: list[Layer]) -> list[tuple[int, int, object]]:
    """``(start, stop, unit)`` covering ``layers`` in order: ``unit`` computes ``layers[start:stop]``."""
    units, i = [], 0
    while i < len(layers):
        if isinstance(layers[i], ReLULayer) and i + 1 < len(layers) and isinstance(layers[i + 1], MaxPool2DLayer):
            units.append((i, i + 2, ReLUMaxPool(layers[i + 1])))
            i += 2
        else:
            units.append((i, i + 1, layers[i]))
            i += 1
    return units
