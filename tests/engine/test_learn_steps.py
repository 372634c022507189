"""The Learn steps 6 and 9 (engine/learn.py): the learning-rate experiment (copies trained side by
side on the same batches, deterministic, the model untouched) and localization's box on a map."""

from __future__ import annotations

import numpy as np
import pytest

from engine.data.dataset import Dataset
from engine.explain.cam import upsample
from engine.learn import localize, lr_experiment, peak_region
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


def dilation_region(m: np.ndarray, cutoff: float) -> np.ndarray:
    """The oracle for `peak_region`, computed another way: start from the first largest cell and grow
    the set by one cell up, down, left and right, keeping hot cells only, until it stops changing."""
    hot = m >= cutoff
    region = np.zeros_like(hot)
    region[np.unravel_index(np.argmax(m), m.shape)] = True
    region &= hot
    while True:
        grown = region.copy()
        grown[1:] |= region[:-1]
        grown[:-1] |= region[1:]
        grown[:, 1:] |= region[:, :-1]
        grown[:, :-1] |= region[:, 1:]
        grown &= hot
        if np.array_equal(grown, region):
            return region
        region = grown


# A hand-made map: the peak's spot (rows 2-4, columns 3-8, with a tail down column 8 to row 6), a
# separate hot spot at the bottom left, and a cell touching the peak's spot only at a corner.
HAND = np.zeros((10, 12))
HAND[2:5, 3:9] = 0.6
HAND[5:7, 8] = 0.55
HAND[3, 6] = 1.0
HAND[8:10, 0:2] = 0.9  # hot, but not joined to the peak: outside the box
HAND[5, 2] = 0.7  # joined to (4, 3) by a corner only: outside (steps are up, down, left, right)
HAND[7, 5] = 0.4


def test_localize_box_is_the_peaks_spot_on_a_hand_made_map():
    box = localize(HAND, 0.5)
    assert (box.top, box.left, box.bottom, box.right) == (2, 3, 6, 8)
    assert box.cells == 18 + 2 and box.hot == 18 + 2 + 4 + 1
    assert (box.peak_row, box.peak_col, box.peak, box.threshold) == (3, 6, 1.0, 0.5)
    # lower: (7, 5) at 0.4 is still alone; higher: only the 0.6 block remains joined to the peak
    assert (lambda b: (b.top, b.left, b.bottom, b.right, b.cells))(localize(HAND, 0.4)) == (2, 3, 6, 8, 20)
    assert (lambda b: (b.top, b.left, b.bottom, b.right, b.cells))(localize(HAND, 0.58)) == (2, 3, 4, 8, 18)
    assert (lambda b: (b.top, b.left, b.bottom, b.right, b.cells))(localize(HAND, 0.95)) == (3, 6, 3, 6, 1)
    assert localize(np.zeros((4, 4))) is None
    assert localize(np.full((3, 3), np.nan)) is None
    with pytest.raises(ValueError, match="threshold"):
        localize(HAND, 0.0)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("threshold", [0.2, 0.5, 0.8])
def test_peak_region_equals_a_growing_oracle(seed, threshold):
    rng = np.random.default_rng(seed)
    # like Grad-CAM: a coarse random map upsampled; and plain noise, which breaks into many spots
    for m in (upsample(rng.random((5, 6)) ** 2, 40, 48), rng.random((17, 13))):
        region, peak = peak_region(m, threshold * m.max())
        want = dilation_region(m, threshold * m.max())
        np.testing.assert_array_equal(region, want)
        assert region[peak] and m[peak] == m.max()
        box = localize(m, threshold)
        rows, cols = np.nonzero(want)
        assert (box.top, box.left, box.bottom, box.right) == (rows.min(), cols.min(), rows.max(), cols.max())
        assert box.cells == want.sum() <= box.hot == (m >= threshold * m.max()).sum()
