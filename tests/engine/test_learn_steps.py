"""The Learn steps 6 and 9 (engine/learn.py): the learning-rate experiment (copies trained side by
side on the same batches, deterministic, the model untouched) and localization's box on a map."""

from __future__ import annotations

import numpy as np
import pytest

from engine.data.dataset import Dataset
from engine.learn import localize, lr_experiment
from engine.model import Model
from engine.train import Hyperparameters, Trainer

SPEC = {
    "input_shape": [1, 8, 8],
    "layers": [
        {"type": "conv2d", "filters": 3, "kernel_size": 3},
        {"type": "relu"},
        {"type": "maxpool2d", "pool_size": 2},
        {"type": "flatten"},
        {"type": "dense", "units": 2},
        {"type": "softmax"},
    ],
}


@pytest.fixture(scope="module")
def data() -> Dataset:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, size=(64, 1, 8, 8), dtype=np.uint8)
    y = (x[:, 0, :4].mean(axis=(1, 2)) > x[:, 0, 4:].mean(axis=(1, 2))).astype(np.int64)
    return Dataset(name="halves", classes=["top", "bottom"], x_train=x[:48], y_train=y[:48], x_test=x[48:], y_test=y[48:])


def test_three_curves_of_n_steps_deterministic_and_the_model_untouched(data):
    model = Model.build(SPEC, seed=1)
    before = {k: v.copy() for k, v in model.params.items()}
    hp = Hyperparameters(batch_size=8, learning_rate=0.05, momentum=0.0)
    curves = lr_experiment(model, data, hp, [0.005, 0.05, 0.5], 12, seed=4)
    again = lr_experiment(model, data, hp, [0.005, 0.05, 0.5], 12, seed=4)
    assert [c.learning_rate for c in curves] == [0.005, 0.05, 0.5]
    assert all(len(c.losses) == 12 for c in curves)
    assert [c.losses for c in curves] == [c.losses for c in again]
    assert all(np.array_equal(before[k], model.params[k]) for k in before)
    # the same first batch and weights: step 1's loss (taken before the update) is the same for every rate
    assert curves[0].losses[0] == pytest.approx(curves[2].losses[0], abs=1e-6)
    # and the middle copy is exactly a trainer run at that rate (the oracle: the plain trainer)
    plain = Trainer(model.copy(), data, hp, seed=4, dead_relu_every=0).train(12)
    assert curves[1].losses == pytest.approx([r.loss for r in plain], abs=1e-6)


def test_step_count_is_bounded(data):
    with pytest.raises(ValueError, match="steps must be between"):
        lr_experiment(Model.build(SPEC), data, Hyperparameters(batch_size=8), [0.1], 0)


def test_localize_box_on_a_synthetic_map():
    cam = np.zeros((10, 12))
    cam[2:5, 3:9] = 0.6
    cam[3, 6] = 1.0
    cam[8, 0] = 0.4  # below half of the peak: outside
    box = localize(cam, 0.5)
    assert (box.top, box.left, box.bottom, box.right, box.cells) == (2, 3, 4, 8, 18)
    assert box.peak == 1.0 and box.threshold == 0.5
    wide = localize(cam, 0.3)
    assert (wide.top, wide.left, wide.bottom, wide.right) == (2, 0, 8, 8)
    assert localize(np.zeros((4, 4))) is None
    with pytest.raises(ValueError, match="threshold"):
        localize(cam, 0.0)
