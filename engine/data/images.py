"""Safe image decoding and preprocessing, shared by uploads and the folder importer.

:func:`open_image` identifies the format from the header, checks the size the header
declares *before* decoding any pixels, and only then decodes; every failure is an
:class:`ImageError` whose ``kind`` ("unsupported", "too_large", "corrupt") a caller can map
to a status code. :func:`to_mode` and :func:`preprocess` turn any decoded image into the
(C, H, W) array a model expects.
"""

from __future__ import annotations

import io
from typing import Literal

import numpy as np
from PIL import Image, ImageOps

__all__ = [
    "ALLOWED_FORMATS",
    "ImageError",
    "array_to_png",
    "open_image",
    "preprocess",
    "to_mode",
    "to_uint8_chw",
]

ALLOWED_FORMATS: frozenset[str] = frozenset({"PNG", "JPEG", "GIF", "BMP", "WEBP", "TIFF"})
ImageErrorKind = Literal["unsupported", "too_large", "corrupt"]


class ImageError(ValueError):
    """An image that cannot be used; ``kind`` says why, ``message`` says it to a person."""

    def __init__(self, kind: ImageErrorKind, message: str) -> None:
        super().__init__(message)
        self.kind: ImageErrorKind = kind
        self.message = message


def open_image(data: bytes, *, max_pixels: int = 4096 * 4096, max_side: int = 4096) -> Image.Image:
    """Decode one image from bytes, safely.

    Steps: identify the format from the header (lazy ``Image.open``, limited to
    :data:`ALLOWED_FORMATS`); check width, height and pixel count from the header; decode
    the first frame fully; apply the EXIF orientation.

    Returns:
        A fully loaded single-frame PIL image, in whatever mode the file has.

    Raises:
        ImageError: kind "unsupported" (not one of the allowed formats), "too_large" (over
            ``max_side`` per side or ``max_pixels`` in all) or "corrupt" (truncated or invalid).
    """
    allowed = ", ".join(sorted(ALLOWED_FORMATS))
    try:
        img = Image.open(io.BytesIO(data), formats=sorted(ALLOWED_FORMATS))
    except Image.UnidentifiedImageError as exc:
        fmt = _sniff(data)
        if fmt is not None:  # the right signature but a header Pillow cannot parse
            raise ImageError("corrupt", f"the {fmt} image is truncated or damaged") from exc
        raise ImageError("unsupported", f"not a supported image; use one of {allowed}") from exc
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # Pillow's own limit (89 MP by default) fired before ours could: far too large anyway.
        raise ImageError("too_large", f"the image is far too large ({exc})") from exc
    except Exception as exc:
        raise ImageError("corrupt", f"the image header is damaged ({exc})") from exc
    if img.format not in ALLOWED_FORMATS:
        raise ImageError("unsupported", f"{img.format} images are not supported; use one of {allowed}")
    width, height = img.size
    if width < 1 or height < 1:
        raise ImageError("corrupt", f"the image has an empty size {width}x{height}")
    if width > max_side or height > max_side or width * height > max_pixels:
        raise ImageError(
            "too_large",
            f"the image is {width}x{height} pixels ({width * height / 1e6:.1f} MP); the limit is "
            f"{max_side} pixels per side and {max_pixels / 1e6:.1f} MP in all",
        )
    fmt = img.format
    try:
        img.seek(0)  # GIF / TIFF: the first frame only
        img.load()
    except Exception as exc:
        raise ImageError("corrupt", f"the {fmt} image is truncated or damaged ({exc})") from exc
    try:
        out = ImageOps.exif_transpose(img)
    except Exception:  # noqa: BLE001  damaged EXIF: keep the pixels as stored
        out = img.copy()
    out.format = fmt
    return out


def to_mode(img: Image.Image, channels: int, *, background: int | None = None) -> Image.Image:
    """Convert any decoded image to "L" (channels=1) or "RGB" (channels=3).

    Handles 16- and 32-bit grey (scaled from 0-65535), float ("F", 0-1 or 0-255), palette
    with transparency, CMYK, YCbCr, LAB, HSV and bilevel images. Transparent pixels are
    composited over ``background`` (0-255). The default is white for RGB, as image viewers
    show it; for grey it is black or white, whichever contrasts with the opaque pixels
    (so a black digit on a transparent background does not vanish into a black one).
    """
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    target = "L" if channels == 1 else "RGB"
    mode = img.mode
    if mode in ("I", "I;16", "I;16L", "I;16B", "I;16N", "F"):
        img = _deep_to_l(img)
        mode = "L"
    if mode == "P" and "transparency" in img.info or mode == "PA" or mode in ("RGBa", "La"):
        img = img.convert("RGBA")
    mode = img.mode
    if mode in ("RGBA", "LA"):
        rgba = np.asarray(img.convert("RGBA"), dtype=np.float32)
        alpha = rgba[..., 3:] / 255
        if background is None:
            background = 255 if channels == 3 else _contrasting(rgba, alpha)
        rgb = rgba[..., :3] * alpha + float(background) * (1 - alpha)
        img = Image.fromarray(np.clip(rgb + 0.5, 0, 255).astype(np.uint8), "RGB")
    if img.mode not in ("1", "L", "RGB"):  # CMYK, YCbCr, LAB, HSV, P: via RGB
        img = img.convert("RGB")
    return img if img.mode == target else img.convert(target)


def to_uint8_chw(img: Image.Image, input_shape: tuple[int, int, int]) -> np.ndarray:
    """Resize so the image covers (H, W) (antialiased bilinear), centre-crop, convert to C channels.

    Returns:
        (C, H, W) uint8.
    """
    c, h, w = input_shape
    img = to_mode(img, c)
    scale = max(h / img.height, w / img.width)
    new_w = max(w, round(img.width * scale))
    new_h = max(h, round(img.height * scale))
    if (new_w, new_h) != img.size:
        img = img.resize((new_w, new_h), Image.Resampling.BILINEAR)  # antialiased when shrinking
    left, top = (new_w - w) // 2, (new_h - h) // 2
    img = img.crop((left, top, left + w, top + h))
    arr = np.asarray(img, dtype=np.uint8)
    return arr[None].copy() if c == 1 else arr.transpose(2, 0, 1).copy()


def preprocess(img: Image.Image, input_shape: tuple[int, int, int]) -> np.ndarray:
    """:func:`to_uint8_chw` as float32 ``x / 255``: (C, H, W) in [0, 1], no other normalisation."""
    return to_uint8_chw(img, input_shape).astype(np.float32) * np.float32(1 / 255)


def array_to_png(x: np.ndarray) -> bytes:
    """(C, H, W) with C in {1, 3} (or (H, W)), float in [0, 1] or uint8 -> PNG bytes.

    Floats are clipped to [0, 1] (NaN becomes 0) and rounded to 8 bits.
    """
    x = np.asarray(x)
    if x.ndim == 2:
        x = x[None]
    if x.ndim != 3 or x.shape[0] not in (1, 3):
        raise ValueError(f"expected (C, H, W) with C in {{1, 3}}, got shape {x.shape}")
    if x.dtype != np.uint8:
        x = np.nan_to_num(x.astype(np.float32), nan=0.0)
        x = (np.clip(x, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)
    img = Image.fromarray(x[0]) if x.shape[0] == 1 else Image.fromarray(np.ascontiguousarray(x.transpose(1, 2, 0)))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"\xff\xd8\xff", "JPEG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"BM", "BMP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
)


def _sniff(data: bytes) -> str | None:
    """The allowed format whose magic bytes ``data`` starts with, if any."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return next((fmt for magic, fmt in _SIGNATURES if data.startswith(magic)), None)


def _deep_to_l(img: Image.Image) -> Image.Image:
    """16/32-bit integer or float grey -> 8-bit "L" by scaling, not clipping."""
    arr = np.asarray(img)
    if img.mode == "F":
        arr = arr.astype(np.float64)
        finite = arr[np.isfinite(arr)]
        top = 1.0 if finite.size == 0 or finite.max() <= 1.0 else 255.0
        out = np.nan_to_num(arr, nan=0.0) * (255.0 / top)
    else:  # integer modes hold 16-bit data (PNG/TIFF), 0..65535
        out = arr.astype(np.float64) / 257.0
    return Image.fromarray(np.clip(out + 0.5, 0, 255).astype(np.uint8), "L")


def _contrasting(rgba: np.ndarray, alpha: np.ndarray) -> int:
    """0 or 255: the opposite of the mean (alpha-weighted) luma of the visible pixels."""
    weight = float(alpha.sum())
    if weight == 0:
        return 0
    luma = rgba[..., :3] @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    mean = float((luma * alpha[..., 0]).sum()) / weight
    return 0 if mean >= 128 else 255
