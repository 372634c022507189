"""``cnnvis export MODEL --format onnx [-o PATH]``: a model of the data directory (by id, shipped ones
too) or a .npz checkpoint written as an ONNX file that onnxruntime runs like the engine; errors are one
line, not a traceback."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from app.cli import main
from app.config import Settings
from engine.checkpoint import load_checkpoint, save_checkpoint
from engine.model import Model
from engine.presets import preset_spec

onnx = pytest.importorskip("onnx", reason='the onnx extra is not installed: pip install "cnn-visualizer[onnx]"')
ort = pytest.importorskip("onnxruntime", reason='the onnx extra is not installed: pip install "cnn-visualizer[onnx]"')


def _assert_runs_like(path, model: Model) -> None:
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    for n in (1, 3):
        x = np.random.default_rng(n).uniform(0, 1, (n, *model.input_shape)).astype(np.float32)
        assert np.abs(session.run(["output"], {"input": x})[0] - model.forward(x).output).max() <= 1e-5


@pytest.fixture
def saved_model(tmp_path):
    """A model as the server saves one: DATA_DIR/models/{id}/checkpoint.npz."""
    data = tmp_path / "data"
    folder = data / "models" / "abc123"
    folder.mkdir(parents=True)
    model = Model.build(preset_spec("lenet5", (1, 28, 28), 10), seed=2)
    save_checkpoint(folder / "checkpoint.npz", model, classes=[str(i) for i in range(10)], step=3, meta={"name": "mine"})
    return data, model


def test_export_a_saved_model_by_id(saved_model, tmp_path, capsys):
    data, model = saved_model
    out = tmp_path / "out" / "m.onnx"
    out.parent.mkdir()
    main(["export", "abc123", "--format", "onnx", "-o", str(out), "--data-dir", str(data)])
    assert f"saved {out}" in capsys.readouterr().out
    _assert_runs_like(out, model)
    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert meta["model_id"] == "abc123" and meta["name"] == "mine" and json.loads(meta["classes"]) == [str(i) for i in range(10)]


def test_export_a_shipped_model_by_id_to_the_default_path(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    main(["export", "lenet5-digits", "--data-dir", str(tmp_path / "empty")])
    capsys.readouterr()
    _assert_runs_like(tmp_path / "lenet5-digits.onnx", load_checkpoint(Settings().pretrained_dir / "lenet5-digits.npz").model)


def test_export_a_checkpoint_file(tmp_path, capsys):
    model = Model.build(preset_spec("tiny-vgg-bn", (3, 32, 32), 4), seed=0)
    ckpt = tmp_path / "bn.npz"
    save_checkpoint(ckpt, model, classes=list("abcd"), step=0)
    main(["export", str(ckpt), "-o", str(tmp_path / "bn.onnx")])
    capsys.readouterr()
    _assert_runs_like(tmp_path / "bn.onnx", model)


def test_an_existing_file_is_kept_unless_forced(saved_model, tmp_path, capsys):
    data, model = saved_model
    out = tmp_path / "m.onnx"
    out.write_bytes(b"keep me")
    with pytest.raises(SystemExit) as exc:
        main(["export", "abc123", "-o", str(out), "--data-dir", str(data)])
    assert exc.value.code == 2 and "--force" in capsys.readouterr().err and out.read_bytes() == b"keep me"
    main(["export", "abc123", "-o", str(out), "--force", "--data-dir", str(data)])
    _assert_runs_like(out, model)


@pytest.mark.parametrize("argv, message", [
    (["export", "nope"], "no model with id 'nope'"),
    (["export", "missing.npz"], "missing.npz: no such checkpoint file"),
    (["export", "../etc"], "neither a model id nor a .npz checkpoint file"),
    (["export", "abc123", "--format", "pdf"], "invalid choice: 'pdf'"),
])
def test_errors_are_one_line_not_a_traceback(argv, message, saved_model, tmp_path, capsys):
    data, _ = saved_model
    with pytest.raises(SystemExit) as exc:
        main([*argv, "-o", str(tmp_path / "x.onnx"), "--data-dir", str(data)])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "error:" in err and message in err and "Traceback" not in err
    assert not (tmp_path / "x.onnx").exists()


def test_without_the_onnx_extra_it_says_what_to_install(saved_model, tmp_path, monkeypatch, capsys):
    data, _ = saved_model
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx now raises ImportError
    with pytest.raises(SystemExit) as exc:
        main(["export", "abc123", "-o", str(tmp_path / "x.onnx"), "--data-dir", str(data)])
    assert exc.value.code == 2 and 'pip install "cnn-visualizer[onnx]"' in capsys.readouterr().err
    assert not (tmp_path / "x.onnx").exists()


def test_a_checkpoint_that_is_not_one_is_refused(tmp_path, capsys):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(SystemExit):
        main(["export", str(bad), "-o", str(tmp_path / "x.onnx")])
    assert "not a .npz checkpoint" in capsys.readouterr().err
