"""Images of what a network holds: filter grids and activation-map grids, as uint8 RGB arrays.

Colours come from engine/colormaps.py, the table and rule the page uses too: "auto" shows signed
values on a diverging map centred on zero and non-negative values on a sequential one. RGB
first-layer filters are shown in colour, min-max scaled together so their relative strengths stay
visible.
"""

from __future__ import annotations

import numpy as np

from engine.colormaps import AUTO, colorize

EPS = 1e-12


def _tile(tiles: np.ndarray, cols: int | None = None, gap: int = 1, scale: int = 1) -> np.ndarray:
    """Arrange ``tiles: (K, h, w, 3)`` in a grid with ``gap`` white pixels between them, each upscaled ``scale`` times."""
    k, h, w, _ = tiles.shape
    if scale > 1:
        tiles = tiles.repeat(scale, axis=1).repeat(scale, axis=2)
        h, w = h * scale, w * scale
    cols = cols or int(np.ceil(np.sqrt(k)))
    rows = int(np.ceil(k / cols))
    grid = np.full((rows * (h + gap) + gap, cols * (w + gap) + gap, 3), 255, dtype=np.uint8)
    for i in range(k):
        r, c = divmod(i, cols)
        grid[gap + r * (h + gap) : gap + r * (h + gap) + h, gap + c * (w + gap) : gap + c * (w + gap) + w] = tiles[i]
    return grid


def _scale_for(side: int, target: int = 48) -> int:
    return max(1, target // max(side, 1))


def filter_grid(weight: np.ndarray, rgb: bool, cmap: str = AUTO) -> np.ndarray:
    """``weight: (F, C, kh, kw)`` -> uint8 ``(H, W, 3)``.

    ``rgb`` (3-channel first layer): one colour tile per filter, all filters min-max scaled together.
    Otherwise one tile per (filter, channel), a row per filter, all on one scale of map ``cmap``.
    """
    weight = np.asarray(weight, dtype=np.float64)
    f, c, kh, kw = weight.shape
    scale = _scale_for(max(kh, kw))
    if rgb and c == 3:
        lo, hi = weight.min(), weight.max()
        tiles = np.round((weight - lo) / max(hi - lo, EPS) * 255).astype(np.uint8).transpose(0, 2, 3, 1)
        return _tile(tiles, scale=scale, gap=2)
    tiles = colorize(weight.reshape(f * c, kh, kw), cmap)
    return _tile(tiles, cols=c if c <= 16 else None, scale=scale, gap=2)


def activation_grid(act: np.ndarray, cmap: str = AUTO) -> np.ndarray:
    """``act: (C, H, W)`` or ``(D,)`` (one example) -> uint8 ``(H', W', 3)``: every channel on the layer's one scale."""
    act = np.asarray(act)
    if act.ndim == 1:
        act = act[:, None, None]
    return activation_layout(colorize(act, cmap))


def activation_layout(rgb: np.ndarray) -> np.ndarray:
    """Coloured maps ``rgb: (C, H, W, 3)`` uint8 -> the grid `activation_grid` draws them in."""
    _, h, w, _ = rgb.shape
    return _tile(rgb, scale=_scale_for(max(h, w), 64), gap=2)
