"""Uploaded image bytes decoded safely (via `engine.data.images`), with the status that says why not.

An upload is checked (size cap, format from the header, width and height from the header before
any pixel is decoded) and only then decoded; `app.stores.images.ImageStore` keeps the ones sent
to ``POST /images``, and a multipart forward pass decodes its file here without storing it.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from app.errors import AppError, Invalid, TooLarge, Unsupported
from engine.data.images import ImageError, array_to_png, open_image, preprocess

MEDIA_TYPES = {"PNG": "image/png", "JPEG": "image/jpeg", "GIF": "image/gif", "BMP": "image/bmp", "WEBP": "image/webp"}
_STATUS = {"unsupported": Unsupported, "too_large": TooLarge, "corrupt": Invalid}


def rgb_png(grid: np.ndarray) -> bytes:
    """uint8 ``(H, W, 3)`` (the engine's picture grids) -> PNG bytes."""
    return array_to_png(np.ascontiguousarray(grid.transpose(2, 0, 1)))


def decode_image(data: bytes, *, max_bytes: int, max_side: int) -> Image.Image:
    """Bytes -> a decoded image, or 413 / 415 / 422 saying why not."""
    if len(data) > max_bytes:
        raise TooLarge(f"the file is {len(data) / 1048576:.1f} MB; the limit is {max_bytes / 1048576:g} MB")
    if not data:
        raise Invalid("the file is empty")
    try:
        return open_image(data, max_pixels=max_side * max_side, max_side=max_side)
    except ImageError as e:
        raise _STATUS.get(e.kind, Invalid)(e.message) from None


def model_input(img: Image.Image, input_shape: tuple[int, int, int]) -> np.ndarray:
    """A decoded image preprocessed for a model: read-only ``(C, H, W)`` float32 in [0, 1], or 415 / 422."""
    try:
        x = preprocess(img, tuple(input_shape))
    except ImageError as e:  # a decoder error surfacing only when pixels are converted
        raise _STATUS.get(e.kind, Invalid)(e.message) from None
    except (OSError, ValueError) as e:
        raise AppError(f"the image could not be converted: {e}", status=422) from None
    x.setflags(write=False)
    return x


def png_copy(img: Image.Image) -> bytes:
    """A decoded image as PNG bytes, for the formats browsers rarely show (outside `MEDIA_TYPES`)."""
    buf = io.BytesIO()
    (img if img.mode in ("1", "L", "RGB", "RGBA") else img.convert("RGBA")).save(buf, format="PNG")
    return buf.getvalue()
