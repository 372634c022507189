"""Uploaded image bytes decoded safely (via `engine.data.images`), with the status that says why not.

An upload is checked (size cap, format from the header, width and height from the header, and the
memory its decoding takes, from the header too, before any pixel is decoded) and only then
decoded, reduced while decoding to what its use needs (``fit``); `app.stores.images.ImageStore`
keeps the ones sent to ``POST /images``, and a multipart forward pass decodes its file here without
storing it. Statuses: 413 too large (bytes, sides or decoded memory: the message names the setting),
415 not an image format we read, 422 truncated or damaged.
"""

from __future__ import annotations

import ctypes
import io
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

import numpy as np
from PIL import Image

from app.errors import AppError, Busy, Invalid, TooLarge, Unsupported
from engine.data.images import ImageError, array_to_png, open_image, preprocess

LARGE_PIXELS = 1 << 20  # an image this large leaves enough freed heap behind to be worth handing back
MEDIA_TYPES = {"PNG": "image/png", "JPEG": "image/jpeg", "GIF": "image/gif", "BMP": "image/bmp", "WEBP": "image/webp"}
_STATUS = {"unsupported": Unsupported, "too_large": TooLarge, "corrupt": Invalid}


def rgb_png(grid: np.ndarray) -> bytes:
    """uint8 ``(H, W, 3)`` (the engine's picture grids) -> PNG bytes."""
    return array_to_png(np.ascontiguousarray(grid.transpose(2, 0, 1)))


_SETTING = {"decoded_bytes": "CNNVIS_MAX_DECODED_BYTES", "side": "CNNVIS_MAX_IMAGE_SIDE", "pixels": "CNNVIS_MAX_IMAGE_SIDE"}


class DecodeLedger:
    """The bytes the image decodes in flight take together, at most ``total``.

    Each decode reserves its cost (`engine.data.images.decoding_cost`, known from the header)
    before any pixel is decoded and frees it when its full-size pixels are gone; one that finds
    no room waits up to ``wait_s``, then is a 503 with ``Retry-After``. With ``total`` equal to
    the per-image budget, many small images decode at once but two at the budget never do, so
    eight 64 MB uploads at once cost one 64 MB decode at a time, not four (the CPU slots).
    """

    def __init__(self, total: int, wait_s: float):
        self.total, self.wait_s = total, wait_s
        self._used = 0
        self._room = threading.Condition()

    @contextmanager
    def reserve(self, n: int) -> Iterator[None]:
        n = min(n, self.total)
        with self._room:
            if not self._room.wait_for(lambda: self._used + n <= self.total, timeout=self.wait_s):
                raise Busy(f"other large images are being decoded ({self._used / 1048576:.0f} MB of "
                           f"{self.total / 1048576:g} MB in use, setting CNNVIS_MAX_DECODED_BYTES); try again shortly")
            self._used += n
        try:
            yield
        finally:
            with self._room:
                self._used -= n
                self._room.notify_all()


def decode_image(data: bytes, *, max_bytes: int, max_side: int, max_decoded_bytes: int,
                 fit: tuple[int, int] | None = None,
                 admit: Callable[[int], AbstractContextManager[object]] | None = None) -> Image.Image:
    """Bytes -> a decoded image (reduced towards ``fit`` (W, H) when given), or 413 / 415 / 422 saying why not.

    ``admit`` (a `DecodeLedger`'s ``reserve``) is entered with the decoding cost around the decode.
    """
    if len(data) > max_bytes:
        raise TooLarge(f"the file is {len(data) / 1048576:.1f} MB; the limit is {max_bytes / 1048576:g} MB "
                       "(setting CNNVIS_MAX_UPLOAD_BYTES)")
    if not data:
        raise Invalid("the file is empty")
    try:
        return open_image(data, max_pixels=max_side * max_side, max_side=max_side,
                          max_decoded_bytes=max_decoded_bytes, fit=fit, admit=admit)
    except ImageError as e:
        setting = _SETTING.get(e.limit or "")
        raise _STATUS.get(e.kind, Invalid)(e.message + (f" (setting {setting})" if setting else "")) from None


def model_input(img: Image.Image, input_shape: tuple[int, int, int], fit: str = "crop") -> np.ndarray:
    """A decoded image preprocessed for a model (``fit`` "crop" or "pad", see `engine.data.images.to_uint8_chw`):
    read-only ``(C, H, W)`` float32 in [0, 1], or 415 / 422."""
    try:
        x = preprocess(img, tuple(input_shape), fit)  # type: ignore[arg-type]
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


def release_memory(width: int, height: int) -> None:
    """After a large image is freed, hand the freed heap back to the OS (glibc's ``malloc_trim``).

    Decoders free their buffers, but glibc keeps them in the (per-thread) arenas, where a server
    measured 50-130 MB still resident after a handful of 4096x4096 images; trimming keeps the
    resident memory near its baseline. A no-op for small images and on other C libraries.
    """
    if width * height < LARGE_PIXELS:
        return
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass
