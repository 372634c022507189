"""Uploaded images: safe decoding (via `engine.data.images`), storage and the preprocessed-input cache.

An upload is checked (size cap, format from the header, width and height from the header before
any pixel is decoded) and stored as sent in ``DATA_DIR/images/{id}.bin`` with ``{id}.json`` beside
it; each model's preprocessing of it is cached in memory.
"""

from __future__ import annotations

import io
import json
import re
import secrets
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from app.config import Settings
from app.errors import AppError, Invalid, NotFound, TooLarge, Unsupported
from engine.fileio import atomic_write
from engine.data.images import ImageError, array_to_png, open_image, preprocess

IMAGE_ID_RE = re.compile(r"^[0-9a-f]{16}$")
MEDIA_TYPES = {"PNG": "image/png", "JPEG": "image/jpeg", "GIF": "image/gif", "BMP": "image/bmp", "WEBP": "image/webp"}
_STATUS = {"unsupported": Unsupported, "too_large": TooLarge, "corrupt": Invalid}


def rgb_png(grid: np.ndarray) -> bytes:
    """uint8 ``(H, W, 3)`` (the engine's picture grids) -> PNG bytes."""
    return array_to_png(np.ascontiguousarray(grid.transpose(2, 0, 1)))


class ImageStore:
    def __init__(self, settings: Settings, cache_size: int = 256):
        self.root = Path(settings.images_dir)
        self.max_side = settings.max_image_side
        self.max_bytes = settings.max_upload_bytes
        self._cache: OrderedDict[tuple, np.ndarray] = OrderedDict()
        self._cache_size = cache_size
        self._mutex = threading.Lock()

    def decode(self, data: bytes) -> Image.Image:
        """Bytes -> a decoded image, or 413 / 415 / 422 saying why not."""
        if len(data) > self.max_bytes:
            raise TooLarge(f"the file is {len(data) / 1048576:.1f} MB; the limit is {self.max_bytes / 1048576:g} MB")
        if not data:
            raise Invalid("the file is empty")
        try:
            return open_image(data, max_pixels=self.max_side * self.max_side, max_side=self.max_side)
        except ImageError as e:
            raise _STATUS.get(e.kind, Invalid)(e.message) from None

    def save(self, data: bytes) -> dict[str, Any]:
        img = self.decode(data)
        image_id = secrets.token_hex(8)
        info = {"id": image_id, "width": img.width, "height": img.height, "format": img.format}
        atomic_write(self.root / f"{image_id}.bin", data)
        atomic_write(self.root / f"{image_id}.json", json.dumps(info).encode())
        return info

    def _path(self, image_id: str, suffix: str) -> Path:
        path = self.root / f"{image_id}{suffix}"
        if not IMAGE_ID_RE.match(image_id) or not path.is_file():
            raise NotFound(f"no image with id {image_id!r}; upload one with POST /api/v1/images")
        return path

    def delete(self, image_id: str) -> None:
        """Remove an upload and its cached preprocessings (raises NotFound)."""
        self._path(image_id, ".bin")
        with self._mutex:
            for key in [k for k in self._cache if k[0] == image_id]:
                del self._cache[key]
        for suffix in (".json", ".bin"):  # the info first: a half-deleted upload reads as gone
            (self.root / f"{image_id}{suffix}").unlink(missing_ok=True)

    def info(self, image_id: str) -> dict[str, Any]:
        return json.loads(self._path(image_id, ".json").read_text())

    def content(self, image_id: str) -> tuple[bytes, str]:
        """``(bytes, media type)``: the file as uploaded, or a PNG copy for formats browsers rarely show."""
        data = self._path(image_id, ".bin").read_bytes()
        fmt = self.info(image_id).get("format")
        if fmt in MEDIA_TYPES:
            return data, MEDIA_TYPES[fmt]
        img = self.decode(data)
        buf = io.BytesIO()
        (img if img.mode in ("1", "L", "RGB", "RGBA") else img.convert("RGBA")).save(buf, format="PNG")
        return buf.getvalue(), "image/png"

    def input_for(self, image_id: str, input_shape: tuple[int, int, int]) -> np.ndarray:
        """The stored image preprocessed for a model: ``(C, H, W)`` float32 in [0, 1] (cached)."""
        key = (image_id, tuple(input_shape))
        with self._mutex:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        x = self.preprocess_bytes(self._path(image_id, ".bin").read_bytes(), input_shape)
        with self._mutex:
            self._cache[key] = x
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return x

    def preprocess_bytes(self, data: bytes, input_shape: tuple[int, int, int]) -> np.ndarray:
        try:
            x = preprocess(self.decode(data), tuple(input_shape))
        except ImageError as e:  # a decoder error surfacing only when pixels are converted
            raise _STATUS.get(e.kind, Invalid)(e.message) from None
        except (OSError, ValueError) as e:
            raise AppError(f"the image could not be converted: {e}", status=422) from None
        x.setflags(write=False)
        return x
