"""A model as an ONNX graph that onnxruntime runs and Netron draws: one node (or two) per layer.

`to_onnx(model)` builds the graph with ``onnx.helper`` (no PyTorch): input ``"input"``
``(batch, C, H, W)`` float32 (pixels / 255, as the engine takes them) with a dynamic batch
dimension, output ``"output"`` ``(batch, K)`` (the model's last layer: probabilities after a
softmax, else scores). Nodes are named as the page names
layers (``conv2d_1``, ``relu_2``), weights as in checkpoints (``layers.0.weight``), and every
intermediate tensor carries its shape, so Netron shows the network as the page does. The class
names, the model id and name, and the spec go into ``metadata_props``.

Evaluation mode throughout: dropout is an identity, batch normalization uses the running
statistics. Every type in `engine.registry.REGISTRY` has a row in `EXPORTERS`; a type without one
is refused by `ExportError` naming it. The ``onnx`` package is an optional extra, imported only when
a graph is built (`OnnxMissing` says how to install it).
Ref: the ONNX operator specs (opset 17): Conv, MaxPool, AveragePool, Gemm, BatchNormalization.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engine.layers import Layer
from engine.model import Model
from engine.specs import spec_to_dict

OPSET = 17  # onnxruntime has run opset 17 since 1.13; Netron reads it
INPUT, OUTPUT = "input", "output"
BATCH = "batch"  # the symbolic name of the dynamic batch dimension
MEDIA_TYPE = "application/onnx"
INSTALL_HINT = 'pip install "cnn-visualizer[onnx]"'


class ExportError(ValueError):
    """A layer with no ONNX form; ``layer_index`` names it (as `engine.specs.SpecError`)."""

    def __init__(self, message: str, layer_index: int | None = None):
        super().__init__(message)
        self.message = message
        self.layer_index = layer_index


class OnnxMissing(RuntimeError):
    """The optional ``onnx`` package is not installed."""


def _import_onnx():
    try:
        import onnx
        from onnx import helper, numpy_helper  # noqa: F401  (submodules used through onnx.*)
    except ImportError:
        raise OnnxMissing(f"exporting to ONNX needs the onnx package, an optional extra: {INSTALL_HINT}") from None
    return onnx


@dataclass
class _Graph:
    """Nodes and initializers collected layer by layer (``onnx`` is the lazily imported module)."""

    onnx: Any
    nodes: list = field(default_factory=list)
    initializers: list = field(default_factory=list)

    def weight(self, name: str, arr: np.ndarray) -> str:
        self.initializers.append(self.onnx.numpy_helper.from_array(np.ascontiguousarray(arr, dtype=np.float32), name))
        return name

    def node(self, op: str, inputs: list[str], output: str, name: str, doc: str = "", **attrs) -> None:
        self.nodes.append(self.onnx.helper.make_node(op, inputs, [output], name=name, doc_string=doc, **attrs))


# One exporter per layer type: (graph, layer index, layer, input tensor, output tensor, node name).
Exporter = Callable[[_Graph, int, Layer, str, str, str], None]


def _params(g: _Graph, i: int, layer: Layer) -> list[str]:
    """The layer's weight then bias (when it has one) as initializers named as in checkpoints."""
    return [g.weight(f"layers.{i}.{k}", layer.params[k]) for k in ("weight", "bias") if k in layer.params]


def _conv2d(g, i, layer, x, y, name):
    """Conv: weight ``(F, C, k, k)`` as in the engine; pads ``[top, left, bottom, right]`` ("same" may be uneven)."""
    top, bottom, left, right = layer.pad
    k, s = layer.spec.kernel_size, layer.spec.stride
    g.node("Conv", [x, *_params(g, i, layer)], y, name, kernel_shape=[k, k], strides=[s, s],
           pads=[top, left, bottom, right], dilations=[1, 1], group=1)


def _window(op: str, **extra) -> Exporter:
    def export(g, i, layer, x, y, name):
        p = layer.p  # padding ignored by the max (as -inf in the engine), counted in the mean (count_include_pad)
        g.node(op, [x], y, name, kernel_shape=[layer.k, layer.k], strides=[layer.s, layer.s], pads=[p, p, p, p],
               ceil_mode=0, **extra)
    return export


def _unary(op: str, **attrs: Callable[[Any], Any]) -> Exporter:
    """An element-wise op whose attributes are read from the spec (``alpha=lambda spec: spec.alpha``)."""
    def export(g, i, layer, x, y, name):
        g.node(op, [x], y, name, **{k: f(layer.spec) for k, f in attrs.items()})
    return export


def _global_avgpool2d(g, i, layer, x, y, name):
    """GlobalAveragePool gives ``(N, C, 1, 1)``; Flatten makes it the engine's ``(N, C)``."""
    g.node("GlobalAveragePool", [x], f"{name}/pooled", name)
    g.node("Flatten", [f"{name}/pooled"], y, f"{name}/flatten", axis=1)


def _dropout(g, i, layer, x, y, name):
    g.node("Identity", [x], y, name, doc=f"dropout (rate {layer.spec.rate}): an identity when the network is used")


def _flatten(g, i, layer, x, y, name):
    """NCHW flattened from axis 1 is C, H, W order, as the engine's; a flat input passes unchanged."""
    if len(layer.in_shape) == 1:
        g.node("Identity", [x], y, name, doc="flatten of a flat vector: unchanged")
    else:
        g.node("Flatten", [x], y, name, axis=1)


def _dense(g, i, layer, x, y, name):
    """Gemm with ``transB``: ``x @ weight.T + bias``, the weight ``(units, inputs)`` as PyTorch's Linear."""
    g.node("Gemm", [x, *_params(g, i, layer)], y, name, transB=1)


def _batchnorm2d(g, i, layer, x, y, name):
    """Evaluation mode: the running statistics; without ``affine`` a scale of ones and a shift of zeros."""
    c = layer.in_shape[0]
    scale = layer.params.get("weight", np.ones(c, dtype=np.float32))
    shift = layer.params.get("bias", np.zeros(c, dtype=np.float32))
    names = [g.weight(f"layers.{i}.{k}", a) for k, a in (("weight", scale), ("bias", shift))]
    names += [g.weight(f"layers.{i}.{k}", layer.buffers[k]) for k in ("running_mean", "running_var")]
    g.node("BatchNormalization", [x, *names], y, name, epsilon=float(layer.spec.eps),
           momentum=float(layer.spec.momentum))


EXPORTERS: dict[str, Exporter] = {
    "conv2d": _conv2d,
    "relu": _unary("Relu"),
    "leaky_relu": _unary("LeakyRelu", alpha=lambda spec: float(spec.alpha)),
    "sigmoid": _unary("Sigmoid"),
    "tanh": _unary("Tanh"),
    "maxpool2d": _window("MaxPool"),
    "avgpool2d": _window("AveragePool", count_include_pad=1),
    "global_avgpool2d": _global_avgpool2d,
    "dropout": _dropout,
    "flatten": _flatten,
    "dense": _dense,
    "softmax": _unary("Softmax", axis=lambda spec: 1),
    "batchnorm2d": _batchnorm2d,
}


def check_exportable(model: Model) -> None:
    """Raise `ExportError` naming the first layer whose type has no ONNX form (needs no onnx package)."""
    for i, layer_spec in enumerate(model.spec.layers):
        if layer_spec.type not in EXPORTERS:
            raise ExportError(f"layer {i} ({layer_spec.type}): the {layer_spec.type} layer type cannot be exported "
                              f"to ONNX; exportable types: {', '.join(EXPORTERS)}", i)


def to_onnx(model: Model, *, classes: Sequence[str] = (), model_id: str = "", name: str = "") -> Any:
    """``model`` as an ``onnx.ModelProto``: ``input (batch, C, H, W) -> output (batch, K)`` float32.

    ``classes``, ``model_id`` and ``name`` are stored in ``metadata_props`` (``classes`` as a JSON
    list), with the spec (JSON). Raises `ExportError` for a layer type without an exporter,
    `OnnxMissing` when the onnx package is absent. The weights are copied: the model may change after.
    """
    check_exportable(model)
    onnx = _import_onnx()
    helper = onnx.helper
    g = _Graph(onnx)
    x, value_info = INPUT, []
    last = len(model.layers) - 1
    for i, (layer, info) in enumerate(zip(model.layers, model.info)):
        y = OUTPUT if i == last else info.name
        EXPORTERS[info.type](g, i, layer, x, y, info.name)
        if i != last:
            value_info.append(helper.make_tensor_value_info(y, onnx.TensorProto.FLOAT, [BATCH, *info.output_shape]))
        x = y
    graph = helper.make_graph(
        g.nodes, name or model_id or "cnn-visualizer",
        inputs=[helper.make_tensor_value_info(INPUT, onnx.TensorProto.FLOAT, [BATCH, *model.input_shape])],
        outputs=[helper.make_tensor_value_info(OUTPUT, onnx.TensorProto.FLOAT, [BATCH, *model.output_shape])],
        initializer=g.initializers, value_info=value_info,
        doc_string="input: images (batch, C, H, W), float32 pixels / 255 in [0, 1]; output: "
                   + ("class probabilities" if model.ends_with_softmax else "the last layer's values"),
    )
    opset = helper.make_opsetid("", OPSET)
    proto = helper.make_model(graph, opset_imports=[opset], producer_name="cnn-visualizer",
                              ir_version=helper.find_min_ir_version_for([opset]))
    meta = {"classes": json.dumps(list(classes)), "model_id": model_id, "name": name,
            "spec": json.dumps(spec_to_dict(model.spec))}
    helper.set_model_props(proto, meta)
    return proto


def onnx_bytes(model: Model, **kwargs) -> bytes:
    """`to_onnx` serialized: the bytes of a ``.onnx`` file."""
    return to_onnx(model, **kwargs).SerializeToString()
