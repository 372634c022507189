"""The built-in "digits" dataset: MNIST-like printed digits made to look hand-made.

Each digit is drawn once per stroke width with Pillow's built-in scalable font (plus a
plain-bar "1" and a crossed "7", common handwritten forms), then every image samples
that glyph bank through its own random affine map (rotation, shear, scale, aspect,
translation) and a smooth elastic displacement, vectorised over the whole split. As in
MNIST, the digit's longer side is normalised to about 20 pixels and its centre of mass
sits near the centre of the 28x28 image; strokes are white on black.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from .dataset import Dataset
from .noise import smooth_field

__all__ = ["DIGITS_DESCRIPTION", "DIGIT_CLASSES", "make_digits"]

DIGIT_CLASSES: tuple[str, ...] = tuple(str(d) for d in range(10))

DIGITS_DESCRIPTION = (
    "Synthetic MNIST-like digits (generator v1): white digits on black drawn from a built-in "
    "font with random rotation, shear, scale, translation, elastic warping, stroke width, blur "
    "and noise."
)

_FONT_SIZE = 80  # glyphs are rendered large, then sampled down
_BANK = 112  # side of one glyph canvas in the bank
_STROKES = (0, 1, 2, 3)  # extra stroke widths at _FONT_SIZE (0 is the font's own ~6 px)
_BOX = 20.0  # target length of the digit's longer side, like MNIST


def make_digits(n_train: int = 10000, n_test: int = 2000, size: int = 28, seed: int = 0) -> Dataset:
    """Generate the digits dataset.

    Args:
        n_train, n_test: number of images; classes are balanced (counts differ by at most 1).
        size: image side S (>= 16); the digit is scaled by S / 28, as in a 28x28 MNIST image.
        seed: train and test come from two independent streams derived from it.

    Returns:
        Dataset "digits" with x: (N, 1, S, S) uint8 and y: (N,) int64, classes "0".."9".
    """
    if size < 16:
        raise ValueError(f"size must be at least 16 pixels, got {size}")
    if n_train < 1 or n_test < 0:
        raise ValueError(f"need n_train >= 1 and n_test >= 0, got {n_train}, {n_test}")
    bank, info = _glyph_bank()
    streams = np.random.SeedSequence([seed, 0xD161]).spawn(2)
    x_train, y_train = _make_split(n_train, size, bank, info, np.random.default_rng(streams[0]))
    x_test, y_test = _make_split(n_test, size, bank, info, np.random.default_rng(streams[1]))
    return Dataset("digits", DIGIT_CLASSES, x_train, y_train, x_test, y_test, DIGITS_DESCRIPTION)


def _glyph_bank() -> tuple[np.ndarray, np.ndarray]:
    """Render every glyph variant once.

    Returns:
        bank: (G, B, B) float32 in [0, 1], each glyph lightly blurred (to antialias the
            later down-sampling), G = 12 variants x len(_STROKES).
        info: (G, 5) float64 rows ``(digit, centre-of-mass x, com y, longer side, variant)``
            in bank pixel coordinates; variant 0 is the font glyph, 1 the alternative form.
    """
    font = ImageFont.load_default(size=_FONT_SIZE)
    glyphs, rows = [], []
    for digit in range(10):
        variants = (0, 1) if digit in (1, 7) else (0,)
        for variant in variants:
            for stroke in _STROKES:
                img = Image.new("L", (_BANK, _BANK), 0)
                draw = ImageDraw.Draw(img)
                width = 6 + 2 * stroke
                if digit == 1 and variant == 1:  # a plain bar, how most people write a one
                    top, bottom, x = 26, 84, _BANK // 2
                    draw.line([(x, top), (x, bottom)], fill=255, width=width)
                    for y in (top, bottom):
                        draw.ellipse([x - width / 2, y - width / 2, x + width / 2, y + width / 2], fill=255)
                else:
                    draw.text((_BANK / 2, _BANK / 2), str(digit), fill=255, font=font, anchor="mm",
                              stroke_width=stroke, stroke_fill=255)
                    if digit == 7 and variant == 1:  # the continental crossed seven
                        bbox = img.getbbox()
                        mid = (bbox[1] + bbox[3]) / 2 + 2
                        cx = (bbox[0] + bbox[2]) / 2
                        draw.line([(cx - 14, mid), (cx + 12, mid)], fill=255, width=width)
                g = np.asarray(img.filter(ImageFilter.GaussianBlur(1.2)), dtype=np.float32) / 255
                ys, xs = np.nonzero(g > 0.5)
                longer = max(xs.max() - xs.min(), ys.max() - ys.min()) + 1
                mass = g.sum()
                com_x = (g.sum(axis=0) * (np.arange(_BANK) + 0.5)).sum() / mass
                com_y = (g.sum(axis=1) * (np.arange(_BANK) + 0.5)).sum() / mass
                glyphs.append(g)
                rows.append((digit, com_x, com_y, longer, variant))
    return np.stack(glyphs), np.array(rows, dtype=np.float64)


def _make_split(
    n: int, size: int, bank: np.ndarray, info: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """n balanced, shuffled digit images: (n, 1, S, S) uint8 and (n,) int64 labels."""
    y = rng.permutation(np.arange(n) % 10).astype(np.int64)
    glyph = _pick_glyphs(y, info, rng)
    # Forward map, glyph -> image: q = A (p - com) + centre, A = scale * R(theta) * Shear * Aspect.
    unit = size / 28.0
    scale = _BOX * unit / info[glyph, 3] * rng.uniform(0.82, 1.02, n)
    aspect = rng.uniform(0.8, 1.1, n)
    shear = rng.uniform(-0.3, 0.3, n)
    theta = np.deg2rad(rng.uniform(-15.0, 15.0, n))
    cos, sin = np.cos(theta), np.sin(theta)
    # A = scale * [[cos, -sin], [sin, cos]] @ [[1, shear], [0, 1]] @ [[aspect, 0], [0, 1]]
    a11, a12 = cos * aspect, cos * shear - sin
    a21, a22 = sin * aspect, sin * shear + cos
    det = a11 * a22 - a12 * a21
    inv = np.stack([a22, -a12, -a21, a11]) / (det * scale)  # rows of A^-1, (4, n)
    centre = size / 2 + rng.uniform(-1.5, 1.5, (2, n)) * unit
    # Output pixel centres, displaced by a smooth elastic field, mapped back into the glyph.
    grid = np.arange(size, dtype=np.float32) + 0.5
    warp = smooth_field(n, 2, size, 4, rng) * (rng.uniform(0.0, 1.4, n) * unit).astype(np.float32)[:, None, None, None]
    qx = grid[None, None, :] + warp[:, 0] - centre[0, :, None, None].astype(np.float32)
    qy = grid[None, :, None] + warp[:, 1] - centre[1, :, None, None].astype(np.float32)
    f32 = lambda a: a.astype(np.float32)[:, None, None]
    px = f32(inv[0]) * qx + f32(inv[1]) * qy + f32(info[glyph, 1])
    py = f32(inv[2]) * qx + f32(inv[3]) * qy + f32(info[glyph, 2])
    img = _bilinear(bank, glyph, px, py)  # (n, S, S) in [0, 1]
    img *= rng.uniform(1.0, 1.5, (n, 1, 1)).astype(np.float32)  # ink density
    np.clip(img, 0, 1, out=img)
    img = _blur3(img, rng.uniform(0.0, 0.22, n).astype(np.float32))
    noise = rng.integers(-128, 128, img.shape, dtype=np.int8).astype(np.float32)
    noise *= rng.uniform(0.0, 0.05, (n, 1, 1)).astype(np.float32) * np.float32(255 / 73.9)
    img *= np.float32(255)
    img += noise
    img += np.float32(0.5)
    np.clip(img, 0, 255, out=img)
    return img.astype(np.uint8)[:, None], y


def _pick_glyphs(y: np.ndarray, info: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Bank index (n,) per label: a random stroke width, and the alternative form of 1 (50%)
    and 7 (30%)."""
    n = len(y)
    strokes = len(_STROKES)
    stroke = rng.choice(strokes, n, p=[0.3, 0.35, 0.25, 0.1])
    alt = rng.random(n) < np.where(y == 1, 0.5, 0.3)
    first = np.searchsorted(info[:, 0], np.arange(10))  # first bank row of each digit
    has_alt = np.isin(y, (1, 7))
    return first[y] + np.where(has_alt & alt, strokes, 0) + stroke


def _bilinear(bank: np.ndarray, glyph: np.ndarray, px: np.ndarray, py: np.ndarray) -> np.ndarray:
    """Sample bank[glyph[i]] at continuous pixel positions (px, py) (n, S, S); zero outside."""
    b = bank.shape[1]
    x = px - 0.5
    y = py - 0.5
    x0 = np.floor(x)
    y0 = np.floor(y)
    wx = x - x0
    wy = y - y0
    x0 = np.clip(x0, 0, b - 2).astype(np.int64)  # the bank's borders are empty, so clamping is safe
    y0 = np.clip(y0, 0, b - 2).astype(np.int64)
    wx = np.clip(wx, 0, 1)
    wy = np.clip(wy, 0, 1)
    flat = bank.reshape(-1)
    base = glyph[:, None, None] * (b * b) + y0 * b + x0
    top = flat[base] * (1 - wx) + flat[base + 1] * wx
    bottom = flat[base + b] * (1 - wx) + flat[base + b + 1] * wx
    return (top * (1 - wy) + bottom * wy).astype(np.float32)


def _blur3(img: np.ndarray, a: np.ndarray) -> np.ndarray:
    """Separable 3-tap blur [a, 1 - 2a, a] with a per-image weight a (n,): (n, S, S) -> same."""
    w = a[:, None, None]
    out = img * (1 - 2 * w)
    out[:, :, 1:] += img[:, :, :-1] * w
    out[:, :, :-1] += img[:, :, 1:] * w
    res = out * (1 - 2 * w)
    res[:, 1:] += out[:, :-1] * w
    res[:, :-1] += out[:, 1:] * w
    return res
