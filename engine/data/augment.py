"""Random training-time augmentation of image batches, vectorised with NumPy.

Order: horizontal flip -> rotation (bilinear, zero fill) -> shift (random crop of the
zero-padded image) -> brightness and contrast -> Gaussian noise -> clip to [0, 1].
:func:`rotate_images` and :func:`shift_images` are the deterministic building blocks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["AugmentConfig", "augment_batch", "rotate_images", "shift_images"]


@dataclass(frozen=True)
class AugmentConfig:
    """Augmentation strengths; zero (or False) turns a step off.

    Attributes:
        flip: mirror left-right with probability 1/2 (wrong for digits and text: turn off).
        shift: max translation in pixels per axis, as a random crop of the zero-padded image.
        rotate: max absolute rotation in degrees.
        brightness: max absolute offset added to every pixel (pixels in [0, 1]).
        contrast: max relative change of contrast around the image's mean.
        noise: standard deviation of added Gaussian noise.
    """

    flip: bool = True
    shift: int = 4
    rotate: float = 10.0
    brightness: float = 0.2
    contrast: float = 0.2
    noise: float = 0.02

    def __post_init__(self) -> None:
        for name in ("shift", "rotate", "brightness", "contrast", "noise"):
            if getattr(self, name) < 0:
                raise ValueError(f"AugmentConfig.{name} must be >= 0, got {getattr(self, name)}")
        if self.contrast > 1:
            raise ValueError(f"AugmentConfig.contrast must be <= 1, got {self.contrast}")

    @property
    def is_identity(self) -> bool:
        """True when every step is off."""
        return not (self.flip or self.shift or self.rotate or self.brightness or self.contrast or self.noise)


def augment_batch(x: np.ndarray, rng: np.random.Generator, config: AugmentConfig,
                  log: list[list[dict]] | None = None) -> np.ndarray:
    """Randomly augment a batch; ``x`` is not modified.

    Args:
        x: (N, C, H, W) float in [0, 1].
        rng: the only source of randomness (same state -> same output).
        config: which steps to apply and how strongly.
        log: when given, filled with one list per image of the transforms applied to it, in order,
            each ``{"name": ..., **parameters}``: flip, rotate (degrees), shift (dy, dx pixels),
            brightness (offset), contrast (factor), noise (sigma). Keeping a log draws nothing more.

    Returns:
        (N, C, H, W) float32 in [0, 1]; an exact copy of ``x`` when every step is off.
    """
    if x.ndim != 4:
        raise ValueError(f"expected a batch (N, C, H, W), got shape {x.shape}")
    out = np.array(x, dtype=np.float32, copy=True)
    n = len(out)
    steps: list[list[dict]] = [[] for _ in range(n)]
    if log is not None:
        log[:] = steps
    if n == 0 or config.is_identity:
        return out
    if config.flip:
        mirror = rng.random(n) < 0.5
        out[mirror] = out[mirror, :, :, ::-1]
        _note(steps, "flip", mirror, {})
    if config.rotate:
        angles = rng.uniform(-config.rotate, config.rotate, n)
        out = rotate_images(out, angles)
        _note(steps, "rotate", angles != 0, {"degrees": angles})
    if config.shift:
        s = int(config.shift)
        dy, dx = rng.integers(-s, s + 1, n), rng.integers(-s, s + 1, n)
        out = shift_images(out, dy, dx)
        _note(steps, "shift", (dy != 0) | (dx != 0), {"dy": dy, "dx": dx})
    if config.brightness or config.contrast:
        factor = rng.uniform(1 - config.contrast, 1 + config.contrast, (n, 1, 1, 1)).astype(np.float32)
        offset = rng.uniform(-config.brightness, config.brightness, (n, 1, 1, 1)).astype(np.float32)
        _note(steps, "brightness", offset.ravel() != 0, {"offset": offset.ravel()})
        _note(steps, "contrast", factor.ravel() != 1, {"factor": factor.ravel()})
        mean = out.mean(axis=(1, 2, 3), keepdims=True)
        out -= mean
        out *= factor
        out += mean + offset
    if config.noise:
        out += rng.standard_normal(out.shape, dtype=np.float32) * np.float32(config.noise)
        _note(steps, "noise", np.ones(n, bool), {"sigma": np.full(n, config.noise)})
    np.clip(out, 0.0, 1.0, out=out)
    return out


def _note(steps: list[list[dict]], name: str, applied: np.ndarray, params: dict[str, np.ndarray]) -> None:
    """Append ``{"name", **params[k]}`` to the log of each image ``k`` the transform changed."""
    for k in np.flatnonzero(applied):
        steps[k].append({"name": name, **{p: v[k].item() for p, v in params.items()}})


def rotate_images(x: np.ndarray, degrees: np.ndarray) -> np.ndarray:
    """Rotate each image about its centre, counter-clockwise as displayed (rows down).

    Inverse mapping with bilinear interpolation; samples falling outside are zero.

    Args:
        x: (N, C, H, W) float.
        degrees: (N,) angles.

    Returns:
        (N, C, H, W) float32. A rotation by 90 degrees of a square image equals
        ``np.rot90(x, 1, axes=(2, 3))``.
    """
    n, c, h, w = x.shape
    theta = np.deg2rad(np.asarray(degrees, dtype=np.float64))[:, None, None]
    cy, cx = (h - 1) / 2, (w - 1) / 2
    i = np.arange(h, dtype=np.float64)[None, :, None] - cy
    j = np.arange(w, dtype=np.float64)[None, None, :] - cx
    cos, sin = np.cos(theta), np.sin(theta)
    # Output pixel (i, j) shows the source pixel rotated back by -theta.
    src_j = cos * j - sin * i + cx  # (n, h, w)
    src_i = sin * j + cos * i + cy
    j0 = np.floor(src_j)
    i0 = np.floor(src_i)
    fj = (src_j - j0).astype(np.float32)
    fi = (src_i - i0).astype(np.float32)
    j0 = j0.astype(np.int64)
    i0 = i0.astype(np.int64)
    flat = np.ascontiguousarray(x, dtype=np.float32).reshape(n, c, h * w)
    out = np.zeros((n, c, h * w), dtype=np.float32)
    for di, dj, weight in ((0, 0, (1 - fi) * (1 - fj)), (0, 1, (1 - fi) * fj), (1, 0, fi * (1 - fj)), (1, 1, fi * fj)):
        ii, jj = i0 + di, j0 + dj
        valid = (ii >= 0) & (ii < h) & (jj >= 0) & (jj < w)
        idx = (np.clip(ii, 0, h - 1) * w + np.clip(jj, 0, w - 1)).reshape(n, 1, h * w)
        wgt = np.where(valid, weight, 0).reshape(n, 1, h * w)
        out += np.take_along_axis(flat, idx, axis=2) * wgt
    return out.reshape(n, c, h, w)


def shift_images(x: np.ndarray, dy: np.ndarray, dx: np.ndarray) -> np.ndarray:
    """Translate each image by integer (dy[k], dx[k]) pixels (down, right), filling with zeros.

    Equivalent to cropping (H, W) out of the image zero-padded by max |shift|.

    Args:
        x: (N, C, H, W).
        dy, dx: (N,) integer shifts.

    Returns:
        (N, C, H, W) of x's dtype: ``out[k, :, i, j] = x[k, :, i - dy[k], j - dx[k]]`` or 0.
    """
    n, c, h, w = x.shape
    dy = np.asarray(dy, dtype=np.int64)
    dx = np.asarray(dx, dtype=np.int64)
    p = int(max(np.abs(dy).max(initial=0), np.abs(dx).max(initial=0)))
    if p == 0:
        return x.copy()
    padded = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    rows = np.arange(h)[None, :] + p - dy[:, None]  # (n, h)
    cols = np.arange(w)[None, :] + p - dx[:, None]  # (n, w)
    return padded[np.arange(n)[:, None, None, None], np.arange(c)[None, :, None, None],
                  rows[:, None, :, None], cols[:, None, None, :]]
