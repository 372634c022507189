"""Typed model specs: one frozen dataclass per layer type, parsed and validated once at the edge.

A spec is the JSON document used everywhere (Python, REST, checkpoints)::

    {"version": 1, "input_shape": [3, 64, 64],
     "layers": [{"type": "conv2d", "filters": 10, "kernel_size": 3}, {"type": "relu"}, ...]}

`parse_spec` checks field types and ranges; `engine.model.Model` then checks shapes layer by layer.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Union

SPEC_VERSION = 1
MAX_SIDE = 512
MAX_FILTERS = 1024
MAX_UNITS = 8192
MAX_LAYERS = 64


class SpecError(ValueError):
    """A spec that cannot be built; ``layer_index`` names the offending layer when there is one."""

    def __init__(self, message: str, layer_index: int | None = None):
        super().__init__(message)
        self.message = message
        self.layer_index = layer_index


@dataclass(frozen=True)
class Conv2D:
    """2-D convolution. ``padding``: pixels on every side, ``"valid"`` (0) or ``"same"`` (stride 1 only)."""

    filters: int
    kernel_size: int
    stride: int = 1
    padding: int | Literal["same", "valid"] = 0
    bias: bool = True
    type: Literal["conv2d"] = "conv2d"
    ranges: ClassVar[dict] = {"filters": (1, MAX_FILTERS), "kernel_size": (1, 15), "stride": (1, 8), "padding": (0, 16)}


@dataclass(frozen=True)
class ReLU:
    """max(x, 0): keeps positive evidence, zeroes the rest."""

    type: Literal["relu"] = "relu"


@dataclass(frozen=True)
class LeakyReLU:
    """x if x > 0 else alpha * x: a small slope for negatives, so units never go silent."""

    alpha: float = 0.01
    type: Literal["leaky_relu"] = "leaky_relu"
    ranges: ClassVar[dict] = {"alpha": (0.0, 1.0)}


@dataclass(frozen=True)
class Sigmoid:
    """1 / (1 + exp(-x)): squashes to (0, 1)."""

    type: Literal["sigmoid"] = "sigmoid"


@dataclass(frozen=True)
class Tanh:
    """tanh(x): squashes to (-1, 1), centred on 0."""

    type: Literal["tanh"] = "tanh"


@dataclass(frozen=True)
class MaxPool2D:
    """Max pooling; ``stride`` defaults to ``pool_size``; padding (at most pool_size // 2) pads with -inf."""

    pool_size: int
    stride: int | None = None
    padding: int = 0
    type: Literal["maxpool2d"] = "maxpool2d"
    ranges: ClassVar[dict] = {"pool_size": (1, 16), "stride": (1, 16), "padding": (0, 8)}


@dataclass(frozen=True)
class AvgPool2D:
    """Average pooling; zero padding counts in the average (PyTorch's ``count_include_pad=True``)."""

    pool_size: int
    stride: int | None = None
    padding: int = 0
    type: Literal["avgpool2d"] = "avgpool2d"
    ranges: ClassVar[dict] = MaxPool2D.ranges


@dataclass(frozen=True)
class GlobalAvgPool2D:
    """Mean over H and W: ``(C, H, W) -> (C,)``."""

    type: Literal["global_avgpool2d"] = "global_avgpool2d"


@dataclass(frozen=True)
class Dropout:
    """Inverted dropout: zero with probability ``rate`` and scale by 1/(1-rate) in training; identity in evaluation."""

    rate: float = 0.5
    type: Literal["dropout"] = "dropout"
    ranges: ClassVar[dict] = {"rate": (0.0, 0.95)}


@dataclass(frozen=True)
class Flatten:
    """``(C, H, W) -> (C*H*W,)`` in C, H, W order (as PyTorch's ``flatten(1)``)."""

    type: Literal["flatten"] = "flatten"


@dataclass(frozen=True)
class Dense:
    """Fully connected: every output unit weighs every input value (weight: [units, inputs])."""

    units: int
    bias: bool = True
    type: Literal["dense"] = "dense"
    ranges: ClassVar[dict] = {"units": (1, MAX_UNITS)}


@dataclass(frozen=True)
class Softmax:
    """Softmax over the feature axis; fused with cross-entropy in training."""

    type: Literal["softmax"] = "softmax"


LayerSpec = Union[
    Conv2D, ReLU, LeakyReLU, Sigmoid, Tanh, MaxPool2D, AvgPool2D, GlobalAvgPool2D, Dropout, Flatten, Dense, Softmax
]
LAYER_TYPES: dict[str, type] = {
    cls.type: cls  # type: ignore[attr-defined]
    for cls in (Conv2D, ReLU, LeakyReLU, Sigmoid, Tanh, MaxPool2D, AvgPool2D, GlobalAvgPool2D, Dropout, Flatten, Dense, Softmax)
}


@dataclass(frozen=True)
class ModelSpec:
    """A whole network: input shape ``(C, H, W)`` and its layers in order."""

    input_shape: tuple[int, int, int]
    layers: tuple[LayerSpec, ...] = field(default_factory=tuple)
    version: int = SPEC_VERSION


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _check_field(where: str, name: str, value: Any, annotation: str, ranges: dict, index: int | None) -> Any:
    """Validate one field against its annotation string and optional (lo, hi) range."""
    allowed_str = [s for s in ("same", "valid") if f"'{s}'" in annotation or f'"{s}"' in annotation]
    if isinstance(value, str) and allowed_str:
        if value not in allowed_str:
            raise SpecError(f"{where}: {name} must be an integer or one of {allowed_str}, got {value!r}", index)
        return value
    if annotation.startswith("bool"):
        if not isinstance(value, bool):
            raise SpecError(f"{where}: {name} must be true or false, got {value!r}", index)
        return value
    if annotation.startswith("int"):
        if value is None and "None" in annotation:
            return None
        if not _is_int(value):
            raise SpecError(f"{where}: {name} must be an integer, got {value!r}", index)
    elif annotation.startswith("float"):
        if not (_is_int(value) or isinstance(value, float)) or not math.isfinite(value):
            raise SpecError(f"{where}: {name} must be a finite number, got {value!r}", index)
        value = float(value)
    lo, hi = ranges.get(name, (0, None))
    if value < lo or (hi is not None and value > hi):
        upper = f" and at most {hi}" if hi is not None else ""
        raise SpecError(f"{where}: {name} must be at least {lo}{upper}, got {value}", index)
    return value


def parse_layer(obj: Any, index: int | None = None) -> LayerSpec:
    """Build one layer spec from its JSON dict; raises `SpecError` naming the layer."""
    where = f"layer {index}" if index is not None else "layer"
    if not isinstance(obj, Mapping):
        raise SpecError(f"{where}: expected an object with a 'type', got {type(obj).__name__}", index)
    kind = obj.get("type")
    if kind not in LAYER_TYPES:
        raise SpecError(f"{where}: unknown type {kind!r}; known types: {', '.join(LAYER_TYPES)}", index)
    cls = LAYER_TYPES[kind]
    where = f"{where} ({kind})"
    fields = {f.name: f for f in dataclasses.fields(cls) if f.name != "type"}
    unknown = sorted(set(obj) - set(fields) - {"type"})
    if unknown:
        raise SpecError(f"{where}: unknown field(s) {unknown}; allowed: {sorted(fields)}", index)
    ranges = getattr(cls, "ranges", {})
    kwargs = {}
    for name, f in fields.items():
        if name not in obj:
            if f.default is dataclasses.MISSING:
                raise SpecError(f"{where}: missing required field {name!r}", index)
            continue
        kwargs[name] = _check_field(where, name, obj[name], str(f.type), ranges, index)
    return cls(**kwargs)


def parse_spec(obj: Any) -> ModelSpec:
    """Parse and validate a JSON model spec (types and ranges; shapes are checked by the model)."""
    if not isinstance(obj, Mapping):
        raise SpecError("a spec must be an object with 'input_shape' and 'layers'")
    unknown = sorted(set(obj) - {"version", "input_shape", "layers"})
    if unknown:
        raise SpecError(f"spec: unknown field(s) {unknown}; allowed: version, input_shape, layers")
    version = obj.get("version", SPEC_VERSION)
    if not _is_int(version) or version != SPEC_VERSION:
        raise SpecError(f"spec: version must be {SPEC_VERSION}, got {version!r}")
    shape = obj.get("input_shape")
    if not (isinstance(shape, (list, tuple)) and len(shape) == 3 and all(_is_int(v) for v in shape)):
        raise SpecError(f"spec: input_shape must be [C, H, W] integers, got {shape!r}")
    c, h, w = shape
    if c not in (1, 3):
        raise SpecError(f"spec: input_shape channels must be 1 (grey) or 3 (RGB), got {c}")
    if not (1 <= h <= MAX_SIDE and 1 <= w <= MAX_SIDE):
        raise SpecError(f"spec: input height and width must be between 1 and {MAX_SIDE}, got {h}x{w}")
    layers = obj.get("layers")
    if not isinstance(layers, (list, tuple)) or not layers:
        raise SpecError("spec: layers must be a non-empty list")
    if len(layers) > MAX_LAYERS:
        raise SpecError(f"spec: at most {MAX_LAYERS} layers, got {len(layers)}")
    return ModelSpec(input_shape=(c, h, w), layers=tuple(parse_layer(layer, i) for i, layer in enumerate(layers)))


def layer_to_dict(layer: LayerSpec) -> dict[str, Any]:
    """JSON form of one layer spec, ``type`` first, every field explicit."""
    d = {"type": layer.type}
    d.update({f.name: getattr(layer, f.name) for f in dataclasses.fields(layer) if f.name != "type"})
    return d


def spec_to_dict(spec: ModelSpec) -> dict[str, Any]:
    """JSON form of a spec (round-trips through `parse_spec`)."""
    return {
        "version": spec.version,
        "input_shape": list(spec.input_shape),
        "layers": [layer_to_dict(layer) for layer in spec.layers],
    }


def layer_schema() -> list[dict[str, Any]]:
    """Every layer type with its fields, defaults and ranges: the page builds its editor from this."""
    out = []
    for kind, cls in LAYER_TYPES.items():
        ranges = getattr(cls, "ranges", {})
        fields = []
        for f in dataclasses.fields(cls):
            if f.name == "type":
                continue
            entry: dict[str, Any] = {"name": f.name, "annotation": str(f.type)}
            if f.default is not dataclasses.MISSING:
                entry["default"] = f.default
            else:
                entry["required"] = True
            if f.name in ranges:
                entry["min"], entry["max"] = ranges[f.name]
            fields.append(entry)
        out.append({"type": kind, "doc": " ".join((cls.__doc__ or "").replace("``", "").split()), "fields": fields})
    return out
