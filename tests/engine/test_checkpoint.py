"""Checkpoints: a pickle-free ``.npz`` in PyTorch layouts, validated on load, written atomically."""

from __future__ import annotations

import io
import json
import os
import pickle

import numpy as np
import pytest

import engine.fileio as fileio
from engine.checkpoint import CheckpointError, checkpoint_bytes, load_checkpoint, save_checkpoint
from engine.model import Model

SPEC = {
    "version": 1,
    "input_shape": [3, 10, 9],
    "layers": [
        {"type": "conv2d", "filters": 4, "kernel_size": 3, "padding": 1},
        {"type": "relu"},
        {"type": "maxpool2d", "pool_size": 2},
        {"type": "conv2d", "filters": 5, "kernel_size": 2, "bias": False},
        {"type": "flatten"},
        {"type": "dense", "units": 3},
        {"type": "softmax"},
    ],
}
CLASSES = ["circle", "square", "triangle"]
# 10x9 -> conv p1 -> 10x9 -> pool 2 -> 5x4 -> conv2 -> 4x3; flatten 5*4*3 = 60
LAYOUTS = {"layers.0.weight": (4, 3, 3, 3), "layers.0.bias": (4,), "layers.3.weight": (5, 4, 2, 2), "layers.5.weight": (3, 60), "layers.5.bias": (3,)}


class Unpickled(BaseException):
    """Raised if anything ever unpickles our booby-trapped object (BaseException: no handler swallows it)."""


def _explode():
    raise Unpickled("load_checkpoint unpickled an object array")


class Trap:
    def __reduce__(self):
        return (_explode, ())


@pytest.fixture
def model() -> Model:
    m = Model.build(SPEC, seed=5)
    rng = np.random.default_rng(0)
    for p in m.params.values():
        p[...] = rng.normal(size=p.shape)
    return m


def _arrays(model: Model, **kw) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(checkpoint_bytes(model, classes=CLASSES, step=42, **kw)), allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


def _npz(arrays: dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def test_round_trip(tmp_path, model):
    model.set_frozen([3])
    path = tmp_path / "sub" / "model.npz"
    save_checkpoint(path, model, classes=CLASSES, step=42, meta={"name": "demo"})
    with np.load(path, allow_pickle=False) as npz:
        assert set(npz.files) == {"spec", "classes", "step", "meta", *LAYOUTS}
        assert json.loads(str(npz["spec"])) == {
            "version": 1,
            "input_shape": [3, 10, 9],
            "layers": [
                {"type": "conv2d", "filters": 4, "kernel_size": 3, "stride": 1, "padding": 1, "bias": True},
                {"type": "relu"},
                {"type": "maxpool2d", "pool_size": 2, "stride": None, "padding": 0},
                {"type": "conv2d", "filters": 5, "kernel_size": 2, "stride": 1, "padding": 0, "bias": False},
                {"type": "flatten"},
                {"type": "dense", "units": 3, "bias": True},
                {"type": "softmax"},
            ],
        }
        assert npz["classes"].dtype.kind == "U" and npz["classes"].tolist() == CLASSES
        assert npz["step"].shape == () and int(npz["step"]) == 42
        for name, shape in LAYOUTS.items():
            assert npz[name].shape == shape, name
            assert npz[name].dtype == np.float32
            np.testing.assert_array_equal(npz[name], model.params[name])
    loaded = load_checkpoint(path)
    assert loaded.classes == CLASSES
    assert loaded.step == 42
    assert loaded.meta["name"] == "demo"
    assert loaded.model.spec == model.spec
    assert loaded.model.frozen == {3}
    for name, p in model.params.items():
        np.testing.assert_array_equal(loaded.model.params[name], p)
    x = np.random.default_rng(1).random((2, 3, 10, 9), dtype=np.float32)
    np.testing.assert_array_equal(loaded.model.forward(x).output, model.forward(x).output)
    # bytes and file objects load the same
    data = path.read_bytes()
    assert load_checkpoint(data).step == 42
    assert load_checkpoint(io.BytesIO(data)).classes == CLASSES
    assert not [p for p in path.parent.iterdir() if p.name != "model.npz"], "temporary files left behind"


def test_dense_weight_is_in_pytorch_flatten_order(model):
    """A dense weight column k reads flattened feature k = c*H*W + h*W + w (C, H, W order)."""
    arrays = _arrays(model)
    w = arrays["layers.5.weight"]  # (3, 5*4*3)
    feats = np.zeros((1, 5, 4, 3), np.float32)
    feats[0, 2, 1, 0] = 1.0  # c=2, h=1, w=0 -> column 2*12 + 1*3 + 0 = 27
    m = Model.build({"version": 1, "input_shape": [1, 1, 1], "layers": [{"type": "flatten"}]})
    assert m.layers[0].forward(feats.transpose(1, 0, 2, 3), train=False)[0].argmax() == 27
    dense_out = model.layers[5].forward(feats.reshape(1, -1), train=False)[0] - model.params["layers.5.bias"]
    np.testing.assert_allclose(dense_out[0], w[:, 27], rtol=1e-6)


BAD_ARRAYS = [
    pytest.param(lambda a: {**a, "layers.0.weight": np.zeros((4, 3, 2, 2), np.float32)}, r"layers.0.weight: shape \(4, 3, 2, 2\)", id="wrong-shape"),
    pytest.param(lambda a: {**a, "layers.5.weight": a["layers.5.weight"].T.copy()}, "layers.5.weight: shape", id="transposed-dense"),
    pytest.param(lambda a: {k: v for k, v in a.items() if k != "layers.5.bias"}, r"missing \['layers.5.bias'\]", id="missing-array"),
    pytest.param(lambda a: {**a, "layers.3.bias": np.zeros(5, np.float32)}, r"unexpected \['layers.3.bias'\]", id="extra-array"),
    pytest.param(lambda a: {**a, "evil": np.zeros(1, np.float32)}, r"unexpected \['evil'\]", id="extra-unrelated-array"),
    pytest.param(lambda a: {**a, "layers.0.weight": np.where(np.arange(108).reshape(4, 3, 3, 3) == 7, np.nan, a["layers.0.weight"]).astype(np.float32)}, "layers.0.weight: contains NaN", id="nan-weight"),
    pytest.param(lambda a: {**a, "layers.0.bias": np.array([1, 2, np.inf, 4], np.float32)}, "layers.0.bias: contains NaN or infinity", id="inf-bias"),
    pytest.param(lambda a: {**a, "layers.0.bias": np.array([1, 2, 3, 4], np.int64)}, "layers.0.bias: expected floating-point", id="int-weights"),
    pytest.param(lambda a: {k: v for k, v in a.items() if k != "spec"}, r"missing \['spec'\]", id="missing-spec"),
    pytest.param(lambda a: {k: v for k, v in a.items() if k != "step"}, r"missing \['step'\]", id="missing-step"),
    pytest.param(lambda a: {**a, "step": np.array(-1)}, "step must be a non-negative integer", id="negative-step"),
    pytest.param(lambda a: {**a, "step": np.array(3.5)}, "step must be a non-negative integer", id="float-step"),
    pytest.param(lambda a: {**a, "classes": np.array(["a", "b"])}, "2 class names for a model with 3 outputs", id="class-count"),
    pytest.param(lambda a: {**a, "spec": np.array("{not json")}, "checkpoint spec is invalid", id="spec-not-json"),
    pytest.param(lambda a: {**a, "spec": np.array(json.dumps({**SPEC, "layers": [{"type": "conv9d"}]}))}, "checkpoint spec is invalid: layer 0: unknown type", id="spec-unknown-type"),
    pytest.param(
        lambda a: {**a, "spec": np.array(json.dumps({**SPEC, "input_shape": [3, 1, 1]}))},
        r"checkpoint spec is invalid: layer 2 \(maxpool2d\): input 1x1 is smaller than pool_size 2",
        id="spec-shape-fails",
    ),
    pytest.param(lambda a: {**a, "meta": np.array("[1, 2]")}, "checkpoint meta is invalid", id="meta-not-object"),
    pytest.param(lambda a: {**a, "meta": np.array(json.dumps({"frozen": [1]}))}, "checkpoint meta is invalid", id="meta-freezes-relu"),
]


@pytest.mark.parametrize(("mutate", "message"), BAD_ARRAYS)
def test_rejects_bad_contents(model, mutate, message):
    data = _npz(mutate(_arrays(model)))
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(data)


@pytest.mark.parametrize(
    "data",
    [b"", b"garbage bytes, not a zip file", b"PK\x03\x04" + b"\x00" * 40, pickle.dumps({"spec": Trap()}), b"\x93NUMPY" + b"\x01" * 30],
    ids=["empty", "text", "broken-zip", "pickle", "broken-npy"],
)
def test_rejects_garbage(data):
    with pytest.raises(CheckpointError):
        load_checkpoint(data)


def test_rejects_missing_file(tmp_path):
    with pytest.raises(CheckpointError):
        load_checkpoint(tmp_path / "nope.npz")


@pytest.mark.parametrize("key", ["spec", "classes", "layers.0.weight", "meta", "step"])
def test_never_unpickles_an_object_array(model, key):
    arrays = _arrays(model)
    arrays[key] = np.array([Trap(), "x"], dtype=object)
    data = _npz(arrays)  # np.savez pickles object arrays
    with pytest.raises(CheckpointError):
        load_checkpoint(data)


def test_file_without_pickle_trap_still_loads(model):
    """Control for the test above: the same arrays without the object array load fine."""
    assert load_checkpoint(_npz(_arrays(model))).step == 42


def test_save_is_atomic_when_replace_fails(tmp_path, model, monkeypatch):
    path = tmp_path / "m.npz"
    save_checkpoint(path, model, classes=CLASSES, step=1)
    before = path.read_bytes()

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(fileio.os, "replace", fail)
    model.params["layers.0.bias"][...] = 123.0
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, model, classes=CLASSES, step=2)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert load_checkpoint(path).step == 1
    assert [p.name for p in tmp_path.iterdir()] == ["m.npz"], "the temporary file was not removed"


def test_save_is_atomic_when_the_write_fails_midway(tmp_path, model, monkeypatch):
    path = tmp_path / "m.npz"
    save_checkpoint(path, model, classes=CLASSES, step=1)
    before = path.read_bytes()
    real_fdopen = os.fdopen

    class HalfWriter:
        """Writes half of the data, then fails, like a full disk."""

        def __init__(self, f):
            self.f = f

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()
            return False

        def write(self, data):
            self.f.write(data[: len(data) // 2])
            self.f.flush()
            raise OSError("no space left on device")

        def __getattr__(self, name):
            return getattr(self.f, name)

    monkeypatch.setattr(fileio.os, "fdopen", lambda fd, mode="r", *a, **kw: HalfWriter(real_fdopen(fd, mode, *a, **kw)))
    with pytest.raises(OSError, match="no space left"):
        save_checkpoint(path, model, classes=CLASSES, step=2)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.npz"], "the half-written temporary file was not removed"


def test_checkpoint_of_float64_model_stores_float32(model):
    m64 = Model.build(SPEC, seed=5, dtype=np.float64)
    arrays = _arrays(m64)
    assert all(arrays[name].dtype == np.float32 for name in LAYOUTS)
    loaded = load_checkpoint(checkpoint_bytes(m64, classes=CLASSES, step=0))
    np.testing.assert_array_equal(loaded.model.params["layers.0.weight"], m64.params["layers.0.weight"].astype(np.float32))
