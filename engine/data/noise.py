"""Smooth random fields shared by the generators: cloudy backgrounds (shapes), elastic warps (digits)."""

from __future__ import annotations

import numpy as np


def smooth_field(n: int, channels: int, size: int, grid: int, rng: np.random.Generator) -> np.ndarray:
    """``(n, channels, size, size)`` float32, roughly unit std: a ``grid x grid`` of Gaussian noise,
    bilinearly upsampled as ``M @ coarse @ M.T`` with one interpolation matrix ``M: (size, grid)``."""
    coarse = rng.standard_normal((n, channels, grid, grid), dtype=np.float32)
    pos = (np.arange(size) + 0.5) * (grid - 1) / size
    lo = np.minimum(pos.astype(int), grid - 2)
    frac = (pos - lo).astype(np.float32)
    m = np.zeros((size, grid), dtype=np.float32)
    m[np.arange(size), lo] = 1 - frac
    m[np.arange(size), lo + 1] = frac
    return m @ coarse @ m.T
