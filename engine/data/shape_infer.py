"""The input shape an import takes from its own images, read from their headers (no pixel decoded).

Rules, in order: channels 1 if every readable image is grey ("1", "L", "LA", 16/32-bit grey, or a
palette whose colours are all grey), else 3; height and width the most common (H, W) among the
images (ties: the one seen first in sorted file order); a side over ``max_side`` scales both
sides down by the same factor (aspect kept), a side under ``min_side`` scales them up; finally,
when ``n_images x C x H x W`` would pass ``max_bytes``, both sides shrink by the same factor until
it fits. Fields the caller gave are kept as given. ``why`` says each choice in words.
"""

from __future__ import annotations

import io
import math
from collections import Counter
from dataclasses import dataclass

from PIL import Image

from .images import ALLOWED_FORMATS

__all__ = ["Chosen", "Header", "choose_shape", "read_header"]

MAX_INPUT_SIDE = 256  # the largest height or width an import may have (the API's limit too)
MIN_INPUT_SIDE = 8
_GREY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"})


@dataclass(frozen=True)
class Header:
    """What an image's header says: grey or colour, and its size as stored."""

    grey: bool
    width: int
    height: int


@dataclass(frozen=True)
class Chosen:
    """The shape an import uses and why: ``as_dict()`` is the API's ``chosen``."""

    channels: int
    height: int
    width: int
    why: str

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.channels, self.height, self.width)

    def as_dict(self) -> dict[str, object]:
        return {"channels": self.channels, "height": self.height, "width": self.width, "why": self.why}


def read_header(data: bytes) -> Header | None:
    """The header of one image file (lazy ``Image.open``: nothing decoded), or None when unreadable."""
    try:
        with Image.open(io.BytesIO(data), formats=sorted(ALLOWED_FORMATS)) as img:
            grey = img.mode in _GREY_MODES
            if img.mode == "P":
                pal = img.getpalette() or []
                grey = all(pal[i] == pal[i + 1] == pal[i + 2] for i in range(0, len(pal) - 2, 3))
            w, h = img.size
    except Exception:  # noqa: BLE001  unreadable files are skipped, and reported, by the decoding pass
        return None
    return Header(grey, w, h) if w > 0 and h > 0 else None


def choose_shape(headers: list[Header], *, channels: int | None = None, height: int | None = None,
                 width: int | None = None, n_images: int | None = None, max_bytes: int | None = None,
                 max_side: int = MAX_INPUT_SIDE, min_side: int = MIN_INPUT_SIDE) -> Chosen:
    """The (C, H, W) for these images; given fields are kept (see the module's rules)."""
    why = []
    if channels is None:
        grey = bool(headers) and all(hd.grey for hd in headers)
        channels = 1 if grey else 3
        why.append("grey: every image is grey" if grey else "RGB: some images are in colour" if headers else
                   "RGB: no image header could be read")
    if height is None or width is None:
        sizes = Counter((hd.height, hd.width) for hd in headers)
        (h, w), n = sizes.most_common(1)[0] if sizes else ((64, 64), 0)
        said = f"{h}x{w}, the most common size ({n} of {len(headers)} images)" if n else "64x64 (no size could be read)"
        if height is not None:
            w, h = w * height / h, height
        if width is not None:
            h, w = h * width / w, width
        s = min(1.0, max_side / max(h, w))
        s = max(s, min_side / min(h, w))
        if s != 1:
            said += f", scaled to fit {min_side}-{max_side} pixels a side"
        cap = (max_bytes / (n_images * channels * h * w * s * s)) if max_bytes and n_images else math.inf
        if cap < 1:
            s *= math.sqrt(cap)
            said += ", and shrunk to fit the dataset size limit"
        h = height if height is not None else min(max_side, max(min_side, math.floor(h * s)))
        w = width if width is not None else min(max_side, max(min_side, math.floor(w * s)))
        why.append(said)
    return Chosen(channels, int(height if height is not None else h), int(width if width is not None else w),
                  "; ".join(why) or "as given")
