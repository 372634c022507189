"""The Learn steps' numbers (engine/learn.py): a convolution at one position, summed by hand, is the
model's activation there and the reference loop's; dropout's mask, scaled output and evaluation output."""

from __future__ import annotations

import numpy as np
import pytest

from engine import reference
from engine.learn import conv_positions, dropout_demo
from engine.model import Model
from engine.presets import preset_spec

SPEC = {
    "input_shape": [3, 12, 12],
    "layers": [
        {"type": "conv2d", "filters": 4, "kernel_size": 3, "padding": 1},
        {"type": "relu"},
        {"type": "conv2d", "filters": 5, "kernel_size": 3, "stride": 2},
        {"type": "dropout", "rate": 0.5},
        {"type": "flatten"},
        {"type": "dense", "units": 3},
        {"type": "softmax"},
    ],
}


@pytest.fixture(scope="module")
def model() -> Model:
    return Model.build(SPEC, seed=3)


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    return np.random.default_rng(7).random((3, 12, 12), dtype=np.float32)


@pytest.mark.parametrize(("layer", "filt", "row"), [(0, 0, 0), (0, 3, 11), (2, 1, 2), (2, 4, 4)])
def test_products_sum_plus_bias_is_the_activation(model, image, layer, filt, row):
    lesson = conv_positions(model, image, layer, filt, row)
    acts = model.forward(image[None], keep=True).activations
    before = image[None] if layer == 0 else acts[layer - 1]
    w, b = model.params[f"layers.{layer}.weight"], model.params[f"layers.{layer}.bias"]
    spec = model.spec.layers[layer]
    ref, _ = reference.conv2d_forward(before.astype(np.float64), w.astype(np.float64), b.astype(np.float64),
                                      spec.stride, spec.padding)
    assert len(lesson.positions) == acts[layer].shape[3]
    for p in lesson.positions:
        assert p.products.shape == p.window.shape == lesson.kernel.shape == (w.shape[1], 3, 3)
        np.testing.assert_allclose(p.products, p.window * w[filt], rtol=1e-6)
        assert p.sum == pytest.approx(float(p.products.sum()))
        assert p.total == pytest.approx(p.sum + float(b[filt]))
        assert p.activation == float(acts[layer][0, filt, row, p.col])
        assert p.total == pytest.approx(p.activation, abs=1e-5)
        assert p.total == pytest.approx(float(ref[0, filt, row, p.col]), abs=1e-9)


def test_window_origin_counts_padding_and_stride(model, image):
    first = conv_positions(model, image, 0, 0, 0, cols=[0]).positions[0]
    assert (first.top, first.left) == (-1, -1)
    assert np.all(first.window[:, 0, :] == 0) and np.all(first.window[:, :, 0] == 0)
    np.testing.assert_array_equal(first.window[:, 1:, 1:], image[:, :2, :2])
    strided = conv_positions(model, image, 2, 0, 3, cols=[2])
    assert (strided.positions[0].top, strided.positions[0].left) == (6, 4) and strided.stride == 2


@pytest.mark.parametrize(("args", "says"), [((1, 0, 0), "not a convolution"), ((0, 4, 0), "filter 4"),
                                            ((0, 0, 12), "row 12"), ((9, 0, 0), "does not exist")])
def test_out_of_range_is_named(model, image, args, says):
    with pytest.raises(ValueError, match=says):
        conv_positions(model, image, *args)


def test_dropout_layer_of_the_model(model, image):
    lesson = dropout_demo(model, image, 3, rate=0.1, seed=5)
    before = model.forward(image[None], keep=True).activations[2][0]
    assert lesson.in_model and lesson.rate == 0.5
    np.testing.assert_array_equal(lesson.before, before)
    np.testing.assert_array_equal(lesson.evaluation, before)
    np.testing.assert_allclose(lesson.train, before * lesson.keep * 2.0, rtol=1e-6)
    assert set(np.unique(lesson.keep)) <= {0.0, 1.0} and 0 < lesson.keep.mean() < 1
    again = dropout_demo(model, image, 3, rate=0.1, seed=5)
    np.testing.assert_array_equal(again.keep, lesson.keep)
    assert not np.array_equal(dropout_demo(model, image, 3, rate=0.1, seed=6).keep, lesson.keep)


def test_dropout_after_any_layer():
    tiny = Model.build(preset_spec("tiny-vgg", (3, 16, 16), 4), seed=0)
    x = np.random.default_rng(1).random((3, 16, 16), dtype=np.float32)
    lesson = dropout_demo(tiny, x, 4, rate=0.25, seed=2)
    assert not lesson.in_model and lesson.before.shape == tiny.info[4].output_shape
    np.testing.assert_allclose(lesson.train, lesson.before * lesson.keep / 0.75, rtol=1e-6)
    assert 0.5 < lesson.keep.mean() < 0.95
    with pytest.raises(ValueError, match="rate"):
        dropout_demo(tiny, x, 4, rate=1.0, seed=2)
