"""The colour maps, defined once: each map's 256-entry RGB lookup table and the one rule that turns
a value into an entry of it.

The API's PNGs colour through this module; the page receives the same tables (bootstrap JSON and
``GET /api/v1/colormaps``) and mirrors `display_range` and `lut_index` in static/js/colormap.js with
index arithmetic only, so a PNG and the page's canvas give the same RGB for the same value.

The rule, for values ``v`` whose smallest is ``lo`` and largest ``hi``, all in float64:

- range: a diverging map spans ``[-m, m]`` with ``m = max(|lo|, |hi|, EPS)``, zero in the middle;
  a sequential map spans ``[a, max(hi, a + EPS)]`` with ``a = 0`` for non-negative data, else ``lo``
  (min-max, anchored at zero when nothing is negative, so a channel's brightness means magnitude).
- index: ``clamp(floor((v - a) / (b - a) * 255 + 0.5), 0, 255)``; NaN gives 0.

"auto" picks the diverging rdbu for signed data (``lo < 0``) and viridis otherwise.
Ref: ColorBrewer (RdBu, PuOr; colour-blind safe), matplotlib's viridis and magma, sampled at stops.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

import numpy as np

EPS = 1e-6
AUTO = "auto"
AUTO_DIVERGING = "rdbu"
AUTO_SEQUENTIAL = "viridis"
Kind = Literal["diverging", "sequential"]
CENTRE = 128  # the entry of zero on a diverging range: floor(0.5 * 255 + 0.5)


@dataclass(frozen=True)
class ColorMap:
    """A named colour map: ``lut`` is its ``(256, 3)`` uint8 RGB table, built once from ``stops``.

    A diverging map puts its middle stop exactly at entry `CENTRE`, where zero lands.
    """

    name: str
    label: str
    kind: Kind
    stops: tuple[str, ...]
    lut: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        table = build_lut(self.stops, centred=self.kind == "diverging")
        table.flags.writeable = False
        object.__setattr__(self, "lut", table)


def _rgb(hexes: tuple[str, ...]) -> np.ndarray:
    """``("#rrggbb", ...)`` -> float64 ``(n, 3)``."""
    return np.array([[int(h[i : i + 2], 16) for i in (1, 3, 5)] for h in hexes], dtype=np.float64)


def build_lut(stops: tuple[str, ...], centred: bool = False) -> np.ndarray:
    """Stops ``(n >= 2,)`` -> uint8 ``(256, 3)`` by linear interpolation, entries rounded half up.

    ``centred`` (diverging, odd ``n``): the first half of the stops spans entries 0..CENTRE and the
    second half CENTRE..255, so the middle stop is exactly the colour of zero.
    """
    rgb = _rgb(stops)
    n = len(rgb)
    i = np.arange(256, dtype=np.float64)
    if centred:
        assert n % 2 == 1, "a diverging map needs a middle stop"
        half = (n - 1) / 2
        pos = np.where(i <= CENTRE, i / CENTRE * half, half + (i - CENTRE) / (255 - CENTRE) * half)
    else:
        pos = i / 255 * (n - 1)
    k = np.minimum(np.floor(pos).astype(int), n - 2)
    f = (pos - k)[:, None]
    return np.floor(rgb[k] * (1 - f) + rgb[k + 1] * f + 0.5).astype(np.uint8)


def display_range(kind: Kind, lo: float, hi: float) -> tuple[float, float]:
    """The span ``(a, b)``, ``a < b``, that a map of ``kind`` shows for data in ``[lo, hi]`` (the rule above)."""
    lo, hi = float(lo), float(hi)
    if kind == "diverging":
        m = max(abs(lo), abs(hi), EPS)
        return -m, m
    a = 0.0 if lo >= 0 else lo
    return a, max(hi, a + EPS)


def lut_index(values: np.ndarray, a: float, b: float) -> np.ndarray:
    """``values`` (any shape) over the span ``[a, b]`` -> uint8 entries of the same shape (the rule above)."""
    v = np.asarray(values, dtype=np.float64)
    with np.errstate(all="ignore"):  # a == b or infinite values: +-inf clamps, NaN gives 0, as in JS
        pos = np.floor((v - float(a)) / (float(b) - float(a)) * 255 + 0.5)
    return np.clip(np.nan_to_num(pos, nan=0.0), 0, 255).astype(np.uint8)


COLORMAPS: MappingProxyType[str, ColorMap] = MappingProxyType({m.name: m for m in (
    ColorMap("rdbu", "Blue–red", "diverging", ("#053061", "#2166ac", "#4393c3", "#92c5de", "#d1e5f0", "#f7f7f7",
                                               "#fddbc7", "#f4a582", "#d6604d", "#b2182b", "#67001f")),
    ColorMap("puor", "Purple–orange", "diverging", ("#2d004b", "#542788", "#8073ac", "#b2abd2", "#d8daeb", "#f7f7f7",
                                                    "#fee0b6", "#fdb863", "#e08214", "#b35806", "#7f3b08")),
    ColorMap("viridis", "Viridis", "sequential", ("#440154", "#472d7b", "#3b528b", "#2c728e", "#21918c", "#28ae80",
                                                  "#5ec962", "#addc30", "#fde725")),
    ColorMap("magma", "Magma", "sequential", ("#000004", "#1c1044", "#4f127b", "#812581", "#b5367a", "#e55064",
                                              "#fb8761", "#fec287", "#fcfdbf")),
    ColorMap("gray", "Grey", "sequential", ("#000000", "#ffffff")),
)})
CHOICES: tuple[str, ...] = (AUTO, *COLORMAPS)


def resolve(choice: str, lo: float) -> ColorMap:
    """The map for ``choice`` ("auto" or a map's name) on data whose smallest value is ``lo``."""
    if choice == AUTO:
        return COLORMAPS[AUTO_DIVERGING if lo < 0 else AUTO_SEQUENTIAL]
    if choice not in COLORMAPS:
        raise ValueError(f"unknown colour map {choice!r}; choose one of {', '.join(CHOICES)}")
    return COLORMAPS[choice]


def colorize(values: np.ndarray, cmap: str = AUTO) -> np.ndarray:
    """``values`` (any shape, non-empty) -> uint8 ``values.shape + (3,)``, on one range spanning them all."""
    values = np.asarray(values)
    lo, hi = float(values.min()), float(values.max())
    m = resolve(cmap, lo)
    return m.lut[lut_index(values, *display_range(m.kind, lo, hi))]
