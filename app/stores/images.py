"""Uploaded images on disk and their preprocessings in memory.

An upload checked by `app.images.decode_image` is stored as sent in ``DATA_DIR/images/{id}.bin``
with ``{id}.json`` (id, width, height, format) beside it; each model's preprocessing of it is
cached in memory, the least recently used dropped first.
"""

from __future__ import annotations

import re
import secrets
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from app.config import Settings
from app.errors import NotFound
from app.images import MEDIA_TYPES, decode_image, model_input, png_copy
from engine.fileio import atomic_write
from engine.jsonio import read_json, write_json

IMAGE_ID_RE = re.compile(r"^[0-9a-f]{16}$")


class ImageStore:
    def __init__(self, settings: Settings, cache_size: int = 256):
        self.root = Path(settings.images_dir)
        self.max_side = settings.max_image_side
        self.max_bytes = settings.max_upload_bytes
        self._cache: OrderedDict[tuple, np.ndarray] = OrderedDict()
        self._cache_size = cache_size
        self._mutex = threading.Lock()

    def decode(self, data: bytes) -> Image.Image:
        """Bytes -> a decoded image, or 413 / 415 / 422 saying why not (this server's limits)."""
        return decode_image(data, max_bytes=self.max_bytes, max_side=self.max_side)

    def save(self, data: bytes) -> dict[str, Any]:
        img = self.decode(data)
        image_id = secrets.token_hex(8)
        info = {"id": image_id, "width": img.width, "height": img.height, "format": img.format}
        atomic_write(self.root / f"{image_id}.bin", data)
        write_json(self.root / f"{image_id}.json", info)
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
        """What `save` returned; ``{}`` when the file is unreadable (the image is then served as PNG)."""
        info = read_json(self._path(image_id, ".json"))
        return info if isinstance(info, dict) else {}

    def content(self, image_id: str) -> tuple[bytes, str]:
        """``(bytes, media type)``: the file as uploaded, or a PNG copy for formats browsers rarely show."""
        data = self._path(image_id, ".bin").read_bytes()
        fmt = self.info(image_id).get("format")
        if fmt in MEDIA_TYPES:
            return data, MEDIA_TYPES[fmt]
        return png_copy(self.decode(data)), "image/png"

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
        """Any upload's bytes -> read-only ``(C, H, W)`` float32 in [0, 1] for a model (not stored)."""
        return model_input(self.decode(data), input_shape)
