"""The README's PyTorch snippet (docs/torch_load.py, run here as it is written) loads checkpoints into a
``torch.nn.Sequential`` that computes what the engine computes: every preset, every layer type (the
ONNX export's table of cases), the shipped trained models; max abs error <= 1e-4 as in
test_torch_parity.py."""

from __future__ import annotations

import runpy
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip(
    "torch", reason="PyTorch is not installed; install the bench extra (pip install torch==2.13.0) to run the parity tests"
)

from engine.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402
from engine.model import Model  # noqa: E402
from engine.presets import PRESETS, preset_spec  # noqa: E402
from tests.engine.test_export_onnx import CASES, PRETRAINED, _case_id, images, randomize  # noqa: E402

pytestmark = [
    pytest.mark.torch,
    # PyTorch's own note that "same" with an even kernel copies the input; the result is still exact
    pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel lengths:UserWarning"),
]

SNIPPET = Path(__file__).resolve().parents[2] / "docs" / "torch_load.py"
ATOL = 1e-4


@pytest.fixture(scope="module")
def load_sequential():
    return runpy.run_path(str(SNIPPET))["load_sequential"]


def assert_torch_matches_engine(load_sequential, model: Model, path: Path) -> None:
    net = load_sequential(str(path))
    assert isinstance(net, torch.nn.Sequential) and not net.training
    assert len(net) == len(model.layers)
    for n in (1, 3):
        x = images(model, n, seed=n)
        with torch.no_grad():
            got = net(torch.from_numpy(x)).numpy()
        ref = model.forward(x).output
        assert got.shape == ref.shape
        err = float(np.abs(got.astype(np.float64) - ref).max())
        assert err <= ATOL, f"batch {n}: torch differs from the engine by {err:.3g}"


def _saved(model: Model, tmp_path: Path) -> Path:
    path = tmp_path / "model.npz"
    save_checkpoint(path, model, classes=[], step=0)
    return path


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_preset_loads_into_torch(load_sequential, preset, tmp_path):
    model = randomize(Model.build(preset_spec(preset, (3, 32, 32), 5), seed=1), seed=2)
    assert_torch_matches_engine(load_sequential, model, _saved(model, tmp_path))


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_every_layer_type_loads_into_torch(load_sequential, case, tmp_path):
    input_shape, layers = case
    model = randomize(Model.build({"input_shape": list(input_shape), "layers": layers}, seed=5), seed=6)
    assert_torch_matches_engine(load_sequential, model, _saved(model, tmp_path))


@pytest.mark.parametrize("path", PRETRAINED, ids=lambda p: p.stem)
def test_shipped_trained_models_load_into_torch(load_sequential, path):
    assert_torch_matches_engine(load_sequential, load_checkpoint(path).model, path)
