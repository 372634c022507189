"""Crop or pad: the two ways an image of another aspect ratio becomes a model's input."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from engine.data.images import preprocess, to_uint8_chw
from engine.data.shape_infer import Header, choose_shape


def ramp(h: int, w: int) -> Image.Image:
    return Image.fromarray((np.arange(h * w, dtype=np.int64).reshape(h, w) % 251).astype(np.uint8))


@pytest.mark.parametrize(("h", "w"), [(12, 36), (40, 10), (16, 16), (37, 123)])
def test_crop_and_pad_against_a_direct_computation(h, w):
    img = ramp(h, w)
    th, tw = 16, 16
    s_cover, s_fit = max(th / h, tw / w), min(th / h, tw / w)
    cw, ch = max(tw, round(w * s_cover)), max(th, round(h * s_cover))
    cover = np.asarray(img.resize((cw, ch), Image.Resampling.BILINEAR)) if (cw, ch) != (w, h) else np.asarray(img)
    top, left = (ch - th) // 2, (cw - tw) // 2
    assert np.array_equal(to_uint8_chw(img, (1, th, tw), "crop")[0], cover[top : top + th, left : left + tw])
    pw, ph = min(tw, max(1, round(w * s_fit))), min(th, max(1, round(h * s_fit)))
    inside = np.asarray(img.resize((pw, ph), Image.Resampling.BILINEAR)) if (pw, ph) != (w, h) else np.asarray(img)
    want = np.zeros((th, tw), np.uint8)
    want[(th - ph) // 2 : (th - ph) // 2 + ph, (tw - pw) // 2 : (tw - pw) // 2 + pw] = inside
    assert np.array_equal(to_uint8_chw(img, (1, th, tw), "pad")[0], want)
    assert np.allclose(preprocess(img, (1, th, tw), "pad"), want / 255, atol=1e-6)


def test_crop_is_the_default_and_other_fits_are_refused():
    img = ramp(20, 30)
    assert np.array_equal(to_uint8_chw(img, (3, 8, 8)), to_uint8_chw(img, (3, 8, 8), "crop"))
    with pytest.raises(ValueError, match="fit"):
        to_uint8_chw(img, (1, 8, 8), "stretch")  # type: ignore[arg-type]


def test_choose_shape_rules():
    grey = [Header(True, 28, 28)] * 3 + [Header(True, 20, 30)]
    assert choose_shape(grey).shape == (1, 28, 28)
    assert choose_shape([*grey, Header(False, 28, 28)]).shape == (3, 28, 28)
    assert choose_shape([Header(True, 1000, 500)]).shape == (1, 128, 256)  # (H, W) = (500, 1000) capped at 256
    assert choose_shape([Header(True, 4, 2)]).shape == (1, 8, 16)
    assert choose_shape(grey, n_images=1000, max_bytes=1000 * 14 * 14).shape == (1, 14, 14)
    assert choose_shape(grey, channels=3, width=56).shape == (3, 56, 56)
    assert choose_shape([]).shape == (3, 64, 64)
