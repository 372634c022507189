"""The layer-type registry: one row per type, pairing what it is (its spec class, which declares its
title, kind, explanation, fields, parameters and buffers) with how it computes (its layer class).

Adding a layer type: a spec class in `engine.specs`, a layer in `engine.layers`, a row here.
The API (`GET /api/v1/layer-types`), the page, the weight count and checkpoints all read this table.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.layers.activations import LeakyReLULayer, ReLULayer, SigmoidLayer, TanhLayer
from engine.layers.base import Layer, Shape
from engine.layers.conv import Conv2DLayer
from engine.layers.dense import DenseLayer, FlattenLayer
from engine.layers.dropout import DropoutLayer
from engine.layers.norm import BatchNorm2DLayer
from engine.layers.pool import AvgPool2DLayer, GlobalAvgPool2DLayer, MaxPool2DLayer
from engine.layers.softmax import SoftmaxLayer
from engine.specs import (
    KINDS,
    AvgPool2D,
    BatchNorm2D,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    GlobalAvgPool2D,
    LayerSpec,
    LeakyReLU,
    MaxPool2D,
    ReLU,
    Sigmoid,
    Softmax,
    Tanh,
)


@dataclass(frozen=True)
class LayerType:
    """One registry row: the spec class (what the type is) and the layer class (how it computes)."""

    spec: type
    layer: type[Layer]

    @property
    def type(self) -> str:
        return self.spec.type  # type: ignore[attr-defined]


REGISTRY: dict[str, LayerType] = {
    row.type: row
    for row in (
        LayerType(Conv2D, Conv2DLayer),
        LayerType(ReLU, ReLULayer),
        LayerType(LeakyReLU, LeakyReLULayer),
        LayerType(Sigmoid, SigmoidLayer),
        LayerType(Tanh, TanhLayer),
        LayerType(MaxPool2D, MaxPool2DLayer),
        LayerType(AvgPool2D, AvgPool2DLayer),
        LayerType(GlobalAvgPool2D, GlobalAvgPool2DLayer),
        LayerType(Dropout, DropoutLayer),
        LayerType(Flatten, FlattenLayer),
        LayerType(Dense, DenseLayer),
        LayerType(Softmax, SoftmaxLayer),
        LayerType(BatchNorm2D, BatchNorm2DLayer),
    )
}


def build_layer(spec: LayerSpec, in_shape: Shape, rng: np.random.Generator, dtype=np.float32) -> Layer:
    """Instantiate the layer for ``spec`` on a per-example input shape; raises `ShapeError` if it cannot fit."""
    layer = REGISTRY[spec.type].layer(spec, in_shape, rng, dtype)
    layer.output_shape(in_shape)
    return layer


def weight_count(spec: LayerSpec, in_shape: Shape) -> int:
    """Learned values a layer would allocate on ``in_shape``, counted before allocating them."""
    return sum(int(np.prod(s)) for s in spec.param_shapes(in_shape).values())


def _field_json(spec_cls: type, f: Any) -> dict[str, Any]:
    default = next(d.default for d in dataclasses.fields(spec_cls) if d.name == f.name)
    entry: dict[str, Any] = {"name": f.name, "kind": f.kind, "help": f.help}
    if default is dataclasses.MISSING:
        entry["required"] = True
    else:
        entry["default"] = default
    if f.min is not None:
        entry["min"] = f.min
    if f.max is not None:
        entry["max"] = f.max
    if f.choices:
        entry["choices"] = list(f.choices)
    if f.nullable:
        entry["nullable"] = True
    return entry


def layer_types() -> list[dict[str, Any]]:
    """Every layer type's facts as JSON: what the API publishes and the page reads."""
    return [
        {
            "type": row.type,
            "title": row.spec.title,
            "kind": row.spec.kind,
            "explanation": row.spec.explanation,
            "fields": [_field_json(row.spec, f) for f in row.spec.fields],
            "parameters": list(row.spec.parameters),
            "buffers": list(row.spec.buffers),
        }
        for row in REGISTRY.values()
    ]


def check_registry() -> None:
    """Every row is complete and consistent: raises AssertionError naming what is missing."""
    for name, row in REGISTRY.items():
        declared = {f.name for f in row.spec.fields}
        fields = {f.name for f in dataclasses.fields(row.spec) if f.name != "type"}
        assert declared == fields, f"{name}: declared fields {sorted(declared)} != dataclass fields {sorted(fields)}"
        assert row.spec.kind in KINDS, f"{name}: kind {row.spec.kind!r} is not one of {KINDS}"
        assert row.spec.title and row.spec.explanation.endswith("."), f"{name}: needs a title and a one-sentence explanation"
