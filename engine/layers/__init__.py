"""Layer families, one file each, and `build_layer`, the one place a spec type maps to its class."""

from __future__ import annotations

import numpy as np

from engine.layers.activations import LeakyReLULayer, ReLULayer, SigmoidLayer, TanhLayer
from engine.layers.base import Layer, ReceptiveField, Shape, ShapeError
from engine.layers.conv import Conv2DLayer
from engine.layers.dense import DenseLayer, FlattenLayer
from engine.layers.dropout import DropoutLayer
from engine.layers.pool import AvgPool2DLayer, GlobalAvgPool2DLayer, MaxPool2DLayer
from engine.layers.softmax import SoftmaxLayer
from engine.specs import LayerSpec

_PLAIN = {
    "relu": ReLULayer,
    "leaky_relu": LeakyReLULayer,
    "sigmoid": SigmoidLayer,
    "tanh": TanhLayer,
    "maxpool2d": MaxPool2DLayer,
    "avgpool2d": AvgPool2DLayer,
    "global_avgpool2d": GlobalAvgPool2DLayer,
    "dropout": DropoutLayer,
    "flatten": FlattenLayer,
    "softmax": SoftmaxLayer,
}
_WEIGHTED = {"conv2d": Conv2DLayer, "dense": DenseLayer}


def build_layer(spec: LayerSpec, in_shape: Shape, rng: np.random.Generator, dtype=np.float32) -> Layer:
    """Instantiate the layer for ``spec`` on a per-example input shape; raises `ShapeError` if it cannot fit."""
    if spec.type in _WEIGHTED:
        return _WEIGHTED[spec.type](spec, in_shape, rng, dtype)
    layer = _PLAIN[spec.type](spec, in_shape)
    layer.output_shape(in_shape)
    return layer


__all__ = ["Layer", "ReceptiveField", "Shape", "ShapeError", "build_layer"]
