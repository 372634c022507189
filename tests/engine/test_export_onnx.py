"""ONNX export: onnxruntime runs the exported graph to the engine's own outputs within 1e-5 (float32).

The oracle is the engine's evaluation-mode forward pass (itself checked against PyTorch in
test_torch_parity.py). Covered: every preset with random weights, every layer type (one table,
`CASES`, whose completeness a test enforces), and the shipped trained models; batch sizes 1 and 3;
every layer's output, not only the last. Each graph passes ``onnx.checker.check_model`` with full
shape inference against the shapes it declares. A layer type without an exporter is refused by name.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from engine import export_onnx
from engine.checkpoint import load_checkpoint
from engine.export_onnx import BATCH, EXPORTERS, INPUT, OPSET, OUTPUT, ExportError, OnnxMissing, to_onnx
from engine.model import Model
from engine.presets import PRESETS, preset_spec
from engine.registry import REGISTRY

ATOL = 1e-5
BATCHES = (1, 3)
PRETRAINED = sorted((Path(__file__).resolve().parents[2] / "engine" / "pretrained").glob("*.npz"))


@pytest.fixture(scope="module")
def onnx():
    return pytest.importorskip("onnx", reason='the onnx extra is not installed: pip install "cnn-visualizer[onnx]"')


@pytest.fixture(scope="module")
def ort():
    return pytest.importorskip("onnxruntime", reason='the onnx extra is not installed: pip install "cnn-visualizer[onnx]"')


def randomize(model: Model, seed: int) -> Model:
    """Random weights, biases and running statistics (variances positive), so no layer is a no-op."""
    rng = np.random.default_rng(seed)
    for name, arr in model.state().items():
        if name.endswith("running_var"):
            arr[...] = rng.uniform(0.5, 2.0, arr.shape)
        elif name.endswith(("bias", "running_mean")):
            arr[...] = rng.normal(0.0, 0.5, arr.shape)
        elif name.endswith("weight") and arr.ndim == 1:  # batch norm scale
            arr[...] = rng.uniform(0.5, 1.5, arr.shape)
    return model


def images(model: Model, n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0.0, 1.0, (n, *model.input_shape)).astype(np.float32)


def run_onnx(ort, onnx, proto, x: np.ndarray) -> dict[str, np.ndarray]:
    """Every named tensor onnxruntime computes for ``x``: the graph's intermediate tensors are made
    outputs too (a copy of the graph; the exported one is unchanged)."""
    full = type(proto)()
    full.CopyFrom(proto)
    full.graph.output.extend(full.graph.value_info)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1  # a shared 2-core box
    session = ort.InferenceSession(full.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, {INPUT: x})))


def assert_runs_like_engine(onnx, ort, model: Model, **kwargs) -> None:
    """The exported graph checks, and for batches of 1 and 3 every layer's output and the final output
    equal the engine's (final: within ATOL; inner layers: ATOL relative to their scale when above 1)."""
    proto = to_onnx(model, **kwargs)
    onnx.checker.check_model(proto, full_check=True)
    for n in BATCHES:
        x = images(model, n, seed=n)
        ref = model.forward(x, keep=True)
        got = run_onnx(ort, onnx, proto, x)
        out = got[OUTPUT]
        assert out.dtype == np.float32 and out.shape == ref.output.shape, f"batch {n}: {out.shape} != {ref.output.shape}"
        err = float(np.abs(out - ref.output).max())
        assert err <= ATOL, f"batch {n}: output differs from the engine's by {err:.3g} > {ATOL}"
        for info, act in zip(model.info[:-1], ref.activations[:-1]):
            scale = max(1.0, float(np.abs(act).max()))
            err = float(np.abs(got[info.name] - act).max())
            assert got[info.name].shape == act.shape and err <= ATOL * scale, f"batch {n}, {info.name}: error {err:.3g}"


# ---- every preset, random weights -----------------------------------------------------------------

PRESET_SHAPES = [((3, 64, 64), 8), ((1, 28, 28), 10), ((3, 32, 32), 10)]


@pytest.mark.parametrize("input_shape, classes", PRESET_SHAPES, ids=lambda v: "x".join(map(str, v)) if isinstance(v, tuple) else str(v))
@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_preset_runs_in_onnxruntime_as_in_the_engine(onnx, ort, preset, input_shape, classes):
    model = randomize(Model.build(preset_spec(preset, input_shape, classes), seed=3), seed=4)
    assert_runs_like_engine(onnx, ort, model, classes=[f"c{i}" for i in range(classes)], model_id=preset)


# ---- every layer type --------------------------------------------------------------------------------

CASES: list[tuple[tuple[int, int, int], list[dict]]] = [
    ((3, 9, 12), [{"type": "conv2d", "filters": 4, "kernel_size": 3}]),
    ((3, 9, 12), [{"type": "conv2d", "filters": 4, "kernel_size": 3, "stride": 2, "padding": 1}]),
    ((1, 7, 10), [{"type": "conv2d", "filters": 5, "kernel_size": 4, "padding": "same"}]),  # uneven pads
    ((3, 8, 5), [{"type": "conv2d", "filters": 5, "kernel_size": 2, "padding": "same", "bias": False}]),
    ((3, 8, 9), [{"type": "conv2d", "filters": 2, "kernel_size": 1, "padding": "valid", "bias": False}]),
    ((3, 11, 9), [{"type": "conv2d", "filters": 3, "kernel_size": 5, "stride": 3, "padding": 2}]),
    ((3, 6, 7), [{"type": "relu"}]),
    ((3, 6, 7), [{"type": "leaky_relu", "alpha": 0.2}]),
    ((3, 6, 7), [{"type": "sigmoid"}]),
    ((3, 6, 7), [{"type": "tanh"}]),
    ((3, 7, 10), [{"type": "maxpool2d", "pool_size": 2}]),  # an odd side: the last row is dropped
    ((3, 7, 10), [{"type": "maxpool2d", "pool_size": 3, "stride": 1, "padding": 1}]),  # overlapping, padded
    ((1, 9, 9), [{"type": "maxpool2d", "pool_size": 3, "stride": 2}]),
    ((3, 7, 10), [{"type": "avgpool2d", "pool_size": 2}]),
    ((3, 7, 10), [{"type": "avgpool2d", "pool_size": 3, "stride": 2, "padding": 1}]),  # padding counts in the mean
    ((1, 6, 9), [{"type": "avgpool2d", "pool_size": 2, "stride": 1}]),
    ((3, 5, 6), [{"type": "global_avgpool2d"}]),
    ((3, 5, 6), [{"type": "dropout", "rate": 0.5}]),
    ((3, 5, 6), [{"type": "flatten"}]),
    ((3, 5, 6), [{"type": "flatten"}, {"type": "flatten"}]),  # a flat input passes unchanged
    ((3, 5, 6), [{"type": "flatten"}, {"type": "dense", "units": 7}]),
    ((1, 4, 4), [{"type": "flatten"}, {"type": "dense", "units": 3, "bias": False}]),
    ((3, 4, 5), [{"type": "flatten"}, {"type": "dropout", "rate": 0.3}, {"type": "softmax"}]),
    ((3, 6, 7), [{"type": "batchnorm2d"}]),
    ((3, 6, 7), [{"type": "batchnorm2d", "affine": False, "eps": 1e-3}]),
    ((1, 10, 10), [{"type": "conv2d", "filters": 4, "kernel_size": 3, "bias": False}, {"type": "batchnorm2d"},
                   {"type": "leaky_relu"}, {"type": "avgpool2d", "pool_size": 2}, {"type": "dropout"},
                   {"type": "global_avgpool2d"}, {"type": "dense", "units": 5}, {"type": "tanh"}, {"type": "softmax"}]),
]


def _case_id(case) -> str:
    return "-".join(layer["type"] for layer in case[1]) + "-" + "-".join(
        f"{k}{v}" for layer in case[1] for k, v in layer.items() if k != "type")


def test_every_layer_type_has_an_exporter_and_a_case():
    assert set(EXPORTERS) == set(REGISTRY), "every layer type needs a row in engine.export_onnx.EXPORTERS"
    covered = {layer["type"] for _, layers in CASES for layer in layers}
    assert covered == set(REGISTRY), f"add a case for {sorted(set(REGISTRY) - covered)}"


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_every_layer_type_runs_in_onnxruntime_as_in_the_engine(onnx, ort, case):
    input_shape, layers = case
    model = randomize(Model.build({"input_shape": list(input_shape), "layers": layers}, seed=5), seed=6)
    assert_runs_like_engine(onnx, ort, model)


# ---- the shipped trained models ------------------------------------------------------------------------

@pytest.mark.parametrize("path", PRETRAINED, ids=lambda p: p.stem)
def test_shipped_trained_models_run_in_onnxruntime_as_in_the_engine(onnx, ort, path):
    ckpt = load_checkpoint(path)
    assert_runs_like_engine(onnx, ort, ckpt.model, classes=ckpt.classes, model_id=path.stem, name=ckpt.meta["name"])


def test_there_are_shipped_models_to_export():
    assert len(PRETRAINED) >= 2


# ---- what the file says about itself ------------------------------------------------------------------------

def test_graph_has_named_io_a_dynamic_batch_named_nodes_and_metadata(onnx):
    ckpt = load_checkpoint(PRETRAINED[0])
    model = ckpt.model
    proto = to_onnx(model, classes=ckpt.classes, model_id="m1", name="My model")
    assert [o.domain for o in proto.opset_import] == [""] and proto.opset_import[0].version == OPSET
    (inp,), (out,) = proto.graph.input, proto.graph.output
    assert inp.name == INPUT and out.name == OUTPUT
    dims = inp.type.tensor_type.shape.dim
    assert dims[0].dim_param == BATCH and [d.dim_value for d in dims[1:]] == list(model.input_shape)
    assert out.type.tensor_type.shape.dim[0].dim_param == BATCH
    assert inp.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    names = [node.name for node in proto.graph.node]
    assert all(names) and len(set(names)) == len(names)
    assert {info.name for info in model.info} <= set(names)  # the page's layer names
    meta = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(meta["classes"]) == ckpt.classes and meta["model_id"] == "m1" and meta["name"] == "My model"
    assert json.loads(meta["spec"])["layers"][0]["type"] == model.spec.layers[0].type
    assert {t.name for t in proto.graph.initializer} == set(model.state())  # checkpoint names, nothing else


def test_the_exported_bytes_load_back(onnx):
    model = Model.build(preset_spec("lenet5", (1, 28, 28), 10), seed=0)
    proto = onnx.load_model_from_string(export_onnx.onnx_bytes(model, model_id="x"))
    onnx.checker.check_model(proto, full_check=True)
    assert proto.producer_name == "cnn-visualizer"


def test_export_copies_the_weights(onnx, ort):
    """A model that goes on training after the export leaves the file as it was."""
    model = Model.build(preset_spec("mlp", (1, 8, 8), 3), seed=0)
    proto = to_onnx(model)
    x = images(model, 2)
    before = model.forward(x).output
    for arr in model.params.values():
        arr += 1.0
    got = run_onnx(ort, onnx, proto, x)[OUTPUT]
    assert np.abs(got - before).max() <= ATOL


# ---- refusals -----------------------------------------------------------------------------------------------

def test_a_layer_type_without_an_exporter_is_refused_by_name(monkeypatch):
    monkeypatch.delitem(EXPORTERS, "tanh")
    model = Model.build({"input_shape": [1, 4, 4], "layers": [{"type": "relu"}, {"type": "tanh"}]})
    with pytest.raises(ExportError, match=r"layer 1 \(tanh\): the tanh layer type cannot be exported") as exc:
        to_onnx(model)
    assert exc.value.layer_index == 1


def test_without_the_onnx_package_the_error_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx now raises ImportError
    model = Model.build({"input_shape": [1, 4, 4], "layers": [{"type": "relu"}]})
    with pytest.raises(OnnxMissing, match=r'pip install "cnn-visualizer\[onnx\]"'):
        to_onnx(model)


def test_the_engine_does_not_import_onnx_until_it_exports():
    code = "import sys, engine, engine.export_onnx, engine.registry; assert 'onnx' not in sys.modules, 'imported'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[2])
