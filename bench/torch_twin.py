"""The PyTorch twin of an engine network, for the parity tests and the benchmark alike.

The layouts are the engine's (conv weight ``[F, C, kh, kw]``, dense ``[out, in]``, flatten in C, H, W
order), so weights are copied without transposes. The twin holds its layers in a child named
``layers``, so its ``state_dict`` keys are the engine's names: ``layers.{i}.weight``,
``layers.{i}.bias`` and, for batch normalization, the buffers ``layers.{i}.running_mean`` and
``layers.{i}.running_var``; ``twin.layers[i]`` is engine layer ``i``.

Importing this module imports torch; engine/ and app/ never do.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from engine.model import Model
from engine.specs import ModelSpec


class GlobalAvgPool2d(nn.Module):
    """``(N, C, H, W) -> (N, C)``: the mean over H and W, as the engine's ``global_avgpool2d``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3))


def torch_layer(spec: Any, in_shape: tuple[int, ...], params: Mapping[str, np.ndarray] | None = None,
                buffers: Mapping[str, np.ndarray] | None = None) -> nn.Module:
    """The module equivalent to one engine layer spec on a per-example input shape ``(C, H, W)`` or ``(D,)``.

    ``params`` (``{"weight": ..., "bias": ...}``) and ``buffers`` (``{"running_mean": ...}``) are
    copied in when given; a module's own initialisation stays otherwise.
    """
    t = spec.type
    if t == "conv2d":
        module = nn.Conv2d(in_shape[0], spec.filters, spec.kernel_size, stride=spec.stride, padding=spec.padding, bias=spec.bias)
    elif t == "dense":
        module = nn.Linear(in_shape[0], spec.units, bias=spec.bias)
    elif t == "batchnorm2d":
        module = nn.BatchNorm2d(in_shape[0], eps=spec.eps, momentum=spec.momentum, affine=spec.affine)
    elif t == "maxpool2d":
        module = nn.MaxPool2d(spec.pool_size, stride=spec.stride or spec.pool_size, padding=spec.padding)
    elif t == "avgpool2d":
        module = nn.AvgPool2d(spec.pool_size, stride=spec.stride or spec.pool_size, padding=spec.padding, count_include_pad=True)
    else:
        simple = {
            "relu": nn.ReLU,
            "leaky_relu": lambda: nn.LeakyReLU(spec.alpha),
            "sigmoid": nn.Sigmoid,
            "tanh": nn.Tanh,
            "global_avgpool2d": GlobalAvgPool2d,
            "dropout": lambda: nn.Dropout(spec.rate),
            "flatten": nn.Flatten,
            "softmax": lambda: nn.Softmax(dim=1),
        }
        if t not in simple:
            raise ValueError(f"no PyTorch twin for layer type {t!r}")
        module = simple[t]()
    with torch.no_grad():
        for name, arr in {**(params or {}), **(buffers or {})}.items():
            getattr(module, name).copy_(torch.from_numpy(np.array(arr)))
    return module


def torch_twin(model_or_spec: Model | ModelSpec | Mapping, params: Mapping[str, np.ndarray] | None = None) -> nn.Sequential:
    """An ``nn.Sequential`` computing what the engine model computes, in evaluation mode.

    ``model_or_spec``: an engine `Model` (its weights and buffers are copied), or a spec (the
    engine's own initial weights, ``Model.build(spec, seed=0)``). ``params``, when given, replaces
    the weights: a mapping ``{"layers.{i}.weight": array, ...}`` with some or all of the engine's names.
    ``twin.state_dict()`` has the keys of the engine's params and buffers (and, for each batch
    normalization, PyTorch's own ``layers.{i}.num_batches_tracked``).
    """
    model = model_or_spec if isinstance(model_or_spec, Model) else Model.build(model_or_spec, seed=0)
    unknown = sorted(set(params or {}) - set(model.params))
    if unknown:
        raise KeyError(f"not parameters of this model: {unknown}")
    arrays = {**model.params, **(params or {})}
    buffers = getattr(model, "buffers", {})

    def of_layer(source: Mapping[str, np.ndarray], i: int) -> dict[str, np.ndarray]:
        prefix = f"layers.{i}."
        return {name[len(prefix):]: arr for name, arr in source.items() if name.startswith(prefix)}

    layers = [torch_layer(s, info.input_shape, of_layer(arrays, i), of_layer(buffers, i))
              for i, (s, info) in enumerate(zip(model.spec.layers, model.info))]
    twin = nn.Sequential(OrderedDict(layers=nn.Sequential(*layers)))
    return twin.eval()
