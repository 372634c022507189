"""Flatten and fully connected layers."""

from __future__ import annotations

import numpy as np

from engine.layers.base import Layer, Shape, ShapeError, global_receptive_field


class FlattenLayer(Layer):
    """``x: (C, N, H, W) -> (N, C*H*W)`` in C, H, W order (PyTorch's ``flatten(1)`` on NCHW); flat input passes."""

    def output_shape(self, in_shape: Shape) -> Shape:
        return (int(np.prod(in_shape)),)

    def receptive_field(self, rf, in_shape):
        return global_receptive_field(rf, in_shape)

    def forward(self, x, *, train=False, rng=None):
        if x.ndim == 2:
            return x, None
        return x.transpose(1, 0, 2, 3).reshape(x.shape[1], -1), x.shape

    def backward(self, dout, cache, *, need_dx=True, need_grads=True):
        if not need_dx or cache is None:
            return (dout if need_dx else None), {}
        c, n, h, w = cache
        return dout.reshape(n, c, h, w).transpose(1, 0, 2, 3), {}


class DenseLayer(Layer):
    """``x: (N, D) -> out: (N, units) = x @ weight.T + bias``; ``weight: (units, D)`` as PyTorch's ``nn.Linear``."""

    def __init__(self, spec, in_shape: Shape, rng: np.random.Generator, dtype=np.float32):
        super().__init__(spec, in_shape)
        self.output_shape(in_shape)
        fan_in = in_shape[0]
        bound = np.sqrt(6.0 / fan_in)
        self.params = {"weight": rng.uniform(-bound, bound, size=(spec.units, fan_in)).astype(dtype)}
        if spec.bias:
            self.params["bias"] = np.zeros(spec.units, dtype=dtype)

    def output_shape(self, in_shape: Shape) -> Shape:
        if len(in_shape) != 1:
            raise ShapeError(f"needs a flat vector but gets a {'x'.join(map(str, in_shape))} feature map; add a flatten layer first")
        return (self.spec.units,)

    def macs(self, in_shape: Shape) -> int:
        return in_shape[0] * self.spec.units

    def receptive_field(self, rf, in_shape):
        return global_receptive_field(rf, in_shape)

    def forward(self, x, *, train=False, rng=None):
        out = x @ self.params["weight"].T
        if "bias" in self.params:
            out += self.params["bias"]
        return out, x

    def backward(self, dout, cache, *, need_dx=True, need_grads=True):
        grads = {}
        if need_grads:
            grads["weight"] = dout.T @ cache
            if "bias" in self.params:
                grads["bias"] = dout.sum(axis=0)
        return (dout @ self.params["weight"] if need_dx else None), grads
