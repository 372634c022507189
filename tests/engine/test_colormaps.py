"""The one colour table: LUT shapes and endpoints, the value-to-entry rule on hand-worked values,
and the pictures that use it. The page's side of the same rule is tests/web/test_colormap.py."""

from __future__ import annotations

import numpy as np
import pytest

from engine import pictures
from engine.colormaps import CENTRE, CHOICES, COLORMAPS, EPS, build_lut, colorize, display_range, lut_index, resolve


def rgb(hex_: str) -> list[int]:
    return [int(hex_[i : i + 2], 16) for i in (1, 3, 5)]


def test_the_page_maps_are_all_there():
    assert list(COLORMAPS) == ["rdbu", "puor", "viridis", "magma", "gray"]
    assert CHOICES == ("auto", *COLORMAPS)
    assert {m.kind for m in COLORMAPS.values()} == {"diverging", "sequential"}


@pytest.mark.parametrize("name", list(COLORMAPS))
def test_lut_shape_dtype_and_endpoints(name):
    m = COLORMAPS[name]
    assert m.lut.shape == (256, 3) and m.lut.dtype == np.uint8 and not m.lut.flags.writeable
    assert m.lut[0].tolist() == rgb(m.stops[0]) and m.lut[255].tolist() == rgb(m.stops[-1])
    if m.kind == "diverging":  # zero lands on the middle entry, which is exactly the middle stop
        assert m.lut[CENTRE].tolist() == rgb(m.stops[len(m.stops) // 2])
        assert lut_index(0.0, *display_range(m.kind, -3.0, 2.0)) == CENTRE
    steps = np.abs(np.diff(m.lut.astype(int), axis=0)).max()
    assert steps <= 16  # a smooth ramp, no jumps between neighbouring entries


def test_lut_by_hand():
    table = build_lut(("#000000", "#ffffff"))
    assert table[:, 0].tolist() == list(range(256))  # two stops over 255 steps: entry i is grey i
    centred = build_lut(("#000000", "#808080", "#ffffff"), centred=True)
    # entries 0..128 span black..grey (128 steps of 1), 128..255 grey..white (127 steps of 127/127)
    assert centred[64, 0] == 64 and centred[128, 0] == 128 and centred[255, 0] == 255


def test_display_range_by_hand():
    assert display_range("diverging", -2.0, 1.0) == (-2.0, 2.0)
    assert display_range("diverging", 0.5, 3.0) == (-3.0, 3.0)
    assert display_range("diverging", 0.0, 0.0) == (-EPS, EPS)
    assert display_range("sequential", 0.5, 3.0) == (0.0, 3.0)  # non-negative: from zero
    assert display_range("sequential", -1.0, 2.0) == (-1.0, 2.0)  # min-max
    assert display_range("sequential", -1.0, -1.0) == (-1.0, -1.0 + EPS)
    assert display_range("sequential", 0.0, 0.0) == (0.0, EPS)


def test_lut_index_by_hand():
    # (v - a) / (b - a) * 255 + 0.5, floored and clamped: on [-2, 2], v = -2 + 4k/255 is entry k exactly
    v = np.array([-2.0, -1.0, 0.0, 1.0, 2.0, 3.0, -5.0, np.nan, np.inf, -np.inf])
    assert lut_index(v, -2.0, 2.0).tolist() == [0, 64, 128, 191, 255, 255, 0, 0, 255, 0]
    # 63.75 + 0.5 -> 64, 191.25 + 0.5 -> 191; a value exactly half an entry above k rounds up
    assert lut_index(np.array([0.5 / 255, 0.49 / 255]), 0.0, 1.0).tolist() == [1, 0]
    assert lut_index(np.array([2.0, 1.0, 0.0]), 1.0, 1.0).tolist() == [255, 0, 0]  # an empty range: +-inf clamp, 0/0 -> 0
    assert lut_index(np.zeros((2, 3)), -1, 1).shape == (2, 3)


def test_resolve_and_colorize():
    assert resolve("auto", -1.0).name == "rdbu" and resolve("auto", 0.0).name == "viridis"
    assert resolve("magma", -1.0).name == "magma"
    with pytest.raises(ValueError, match="unknown colour map 'jet'"):
        resolve("jet", 0.0)
    v = np.array([[-1.0, 0.0], [0.5, 1.0]], dtype=np.float32)
    rdbu = COLORMAPS["rdbu"].lut
    assert np.array_equal(colorize(v), rdbu[[[0, 128], [191, 255]]])
    assert np.array_equal(colorize(np.full(3, 2.0), "gray"), np.full((3, 3), 255))  # a constant: top of [0, 2]
    assert np.array_equal(colorize(np.zeros(3), "gray"), np.zeros((3, 3)))


def test_pictures_colour_through_the_table():
    rng = np.random.default_rng(0)
    act = rng.normal(size=(4, 5, 5)).astype(np.float32)
    grid = pictures.activation_grid(act, "puor")
    assert np.array_equal(grid, pictures.activation_layout(colorize(act, "puor")))
    colours = {tuple(c) for c in grid.reshape(-1, 3)} - {(255, 255, 255)}
    assert colours <= {tuple(c) for c in COLORMAPS["puor"].lut}
    w = rng.normal(size=(2, 4, 3, 3)).astype(np.float32)
    tiles = {tuple(c) for c in pictures.filter_grid(w, rgb=False, cmap="magma").reshape(-1, 3)} - {(255, 255, 255)}
    assert tiles <= {tuple(c) for c in COLORMAPS["magma"].lut}
    assert pictures.activation_grid(np.abs(act)).shape == grid.shape  # auto, a vector too
    assert pictures.activation_grid(np.arange(6.0)).shape[2] == 3
