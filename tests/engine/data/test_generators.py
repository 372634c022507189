"""The built-in generators: determinism, balance, dtypes, and that the images show their class.

The class checks use independent image statistics (structure-tensor orientation, centre
of mass, bounding boxes), not the generators' own parameters.
"""

from __future__ import annotations

import numpy as np
import pytest

from engine.data.digits import make_digits
from engine.data.shapes import SHAPE_CLASSES, make_shapes


@pytest.fixture(scope="module")
def shapes():
    return make_shapes(n_train=400, n_test=160, size=64, seed=3)


@pytest.fixture(scope="module")
def digits():
    return make_digits(n_train=500, n_test=100, seed=3)


def test_shapes_format(shapes):
    assert shapes.name == "shapes"
    assert shapes.classes == SHAPE_CLASSES == (
        "circle", "ring", "square", "triangle", "cross",
        "horizontal_stripes", "vertical_stripes", "diagonal_stripes",
    )
    assert shapes.x_train.shape == (400, 3, 64, 64) and shapes.x_train.dtype == np.uint8
    assert shapes.x_test.shape == (160, 3, 64, 64)
    assert shapes.y_train.dtype == np.int64
    assert shapes.counts() == {"train": [50] * 8, "test": [20] * 8}
    assert make_shapes(n_train=13, n_test=0, size=32).counts()["train"] in ([2] * 5 + [1] * 3,)


def test_digits_format(digits):
    assert digits.name == "digits"
    assert digits.classes == tuple("0123456789")
    assert digits.x_train.shape == (500, 1, 28, 28) and digits.x_train.dtype == np.uint8
    assert digits.counts() == {"train": [50] * 10, "test": [10] * 10}


@pytest.mark.parametrize("make", [make_shapes, make_digits])
def test_deterministic_per_seed(make):
    a = make(n_train=40, n_test=20, seed=7)
    b = make(n_train=40, n_test=20, seed=7)
    c = make(n_train=40, n_test=20, seed=8)
    for f in ("x_train", "y_train", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f))
    assert not np.array_equal(a.x_train, c.x_train)
    # Train and test come from different streams: no test image repeats a train image.
    train = {img.tobytes() for img in a.x_train}
    assert not any(img.tobytes() in train for img in a.x_test)


def test_images_use_the_range_and_are_not_flat(shapes, digits):
    for ds in (shapes, digits):
        x = ds.x_train.astype(np.float32)
        spread = x.reshape(len(x), -1).std(axis=1)
        assert spread.min() > 10, f"{ds.name}: some image is nearly flat"


def _orientation(img: np.ndarray) -> float:
    """Dominant edge orientation (degrees, 0 = horizontal lines) from the structure tensor."""
    g = img.astype(np.float64).mean(axis=0)
    gy, gx = np.gradient(g)
    jxx, jyy, jxy = (gx * gx).sum(), (gy * gy).sum(), (gx * gy).sum()
    # Angle of the dominant gradient; lines run perpendicular to it.
    grad_angle = 0.5 * np.degrees(np.arctan2(2 * jxy, jxx - jyy))
    return (grad_angle + 90.0) % 180.0


@pytest.mark.parametrize(("name", "angles"), [
    ("horizontal_stripes", (0.0,)), ("vertical_stripes", (90.0,)), ("diagonal_stripes", (45.0, 135.0)),
])
def test_stripes_have_their_orientation(shapes, name, angles):
    label = shapes.classes.index(name)
    imgs = shapes.x_train[shapes.y_train == label]
    for img in imgs:
        theta = _orientation(img)
        err = min(min(abs(theta - a), 180 - abs(theta - a)) for a in angles)
        assert err < 20, f"{name}: orientation {theta:.0f} degrees"


def test_curved_classes_have_no_dominant_orientation(shapes):
    """Circles and rings have edges in all directions, stripes in one: the structure tensor's
    coherence separates them."""
    def coherence(img):
        g = img.astype(np.float64).mean(axis=0)
        gy, gx = np.gradient(g)
        jxx, jyy, jxy = (gx * gx).sum(), (gy * gy).sum(), (gx * gy).sum()
        return np.hypot(jxx - jyy, 2 * jxy) / (jxx + jyy)

    round_ = [coherence(img) for k in (0, 1) for img in shapes.x_train[shapes.y_train == k]]
    stripes = [coherence(img) for k in (5, 6, 7) for img in shapes.x_train[shapes.y_train == k]]
    assert np.median(round_) < 0.2 < np.median(stripes)


def test_digits_are_centred_like_mnist(digits):
    x = digits.x_train[:, 0].astype(np.float64)
    mass = x.sum(axis=(1, 2))
    grid = np.arange(28) + 0.5
    com_x = (x.sum(axis=1) * grid).sum(axis=1) / mass
    com_y = (x.sum(axis=2) * grid).sum(axis=1) / mass
    assert np.abs(com_x - 14).max() < 3.5 and np.abs(com_y - 14).max() < 3.5
    assert abs(np.median(com_x) - 14) < 1 and abs(np.median(com_y) - 14) < 1
    ink = x > 128
    rows = ink.any(axis=2)
    heights = np.array([np.ptp(np.flatnonzero(r)) + 1 for r in rows])
    assert 14 <= np.median(heights) <= 22  # MNIST fits digits in a 20x20 box
    assert (heights <= 26).all()
    border = np.concatenate([x[:, :2].ravel(), x[:, -2:].ravel(), x[:, :, :2].ravel(), x[:, :, -2:].ravel()])
    assert border.mean() < 12  # black background, white digit


def test_digit_one_is_narrower_than_zero(digits):
    x = digits.x_train[:, 0] > 128
    cols = x.any(axis=1)
    widths = np.array([np.ptp(np.flatnonzero(c)) + 1 for c in cols])
    assert np.median(widths[digits.y_train == 1]) < np.median(widths[digits.y_train == 0]) - 4


def test_invalid_arguments():
    with pytest.raises(ValueError):
        make_shapes(n_train=10, size=8)
    with pytest.raises(ValueError):
        make_digits(n_train=0)
