"""Uploaded images on disk and their preprocessings in memory.

An upload checked by `app.images.decode_image` is stored as sent in ``DATA_DIR/images/{id}.bin``
with ``{id}.json`` (id, width, height, format) beside it; each model's preprocessing of it is
cached in memory, the least recently used dropped first.

Quota and expiry: at most ``max_images`` uploads are kept (`QuotaExceeded`, 507, beyond it; 0 turns
it off). The ``.json``'s mtime is the upload's last use: a forward pass on it or a read of its file
touches it, and uploads unused for ``image_ttl_s`` (0 keeps them forever) are deleted by a sweep
(one directory listing, no file read) when the store starts and before each new upload.

Workspaces (`app.workspaces`): the ``.json`` names the ``owner`` workspace; another workspace's
upload is missing (NotFound) to every method, the quota counts the uploader's own, and with
workspaces off no owner is written and nothing extra is read.
"""

from __future__ import annotations

import os
import re
import secrets
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from app.config import Settings
from app.errors import NotFound, QuotaExceeded
from app.images import MEDIA_TYPES, DecodeLedger, decode_image, model_input, png_copy, release_memory
from engine.fileio import atomic_write
from app.workspaces import Viewer, current
from engine.jsonio import read_json, write_json

IMAGE_ID_RE = re.compile(r"^[0-9a-f]{16}$")


class ImageStore:
    def __init__(self, settings: Settings, cache_size: int = 256):
        self.root = Path(settings.images_dir)
        self.max_side = settings.max_image_side
        self.max_bytes = settings.max_upload_bytes
        self.max_decoded_bytes = settings.max_decoded_bytes
        self.max_images = settings.max_images
        self.ttl_s = settings.image_ttl_s
        self._cache: OrderedDict[tuple, np.ndarray] = OrderedDict()
        self._cache_size = cache_size
        self._mutex = threading.Lock()
        self._quota = threading.Lock()  # counting and adding one upload happen together
        self.ledger = DecodeLedger(settings.max_decoded_bytes, settings.cpu_wait_s)  # all decodes at once
        self.sweep()

    def decode(self, data: bytes, fit: tuple[int, int] | None = None) -> Image.Image:
        """Bytes -> a decoded image (reduced towards ``fit`` (W, H)), or 413 / 415 / 422 saying why not."""
        return decode_image(data, max_bytes=self.max_bytes, max_side=self.max_side,
                            max_decoded_bytes=self.max_decoded_bytes, fit=fit, admit=self.ledger.reserve)

    def save(self, data: bytes) -> dict[str, Any]:
        """Check, then store an upload: its info, or 413 / 415 / 422 (the image) or 507 (the quota)."""
        img = self.decode(data, fit=(1, 1))  # every byte decoded (JPEG at 1/8 scale), no pixel kept
        width, height = img.info["full_size"]
        image_id = secrets.token_hex(8)
        viewer = current()
        info = {"id": image_id, "width": width, "height": height, "format": img.format}
        if viewer.workspace is not None:
            info["owner"] = viewer.workspace
        del img
        release_memory(width, height)
        with self._quota:
            count = self.sweep()
            if viewer.scoped:
                count = len(self.owned(viewer.workspace))
            if self.max_images and count >= self.max_images:
                expiry = (f"uploads no model or page uses expire after {self.ttl_s / 3600:g} h" if self.ttl_s > 0
                          else "unused uploads do not expire here")
                raise QuotaExceeded(
                    f"the image quota is full: {count} uploads stored, the limit is {self.max_images} (setting "
                    f"CNNVIS_MAX_IMAGES); delete some with DELETE /api/v1/images/{{id}}, or wait: {expiry} "
                    "(setting CNNVIS_IMAGE_TTL_S)", limit=self.max_images, used=count, setting="CNNVIS_MAX_IMAGES")
            atomic_write(self.root / f"{image_id}.bin", data)
            write_json(self.root / f"{image_id}.json", info)
        return info

    def sweep(self, now: float | None = None) -> int:
        """Delete the uploads unused for ``image_ttl_s`` (by the ``.json``'s mtime); return how many remain."""
        now = time.time() if now is None else now
        try:
            entries = list(os.scandir(self.root))
        except FileNotFoundError:
            return 0
        last_used: dict[str, float] = {}
        for entry in entries:
            image_id, _, suffix = entry.name.partition(".")
            if IMAGE_ID_RE.match(image_id) and suffix in ("json", "bin"):
                try:
                    mtime = entry.stat().st_mtime
                except FileNotFoundError:
                    continue
                if suffix == "json" or image_id not in last_used:  # a .bin alone: its own age
                    last_used[image_id] = mtime
        expired = [i for i, t in last_used.items() if self.ttl_s > 0 and now - t > self.ttl_s]
        for image_id in expired:
            self._remove(image_id)
        return len(last_used) - len(expired)

    def owned(self, owner: str) -> list[str]:
        """The ids of ``owner``'s uploads (reads each ``.json``: a workspace's quota check)."""
        return owned_images(self.root, owner)

    def _check(self, image_id: str, viewer: Viewer | None = None) -> None:
        """NotFound unless ``viewer`` (default: the request's) may see the upload; no file read when it sees all."""
        viewer = viewer or current()
        if viewer.teacher:
            return
        info = read_json(self.root / f"{image_id}.json") if IMAGE_ID_RE.match(image_id) else None
        if not isinstance(info, dict) or not viewer.owns(info.get("owner")):
            raise NotFound(f"no image with id {image_id!r}; upload one with POST /api/v1/images")

    def touch(self, image_id: str) -> None:
        """Record a use of the upload now (the ``.json``'s mtime), so the sweep keeps it."""
        try:
            os.utime(self.root / f"{image_id}.json")
        except FileNotFoundError:
            pass

    def _path(self, image_id: str, suffix: str) -> Path:
        path = self.root / f"{image_id}{suffix}"
        if not IMAGE_ID_RE.match(image_id) or not path.is_file():
            raise NotFound(f"no image with id {image_id!r}; upload one with POST /api/v1/images")
        self._check(image_id)
        return path

    def delete(self, image_id: str) -> None:
        """Remove an upload and its cached preprocessings (raises NotFound)."""
        self._path(image_id, ".bin")
        self._remove(image_id)

    def _remove(self, image_id: str) -> None:
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
        self.touch(image_id)
        if fmt in MEDIA_TYPES:
            return data, MEDIA_TYPES[fmt]
        img = self.decode(data)
        png, size = png_copy(img), img.size
        del img
        release_memory(*size)
        return png, "image/png"

    def input_for(self, image_id: str, input_shape: tuple[int, int, int], fit: str = "crop") -> np.ndarray:
        """The stored image preprocessed for a model (``fit`` "crop" or "pad"): ``(C, H, W)`` float32 in [0, 1] (cached)."""
        key = (image_id, tuple(input_shape), fit)
        self._check(image_id)  # before the cache: a cached preprocessing is no less private
        self.touch(image_id)
        with self._mutex:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        x = self.preprocess_bytes(self._path(image_id, ".bin").read_bytes(), input_shape, fit)
        with self._mutex:
            self._cache[key] = x
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return x

    def preprocess_bytes(self, data: bytes, input_shape: tuple[int, int, int], fit: str = "crop") -> np.ndarray:
        """Any upload's bytes -> read-only ``(C, H, W)`` float32 in [0, 1] for a model (not stored)."""
        _, h, w = input_shape
        img = self.decode(data, fit=(w, h))
        full = img.info["full_size"]
        x = model_input(img, input_shape, fit)
        del img
        release_memory(*full)
        return x


def owned_images(root: Path, owner: str) -> list[str]:
    """The ids of the uploads in ``root`` whose ``.json`` names ``owner``."""
    try:
        names = [e.name for e in os.scandir(root) if e.name.endswith(".json")]
    except FileNotFoundError:
        return []
    found = []
    for name in names:
        info = read_json(root / name)
        if isinstance(info, dict) and info.get("owner") == owner and IMAGE_ID_RE.match(name[:-5]):
            found.append(name[:-5])
    return found


def owned_image_bytes(root: Path, owner: str) -> int:
    """The bytes of ``owner``'s uploads in ``root`` (for its quota)."""
    total = 0
    for image_id in owned_images(root, owner):
        for suffix in (".bin", ".json"):
            try:
                total += (root / f"{image_id}{suffix}").stat().st_size
            except FileNotFoundError:
                continue
    return total
