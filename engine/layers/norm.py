"""Batch normalization over the channels of feature maps."""

from __future__ import annotations

import numpy as np

from engine.layers.base import Layer, Shape, require_spatial
from engine.specs import BatchNorm2D


class BatchNorm2DLayer(Layer):
    """``x: (C, N, H, W) -> out: (C, N, H, W)``, per channel c:
    ``out = (x - mean_c) / sqrt(var_c + eps) * weight_c + bias_c``.

    Training: mean and biased variance of the batch over (N, H, W); the whole batch is one set of
    statistics (``whole_batch``), and `updated_buffers` gives the running statistics it implies.
    Evaluation: the running statistics. Parameters ``weight``, ``bias`` ``(C,)`` (when ``affine``);
    buffers ``running_mean``, ``running_var`` ``(C,)``, as PyTorch's ``nn.BatchNorm2d``.
    """

    spec: BatchNorm2D
    whole_batch = True

    def __init__(self, spec: BatchNorm2D, in_shape: Shape, rng: np.random.Generator | None = None, dtype=np.float32):
        super().__init__(spec, in_shape)
        self.output_shape(in_shape)
        c = in_shape[0]
        if spec.affine:
            self.params = {"weight": np.ones(c, dtype=dtype), "bias": np.zeros(c, dtype=dtype)}
        self.buffers = {"running_mean": np.zeros(c, dtype=dtype), "running_var": np.ones(c, dtype=dtype)}

    def output_shape(self, in_shape: Shape) -> Shape:
        return require_spatial(in_shape, "batchnorm2d normalizes feature maps; put it before flatten/dense")

    def forward(self, x, *, train=False, rng=None):
        per_channel = (slice(None), None, None, None)
        if train:
            mean = x.mean(axis=(1, 2, 3))
            centred = x - mean[per_channel]
            var = np.mean(centred * centred, axis=(1, 2, 3))
        else:
            mean, var = self.buffers["running_mean"], self.buffers["running_var"]
            centred = x - mean[per_channel]
        inv_std = (1.0 / np.sqrt(var + self.spec.eps)).astype(x.dtype)
        xhat = centred * inv_std[per_channel]
        out = xhat
        if self.spec.affine:
            out = xhat * self.params["weight"][per_channel] + self.params["bias"][per_channel]
        count = x.shape[1] * x.shape[2] * x.shape[3]
        return out, (train, xhat, inv_std, mean, var, count)

    def backward(self, dout, cache, *, need_dx=True, need_grads=True):
        train, xhat, inv_std, _, _, count = cache
        per_channel = (slice(None), None, None, None)
        grads = {}
        if need_grads and self.spec.affine:
            grads = {"weight": np.sum(dout * xhat, axis=(1, 2, 3)), "bias": dout.sum(axis=(1, 2, 3))}
        if not need_dx:
            return None, grads
        dxhat = dout * self.params["weight"][per_channel] if self.spec.affine else dout
        if not train:
            return dxhat * inv_std[per_channel], grads
        # the batch's mean and variance depend on every x too: remove the gradient's mean and its
        # component along xhat, channel by channel
        mean_d = dxhat.mean(axis=(1, 2, 3))
        mean_dx = np.mean(dxhat * xhat, axis=(1, 2, 3))
        dx = (dxhat - mean_d[per_channel] - xhat * mean_dx[per_channel]) * inv_std[per_channel]
        return dx, grads

    def updated_buffers(self, cache) -> dict[str, np.ndarray]:
        train, _, _, mean, var, count = cache
        if not train:
            return {}
        m = self.spec.momentum
        unbiased = var * (count / (count - 1)) if count > 1 else var
        return {
            "running_mean": ((1 - m) * self.buffers["running_mean"] + m * mean).astype(self.buffers["running_mean"].dtype),
            "running_var": ((1 - m) * self.buffers["running_var"] + m * unbiased).astype(self.buffers["running_var"].dtype),
        }
