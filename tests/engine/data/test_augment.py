"""Augmentation: shapes, ranges, determinism, identity when off, and each step against a
plain-loop or NumPy oracle."""

from __future__ import annotations

import numpy as np
import pytest

from engine.data.augment import (
    AugmentConfig,
    augment_batch,
    rotate_images,
    shift_images,
)

OFF = AugmentConfig(flip=False, shift=0, rotate=0.0, brightness=0.0, contrast=0.0, noise=0.0)


@pytest.fixture
def batch():
    return np.random.default_rng(0).random((6, 3, 12, 12), dtype=np.float32)


def test_default_config_shape_range_and_no_mutation(batch):
    before = batch.copy()
    out = augment_batch(batch, np.random.default_rng(1), AugmentConfig())
    assert out.shape == batch.shape and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0
    np.testing.assert_array_equal(batch, before)
    assert not np.shares_memory(out, batch)


def test_same_rng_state_same_output(batch):
    a = augment_batch(batch, np.random.default_rng(5), AugmentConfig())
    b = augment_batch(batch, np.random.default_rng(5), AugmentConfig())
    c = augment_batch(batch, np.random.default_rng(6), AugmentConfig())
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_all_off_is_identity(batch):
    out = augment_batch(batch, np.random.default_rng(0), OFF)
    assert OFF.is_identity and not AugmentConfig().is_identity
    np.testing.assert_array_equal(out, batch)
    assert out is not batch
    as_float64 = augment_batch(batch.astype(np.float64), np.random.default_rng(0), OFF)
    assert as_float64.dtype == np.float32


def test_flip_only_mirrors_some_images(batch):
    cfg = AugmentConfig(flip=True, shift=0, rotate=0, brightness=0, contrast=0, noise=0)
    big = np.random.default_rng(3).random((40, 1, 5, 5), dtype=np.float32)
    out = augment_batch(big, np.random.default_rng(2), cfg)
    flipped = [np.array_equal(o, x[:, :, ::-1]) for o, x in zip(out, big)]
    kept = [np.array_equal(o, x) for o, x in zip(out, big)]
    assert all(f or k for f, k in zip(flipped, kept))
    assert 5 < sum(flipped) < 35


def test_rotate_images_matches_rot90_and_zero():
    x = np.random.default_rng(1).random((3, 2, 7, 7), dtype=np.float32)
    np.testing.assert_allclose(rotate_images(x, np.full(3, 90.0)), np.rot90(x, 1, axes=(2, 3)), atol=1e-5)
    np.testing.assert_allclose(rotate_images(x, np.full(3, -90.0)), np.rot90(x, -1, axes=(2, 3)), atol=1e-5)
    np.testing.assert_allclose(rotate_images(x, np.full(3, 180.0)), x[:, :, ::-1, ::-1], atol=1e-5)
    np.testing.assert_allclose(rotate_images(x, np.zeros(3)), x, atol=1e-6)


def test_rotate_images_fills_corners_with_zero_and_keeps_the_centre():
    x = np.ones((1, 1, 9, 9), dtype=np.float32)
    out = rotate_images(x, np.array([45.0]))
    assert out[0, 0, 0, 0] == 0.0 and out[0, 0, 4, 4] == pytest.approx(1.0)


def test_shift_images_against_a_loop():
    rng = np.random.default_rng(2)
    x = rng.random((4, 2, 6, 5), dtype=np.float32)
    dy, dx = np.array([0, 2, -3, 1]), np.array([1, -2, 0, 4])
    out = shift_images(x, dy, dx)
    expected = np.zeros_like(x)
    for k in range(4):
        for i in range(6):
            for j in range(5):
                si, sj = i - dy[k], j - dx[k]
                if 0 <= si < 6 and 0 <= sj < 5:
                    expected[k, :, i, j] = x[k, :, si, sj]
    np.testing.assert_array_equal(out, expected)


def test_shift_only_config_is_some_bounded_shift(batch):
    cfg = AugmentConfig(flip=False, shift=2, rotate=0, brightness=0, contrast=0, noise=0)
    out = augment_batch(batch, np.random.default_rng(4), cfg)
    for o, x in zip(out, batch):
        matches = [
            (dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)
            if np.array_equal(o, shift_images(x[None], np.array([dy]), np.array([dx]))[0])
        ]
        assert matches, "output is not a shift of at most 2 pixels"


def test_brightness_only_adds_one_offset_per_image():
    x = np.random.default_rng(0).uniform(0.3, 0.7, (5, 3, 4, 4)).astype(np.float32)
    cfg = AugmentConfig(flip=False, shift=0, rotate=0, brightness=0.2, contrast=0, noise=0)
    diff = augment_batch(x, np.random.default_rng(1), cfg) - x
    per_image = diff.reshape(5, -1)
    np.testing.assert_allclose(per_image, per_image[:, :1].repeat(per_image.shape[1], 1), atol=1e-6)
    assert np.abs(per_image).max() <= 0.2 + 1e-6


def test_contrast_only_keeps_the_mean():
    x = np.random.default_rng(0).uniform(0.4, 0.6, (5, 1, 8, 8)).astype(np.float32)
    cfg = AugmentConfig(flip=False, shift=0, rotate=0, brightness=0, contrast=0.3, noise=0)
    out = augment_batch(x, np.random.default_rng(1), cfg)
    np.testing.assert_allclose(out.mean(axis=(1, 2, 3)), x.mean(axis=(1, 2, 3)), atol=1e-5)
    ratio = out.std(axis=(1, 2, 3)) / x.std(axis=(1, 2, 3))
    assert ((ratio > 0.7 - 1e-4) & (ratio < 1.3 + 1e-4)).all()


def test_noise_only_has_the_requested_std():
    x = np.full((4, 1, 64, 64), 0.5, dtype=np.float32)
    cfg = AugmentConfig(flip=False, shift=0, rotate=0, brightness=0, contrast=0, noise=0.05)
    out = augment_batch(x, np.random.default_rng(1), cfg)
    assert abs(float((out - x).std()) - 0.05) < 0.003


def test_invalid_configs():
    with pytest.raises(ValueError):
        AugmentConfig(shift=-1)
    with pytest.raises(ValueError):
        AugmentConfig(contrast=1.5)
    with pytest.raises(ValueError):
        augment_batch(np.zeros((3, 4, 4), np.float32), np.random.default_rng(0), AugmentConfig())


def test_empty_batch():
    out = augment_batch(np.zeros((0, 1, 4, 4), np.float32), np.random.default_rng(0), AugmentConfig())
    assert out.shape == (0, 1, 4, 4)
