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


Shape = tuple[int, ...]
KINDS = ("weighted", "normalize", "elementwise", "window", "reshape", "output")


@dataclass(frozen=True)
class Field:
    """One field of a layer type, declared for the parser, the API and the page's editor.

    ``kind``: "int", "float" or "bool"; ``min``/``max``: inclusive bounds for numbers; ``choices``:
    strings accepted besides a number (``padding: "same"``); ``nullable``: None means "automatic".
    """

    name: str
    kind: Literal["int", "float", "bool"]
    min: float | None = None
    max: float | None = None
    choices: tuple[str, ...] = ()
    nullable: bool = False
    help: str = ""


class LayerFacts:
    """What a layer type *is*, declared on its spec class and read by every other part of the product.

    ``title`` (short, for columns), ``kind`` (one of `KINDS`: how the page treats its units),
    ``explanation`` (one plain sentence for a learner), ``fields`` (see `Field`), ``parameters`` and
    ``buffers`` (the array names it may hold; `param_shapes`/`buffer_shapes` give their shapes).
    """

    title: ClassVar[str]
    kind: ClassVar[str]
    explanation: ClassVar[str]
    fields: ClassVar[tuple[Field, ...]] = ()
    parameters: ClassVar[tuple[str, ...]] = ()
    buffers: ClassVar[tuple[str, ...]] = ()

    def param_shapes(self, in_shape: Shape) -> dict[str, Shape]:
        """Learned arrays on a per-example input shape, in PyTorch layouts (none by default)."""
        return {}

    def buffer_shapes(self, in_shape: Shape) -> dict[str, Shape]:
        """State that is not learned by gradient (running statistics), by name (none by default)."""
        return {}


@dataclass(frozen=True)
class Conv2D(LayerFacts):
    """2-D convolution. ``padding``: pixels on every side, ``"valid"`` (0) or ``"same"`` (stride 1 only)."""

    filters: int
    kernel_size: int
    stride: int = 1
    padding: int | Literal["same", "valid"] = 0
    bias: bool = True
    type: Literal["conv2d"] = "conv2d"

    title: ClassVar[str] = "Conv"
    kind: ClassVar[str] = "weighted"
    explanation: ClassVar[str] = ("Each output map is one filter slid over every input channel: "
                                  "a weighted sum of a small window, plus a bias.")
    fields: ClassVar[tuple[Field, ...]] = (
        Field("filters", "int", 1, MAX_FILTERS, help="how many filters, so how many output maps"),
        Field("kernel_size", "int", 1, 15, help="side of each filter's square window"),
        Field("stride", "int", 1, 8, help="how far the window moves between positions"),
        Field("padding", "int", 0, 16, choices=("same", "valid"), help="zeros added around the input"),
        Field("bias", "bool", help="add a learned constant to each map"),
    )
    parameters: ClassVar[tuple[str, ...]] = ("weight", "bias")

    def param_shapes(self, in_shape: Shape) -> dict[str, Shape]:
        k = self.kernel_size
        shapes: dict[str, Shape] = {"weight": (self.filters, in_shape[0], k, k)}
        return shapes | ({"bias": (self.filters,)} if self.bias else {})


@dataclass(frozen=True)
class ReLU(LayerFacts):
    """max(x, 0): keeps positive evidence, zeroes the rest."""

    type: Literal["relu"] = "relu"

    title: ClassVar[str] = "ReLU"
    kind: ClassVar[str] = "elementwise"
    explanation: ClassVar[str] = "ReLU keeps positive values and sets negative ones to zero."


@dataclass(frozen=True)
class LeakyReLU(LayerFacts):
    """x if x > 0 else alpha * x: a small slope for negatives, so units never go silent."""

    alpha: float = 0.01
    type: Literal["leaky_relu"] = "leaky_relu"

    title: ClassVar[str] = "Leaky ReLU"
    kind: ClassVar[str] = "elementwise"
    explanation: ClassVar[str] = "Leaky ReLU keeps positive values and shrinks negative ones by a small factor."
    fields: ClassVar[tuple[Field, ...]] = (Field("alpha", "float", 0.0, 1.0, help="slope for negative values"),)


@dataclass(frozen=True)
class Sigmoid(LayerFacts):
    """1 / (1 + exp(-x)): squashes to (0, 1)."""

    type: Literal["sigmoid"] = "sigmoid"

    title: ClassVar[str] = "Sigmoid"
    kind: ClassVar[str] = "elementwise"
    explanation: ClassVar[str] = "Sigmoid squashes every value into the range 0 to 1."


@dataclass(frozen=True)
class Tanh(LayerFacts):
    """tanh(x): squashes to (-1, 1), centred on 0."""

    type: Literal["tanh"] = "tanh"

    title: ClassVar[str] = "Tanh"
    kind: ClassVar[str] = "elementwise"
    explanation: ClassVar[str] = "Tanh squashes every value into the range -1 to 1, keeping its sign."


_POOL_FIELDS = (
    Field("pool_size", "int", 1, 16, help="side of each square window"),
    Field("stride", "int", 1, 16, nullable=True, help="how far the window moves (empty: the pool size)"),
    Field("padding", "int", 0, 8, help="border added around the input"),
)


@dataclass(frozen=True)
class MaxPool2D(LayerFacts):
    """Max pooling; ``stride`` defaults to ``pool_size``; padding (at most pool_size // 2) pads with -inf."""

    pool_size: int
    stride: int | None = None
    padding: int = 0
    type: Literal["maxpool2d"] = "maxpool2d"

    title: ClassVar[str] = "Max pool"
    kind: ClassVar[str] = "window"
    explanation: ClassVar[str] = ("Max pooling keeps the largest value of each window: "
                                  "the map gets smaller, strong responses survive.")
    fields: ClassVar[tuple[Field, ...]] = _POOL_FIELDS


@dataclass(frozen=True)
class AvgPool2D(LayerFacts):
    """Average pooling; zero padding counts in the average (PyTorch's ``count_include_pad=True``)."""

    pool_size: int
    stride: int | None = None
    padding: int = 0
    type: Literal["avgpool2d"] = "avgpool2d"

    title: ClassVar[str] = "Avg pool"
    kind: ClassVar[str] = "window"
    explanation: ClassVar[str] = "Average pooling keeps the mean of each window: the map gets smaller and smoother."
    fields: ClassVar[tuple[Field, ...]] = _POOL_FIELDS


@dataclass(frozen=True)
class GlobalAvgPool2D(LayerFacts):
    """Mean over H and W: ``(C, H, W) -> (C,)``."""

    type: Literal["global_avgpool2d"] = "global_avgpool2d"

    title: ClassVar[str] = "Global avg"
    kind: ClassVar[str] = "reshape"
    explanation: ClassVar[str] = "Global average pooling turns each map into one number, its mean."


@dataclass(frozen=True)
class Dropout(LayerFacts):
    """Inverted dropout: zero with probability ``rate`` and scale by 1/(1-rate) in training; identity in evaluation."""

    rate: float = 0.5
    type: Literal["dropout"] = "dropout"

    title: ClassVar[str] = "Dropout"
    kind: ClassVar[str] = "elementwise"
    explanation: ClassVar[str] = "Dropout zeroes random units while training; it does nothing when the network is used."
    fields: ClassVar[tuple[Field, ...]] = (Field("rate", "float", 0.0, 0.95, help="share of units zeroed in training"),)


@dataclass(frozen=True)
class Flatten(LayerFacts):
    """``(C, H, W) -> (C*H*W,)`` in C, H, W order (as PyTorch's ``flatten(1)``)."""

    type: Literal["flatten"] = "flatten"

    title: ClassVar[str] = "Flatten"
    kind: ClassVar[str] = "reshape"
    explanation: ClassVar[str] = "Flatten lines every value of every map up into one long vector."


@dataclass(frozen=True)
class Dense(LayerFacts):
    """Fully connected: every output unit weighs every input value (weight: [units, inputs])."""

    units: int
    bias: bool = True
    type: Literal["dense"] = "dense"

    title: ClassVar[str] = "Dense"
    kind: ClassVar[str] = "weighted"
    explanation: ClassVar[str] = "Each unit is a weighted sum of every input value, plus a bias."
    fields: ClassVar[tuple[Field, ...]] = (
        Field("units", "int", 1, MAX_UNITS, help="how many outputs"),
        Field("bias", "bool", help="add a learned constant to each unit"),
    )
    parameters: ClassVar[tuple[str, ...]] = ("weight", "bias")

    def param_shapes(self, in_shape: Shape) -> dict[str, Shape]:
        if len(in_shape) != 1:  # a misplaced dense layer gets its shape error from the layer
            return {}
        return {"weight": (self.units, in_shape[0])} | ({"bias": (self.units,)} if self.bias else {})


@dataclass(frozen=True)
class Softmax(LayerFacts):
    """Softmax over the feature axis; fused with cross-entropy in training."""

    type: Literal["softmax"] = "softmax"

    title: ClassVar[str] = "Softmax"
    kind: ClassVar[str] = "output"
    explanation: ClassVar[str] = "Softmax turns scores into probabilities that add up to 1."


@dataclass(frozen=True)
class BatchNorm2D(LayerFacts):
    """Batch normalization of each channel: ``(x - mean) / sqrt(var + eps) * weight + bias``.

    Training uses the batch's mean and (biased) variance over N, H, W and moves the running
    statistics toward them by ``momentum`` (the variance unbiased); evaluation uses the running ones.
    Ref: Ioffe and Szegedy 2015; PyTorch ``nn.BatchNorm2d``.
    """

    momentum: float = 0.1
    eps: float = 1e-5
    affine: bool = True
    type: Literal["batchnorm2d"] = "batchnorm2d"

    title: ClassVar[str] = "Batch norm"
    kind: ClassVar[str] = "normalize"
    explanation: ClassVar[str] = ("Batch normalization brings each map to a steady mean and spread, "
                                  "then scales and shifts it by two learned numbers per channel.")
    fields: ClassVar[tuple[Field, ...]] = (
        Field("momentum", "float", 0.0, 1.0, help="how fast the running mean and variance follow new batches"),
        Field("eps", "float", 1e-10, 1.0, help="a small number added to the variance before dividing"),
        Field("affine", "bool", help="learn a scale and a shift per channel"),
    )
    parameters: ClassVar[tuple[str, ...]] = ("weight", "bias")
    buffers: ClassVar[tuple[str, ...]] = ("running_mean", "running_var")

    def param_shapes(self, in_shape: Shape) -> dict[str, Shape]:
        return {"weight": (in_shape[0],), "bias": (in_shape[0],)} if self.affine and len(in_shape) == 3 else {}

    def buffer_shapes(self, in_shape: Shape) -> dict[str, Shape]:
        return {"running_mean": (in_shape[0],), "running_var": (in_shape[0],)} if len(in_shape) == 3 else {}


LayerSpec = Union[
    Conv2D, ReLU, LeakyReLU, Sigmoid, Tanh, MaxPool2D, AvgPool2D, GlobalAvgPool2D, Dropout, Flatten, Dense, Softmax,
    BatchNorm2D,
]


@dataclass(frozen=True)
class ModelSpec:
    """A whole network: input shape ``(C, H, W)`` and its layers in order."""

    input_shape: tuple[int, int, int]
    layers: tuple[LayerSpec, ...] = field(default_factory=tuple)
    version: int = SPEC_VERSION


def _shown(value: Any, limit: int = 60) -> str:
    """A short picture of a bad value for an error message: never a huge or deeply nested echo."""
    if isinstance(value, (list, tuple, dict)) and not (isinstance(value, (list, tuple)) and len(value) <= 4
                                                       and all(isinstance(v, (int, float, str)) for v in value)):
        return f"{'a list' if isinstance(value, (list, tuple)) else 'an object'} of {len(value)} item{'s' * (len(value) != 1)}"
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _check_field(where: str, f: Field, value: Any, index: int | None) -> Any:
    """Validate one value against its declared `Field`; raises `SpecError` saying what is allowed."""
    if isinstance(value, str) and f.choices:
        if value not in f.choices:
            what = "an integer" if f.kind == "int" else "a number"
            raise SpecError(f"{where}: {f.name} must be {what} or one of {list(f.choices)}, got {_shown(value)}", index)
        return value
    if value is None and f.nullable:
        return None
    if f.kind == "bool":
        if not isinstance(value, bool):
            raise SpecError(f"{where}: {f.name} must be true or false, got {_shown(value)}", index)
        return value
    if f.kind == "int" and not _is_int(value):
        raise SpecError(f"{where}: {f.name} must be an integer, got {_shown(value)}", index)
    if f.kind == "float":
        if not (_is_int(value) or isinstance(value, float)) or not math.isfinite(value):
            raise SpecError(f"{where}: {f.name} must be a finite number, got {_shown(value)}", index)
        value = float(value)
    lo = 0 if f.min is None else f.min
    if value < lo or (f.max is not None and value > f.max):
        upper = f" and at most {f.max}" if f.max is not None else ""
        raise SpecError(f"{where}: {f.name} must be at least {lo}{upper}, got {value}", index)
    return value


def parse_layer(obj: Any, index: int | None = None) -> LayerSpec:
    """Build one layer spec from its JSON dict; raises `SpecError` naming the layer."""
    from engine.registry import REGISTRY  # the registry pairs these specs with their layers

    where = f"layer {index}" if index is not None else "layer"
    if not isinstance(obj, Mapping):
        raise SpecError(f"{where}: expected an object with a 'type', got {type(obj).__name__}", index)
    kind = obj.get("type")
    if not isinstance(kind, str) or kind not in REGISTRY:
        raise SpecError(f"{where}: unknown type {_shown(kind)}; known types: {', '.join(REGISTRY)}", index)
    cls = REGISTRY[kind].spec
    where = f"{where} ({kind})"
    declared = {f.name: f for f in cls.fields}
    unknown = sorted(set(obj) - set(declared) - {"type"})
    if unknown:
        raise SpecError(f"{where}: unknown field(s) {unknown}; allowed: {sorted(declared)}", index)
    defaults = {f.name: f.default for f in dataclasses.fields(cls)}
    kwargs = {}
    for name, f in declared.items():
        if name not in obj:
            if defaults[name] is dataclasses.MISSING:
                raise SpecError(f"{where}: missing required field {name!r}", index)
            continue
        kwargs[name] = _check_field(where, f, obj[name], index)
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
        raise SpecError(f"spec: version must be {SPEC_VERSION}, got {_shown(version)}")
    shape = obj.get("input_shape")
    if not (isinstance(shape, (list, tuple)) and len(shape) == 3 and all(_is_int(v) for v in shape)):
        raise SpecError(f"spec: input_shape must be [C, H, W] integers, got {_shown(shape)}")
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
