"""The PyTorch snippets, run here as they are written, load checkpoints into a ``torch.nn.Sequential``
that computes what the engine computes (max abs error <= 1e-4 as in test_torch_parity.py):
docs/torch_load.py for every preset, every layer type (the ONNX export's table of cases) and the
shipped trained models; the README's ten lines for the presets and shipped models they cover."""

from __future__ import annotations

import re
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

ROOT = Path(__file__).resolve().parents[2]
SNIPPET = ROOT / "docs" / "torch_load.py"
README_PRESETS = ("tiny-vgg", "lenet5", "mlp")  # the layer types the README's short snippet names
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


def readme_snippet() -> str:
    """The Python block after the README's ``<!-- torch-snippet -->`` marker."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    m = re.search(r"<!-- torch-snippet -->\s*```python\n(.*?)```", text, re.S)
    assert m, "the README lost its PyTorch snippet"
    return m.group(1)


def test_readme_snippet_is_ten_lines_and_loads_its_presets_and_the_shipped_models(tmp_path):
    code = readme_snippet()
    body = [line for line in code.splitlines() if line.strip() and not line.startswith(("import ", "from "))]
    assert len(body) <= 10, f"the README's snippet has {len(body)} lines besides its imports"
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 (our own README, as a reader would paste it)
    for preset in README_PRESETS:
        model = randomize(Model.build(preset_spec(preset, (3, 32, 32), 5), seed=1), seed=2)
        assert_torch_matches_engine(namespace["load_sequential"], model, _saved(model, tmp_path))
    for path in PRETRAINED:
        assert_torch_matches_engine(namespace["load_sequential"], load_checkpoint(path).model, path)
