"""Images of what a network holds: filter grids and activation-map grids, as uint8 RGB arrays.

Colour rules (the page follows the same ones): signed values use a diverging blue-white-red map
centred on zero; non-negative values a sequential dark-to-bright map; RGB first-layer filters are
shown in colour, min-max scaled together so their relative strengths stay visible.
"""

from __future__ import annotations

import numpy as np

EPS = 1e-12
# Colour-blind-safe anchors: blue (negative) - white (0) - red (positive), after ColorBrewer RdBu.
_DIVERGING = np.array([[33, 102, 172], [247, 247, 247], [178, 24, 43]], dtype=np.float64)
# A viridis-like sequential ramp (dark purple -> teal -> yellow).
_SEQUENTIAL = np.array([[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]], dtype=np.float64)


def _ramp(t: np.ndarray, anchors: np.ndarray) -> np.ndarray:
    """Piecewise-linear colour ramp: ``t`` in [0, 1] of any shape -> uint8 ``t.shape + (3,)``."""
    pos = np.clip(t, 0, 1) * (len(anchors) - 1)
    lo = np.minimum(pos.astype(int), len(anchors) - 2)
    frac = (pos - lo)[..., None]
    return np.round(anchors[lo] * (1 - frac) + anchors[lo + 1] * frac).astype(np.uint8)


def colorize(values: np.ndarray, vmin: float | None = None, vmax: float | None = None) -> np.ndarray:
    """Map values to RGB: diverging around 0 when any value is negative, sequential otherwise."""
    values = np.asarray(values, dtype=np.float64)
    lo = float(values.min()) if vmin is None else vmin
    hi = float(values.max()) if vmax is None else vmax
    if lo < 0:
        bound = max(abs(lo), abs(hi), EPS)
        return _ramp((values / bound + 1) / 2, _DIVERGING)
    return _ramp((values - lo) / max(hi - lo, EPS), _SEQUENTIAL)


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


def filter_grid(weight: np.ndarray, rgb: bool) -> np.ndarray:
    """``weight: (F, C, kh, kw)`` -> uint8 ``(H, W, 3)``.

    ``rgb`` (3-channel first layer): one colour tile per filter, all filters min-max scaled together.
    Otherwise one grey-to-colour tile per (filter, channel), a row per filter, on a shared diverging scale.
    """
    weight = np.asarray(weight, dtype=np.float64)
    f, c, kh, kw = weight.shape
    scale = _scale_for(max(kh, kw))
    if rgb and c == 3:
        lo, hi = weight.min(), weight.max()
        tiles = np.round((weight - lo) / max(hi - lo, EPS) * 255).astype(np.uint8).transpose(0, 2, 3, 1)
        return _tile(tiles, scale=scale, gap=2)
    tiles = colorize(weight.reshape(f * c, kh, kw))
    return _tile(tiles, cols=c if c <= 16 else None, scale=scale, gap=2)


def activation_grid(act: np.ndarray) -> np.ndarray:
    """``act: (C, H, W)`` (one example) -> uint8 ``(H', W', 3)``: every channel on the layer's shared scale."""
    act = np.asarray(act, dtype=np.float64)
    if act.ndim == 1:
        act = act[:, None, None]
    c, h, w = act.shape
    return _tile(colorize(act), scale=_scale_for(max(h, w), 64), gap=2)
