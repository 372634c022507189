"""Safe image decoding and preprocessing, shared by uploads and the folder importer.

:func:`open_image` identifies the format from the header, checks the size the header
declares *before* decoding any pixels, and only then decodes; every failure is an
:class:`ImageError` whose ``kind`` ("unsupported", "too_large", "corrupt") a caller can map
to a status code. :func:`to_mode` and :func:`preprocess` turn any decoded image into the
(C, H, W) array a model expects.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Callable
from typing import Literal

import numpy as np
from PIL import Image, ImageOps

__all__ = [
    "ALLOWED_FORMATS",
    "ImageError",
    "array_to_png",
    "decoding_cost",
    "open_image",
    "preprocess",
    "to_mode",
    "to_uint8_chw",
]

ALLOWED_FORMATS: frozenset[str] = frozenset({"PNG", "JPEG", "GIF", "BMP", "WEBP", "TIFF"})
ImageErrorKind = Literal["unsupported", "too_large", "corrupt"]
MB = 1024 * 1024
DEFAULT_DECODED_BYTES = 64 * MB
# Pillow's own bomb check, before ours: it warns above this many pixels and raises above twice it.
# Its default (89 MP, a warning only) lets a forged header through to a decode; the warning is
# made an error below, so a bomb is always an ImageError ("too_large"), never a warning.
PILLOW_MAX_PIXELS = 8192 * 8192
Image.MAX_IMAGE_PIXELS = PILLOW_MAX_PIXELS
warnings.filterwarnings("error", category=Image.DecompressionBombWarning)


class ImageError(ValueError):
    """An image that cannot be used; ``kind`` says why, ``message`` says it to a person.

    ``limit`` names the limit a "too_large" image broke ("side", "pixels", "decoded_bytes" or
    "pillow"), so a caller can name the setting that raises it.
    """

    def __init__(self, kind: ImageErrorKind, message: str, *, limit: str | None = None) -> None:
        super().__init__(message)
        self.kind: ImageErrorKind = kind
        self.message = message
        self.limit = limit


def _open_header(data: bytes, *, max_pixels: int, max_side: int) -> Image.Image:
    """A lazily opened image whose format and size are checked; no pixel decoded yet."""
    allowed = ", ".join(sorted(ALLOWED_FORMATS))
    try:
        img = Image.open(io.BytesIO(data), formats=sorted(ALLOWED_FORMATS))
    except Image.UnidentifiedImageError as exc:
        fmt = _sniff(data)
        if fmt is not None:  # the right signature but a header Pillow cannot parse
            raise ImageError("corrupt", f"the {fmt} image is truncated or damaged") from exc
        raise ImageError("unsupported", f"not a supported image; use one of {allowed}") from exc
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # Pillow's own limit (PILLOW_MAX_PIXELS) fired before ours could: far too large anyway.
        raise ImageError("too_large", f"the image is far too large ({exc})", limit="pillow") from exc
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
            limit="side" if width > max_side or height > max_side else "pixels",
        )
    return img


def open_image(
    data: bytes,
    *,
    max_pixels: int = 4096 * 4096,
    max_side: int = 4096,
    max_decoded_bytes: int = DEFAULT_DECODED_BYTES,
    fit: tuple[int, int] | None = None,
    admit: Callable[[int], contextlib.AbstractContextManager[object]] | None = None,
) -> Image.Image:
    """Decode one image from bytes, safely, its memory bounded before any pixel is decoded.

    Steps: identify the format from the header (lazy ``Image.open``, limited to
    :data:`ALLOWED_FORMATS`); check width, height and pixel count from the header; with ``fit``
    ``(width, height)``, ask JPEG for a reduced decode (``draft``, DCT scaling, to at least twice
    ``fit``); check :func:`decoding_cost` against ``max_decoded_bytes``; decode the first frame
    only (later frames are never read, nor counted); ``Image.reduce`` by whole factors while both
    sides stay at least twice ``max(fit)``; apply the EXIF orientation (after the reduction, so
    the full-size image is never copied). ``admit(cost)``, when given, is entered around the
    decoding and the reduction (a server's ledger of the bytes all its decodes take at once).

    Returns:
        A fully loaded single-frame PIL image, in whatever mode the file has, reduced when
        ``fit`` allows; ``info["full_size"]`` is its ``(width, height)`` before any reduction,
        as displayed (after the EXIF orientation).

    Raises:
        ImageError: kind "unsupported" (not one of the allowed formats), "too_large" (over
            ``max_side`` per side, ``max_pixels`` in all or ``max_decoded_bytes`` to decode; then
            ``limit`` is "side", "pixels" or "decoded_bytes") or "corrupt" (truncated or invalid).
    """
    img = _open_header(data, max_pixels=max_pixels, max_side=max_side)
    fmt, full = img.format, img.size
    side = max(fit) if fit else 0
    if fit and fmt == "JPEG":
        img.draft(img.mode, (2 * side, 2 * side))  # the largest 1/1..1/8 scale still covering it
    cost = decoding_cost(img)
    if cost > max_decoded_bytes:
        w, h = img.size
        raise ImageError(
            "too_large",
            f"the {fmt} image needs {cost / MB:.1f} MB to decode ({w}x{h} pixels, {_per_pixel_words(img)}); "
            f"the limit is {max_decoded_bytes / MB:g} MB",
            limit="decoded_bytes",
        )
    with admit(cost) if admit else contextlib.nullcontext():
        try:
            img.seek(0)  # GIF / TIFF / APNG / WebP: the first frame only
            img.load()
        except Exception as exc:
            raise ImageError("corrupt", f"the {fmt} image is truncated or damaged ({exc})") from exc
        try:
            orientation = int(img.getexif().get(0x0112, 1))
        except Exception:  # noqa: BLE001  damaged EXIF: keep the pixels as stored
            orientation = 1
        if side:
            img = _reduce(img, (side, side))
        try:
            out = ImageOps.exif_transpose(img) if orientation != 1 else img
        except Exception:  # noqa: BLE001  damaged EXIF: keep the pixels as stored
            out = img
        del img  # the full-size pixels go before the ledger is released (when reduced)
    out.format = fmt
    out.info["full_size"] = full[::-1] if orientation in (5, 6, 7, 8) else full
    return out


def decoding_cost(img: Image.Image) -> int:
    """Bytes that decoding ``img``'s first frame takes, from its header alone (nothing decoded).

    ``width x height x`` the larger of Pillow's storage per pixel (1 byte for "1", "L", "P";
    2 for "I;16"; 4 for every other mode: Pillow keeps RGB as 4 bytes) and the file's own
    ``channels x bytes per channel`` (16-bit PNG and TIFF: 2 bytes a channel), plus the
    decoder's own buffers where they are large, measured here at 4096x4096: libwebp keeps
    three more 4-byte canvases (WebP: 16 bytes a pixel in all, 263 MB), and a progressive
    JPEG keeps every DCT coefficient at full size (2 bytes a sample) even under ``draft``.
    Animated images count their first frame only (the only one decoded).
    """
    w, h = img.size
    cost = w * h * max(_storage_bytes(img.mode), _file_pixel_bytes(img))
    if img.format == "WEBP":
        cost += w * h * 12
    if img.format == "JPEG" and (img.info.get("progressive") or img.info.get("progression")):
        cost += _jpeg_coefficient_bytes(img)
    return cost


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


Fit = Literal["crop", "pad"]


def to_uint8_chw(img: Image.Image, input_shape: tuple[int, int, int], fit: Fit = "crop") -> np.ndarray:
    """Resize to (H, W) keeping the aspect ratio (antialiased bilinear), convert to C channels.

    ``fit="crop"``: scale so the image covers (H, W), then centre-crop what sticks out.
    ``fit="pad"`` (letterbox): scale so the whole image fits inside (H, W) and centre it on black
    (0), the same zero the convolutions' padding and the augmentation's shifts fill with; a mean
    colour would look nicer but would tell the model something the image does not say.
    The scaled size is ``max(H, round(h * s))`` x ``max(W, round(w * s))`` for crop, ``min`` for
    pad (``s`` the scale); the offset is ``(scaled - target) // 2`` (crop) or ``(target - scaled) // 2`` (pad).

    A large image is first reduced by a whole factor (box average, ``Image.reduce``) while both
    sides stay at least twice (W, H), so the conversion never works on the full-size pixels.

    Returns:
        (C, H, W) uint8.
    """
    if fit not in ("crop", "pad"):
        raise ValueError(f"fit must be 'crop' or 'pad', got {fit!r}")
    c, h, w = input_shape
    img = to_mode(_reduce(img, (w, h)), c)
    pick = max if fit == "crop" else min
    scale = pick(h / img.height, w / img.width)
    new_w = pick(w, max(1, round(img.width * scale)))
    new_h = pick(h, max(1, round(img.height * scale)))
    if (new_w, new_h) != img.size:
        img = img.resize((new_w, new_h), Image.Resampling.BILINEAR)  # antialiased when shrinking
    if fit == "crop":
        left, top = (new_w - w) // 2, (new_h - h) // 2
        img = img.crop((left, top, left + w, top + h))
    else:
        canvas = Image.new(img.mode, (w, h), 0)
        canvas.paste(img, ((w - new_w) // 2, (h - new_h) // 2))
        img = canvas
    arr = np.asarray(img, dtype=np.uint8)
    return arr[None].copy() if c == 1 else arr.transpose(2, 0, 1).copy()


def preprocess(img: Image.Image, input_shape: tuple[int, int, int], fit: Fit = "crop") -> np.ndarray:
    """:func:`to_uint8_chw` as float32 ``x / 255``: (C, H, W) in [0, 1], no other normalisation."""
    return to_uint8_chw(img, input_shape, fit).astype(np.float32) * np.float32(1 / 255)


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


_STORAGE_BYTES = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16L": 2, "I;16B": 2, "I;16N": 2}  # other modes: 4


def _storage_bytes(mode: str) -> int:
    """Bytes a pixel takes in Pillow's memory (RGB is stored in 4 bytes, like RGBA)."""
    return _STORAGE_BYTES.get(mode, 4)


def _file_pixel_bytes(img: Image.Image) -> int:
    """The file's own ``channels x bytes per channel`` (2 bytes for 16-bit PNG or TIFF samples)."""
    rawmode = img.tile[0].args if img.tile else None
    rawmode = rawmode[0] if isinstance(rawmode, tuple) and rawmode else rawmode
    deep = isinstance(rawmode, str) and ";16" in rawmode
    if img.format == "TIFF":
        bits = img.tag_v2.get(258) if hasattr(img, "tag_v2") else None
        deep = deep or bool(bits) and max(bits if isinstance(bits, tuple) else (bits,)) > 8
    return len(img.getbands()) * (2 if deep else 1)


def _per_pixel_words(img: Image.Image) -> str:
    """How :func:`decoding_cost` counted a pixel, for the refusal message."""
    channels = len(img.getbands())
    per_channel = max(_storage_bytes(img.mode), _file_pixel_bytes(img)) / channels
    extra = " plus the decoder's buffers" if img.format in ("WEBP", "JPEG") else ""
    return f"{channels} channel{'s' * (channels > 1)} x {per_channel:g} bytes{extra}"


def _jpeg_coefficient_bytes(img: Image.Image) -> int:
    """A progressive JPEG's coefficient buffer: 2 bytes a sample of each component, at full size."""
    w, h = img.size
    config = getattr(img, "decoderconfig", ())  # draft() shrinks img.size; the buffer stays full size
    scale = config[0] if config else 1
    layers = getattr(img, "layer", None) or [(0, 1, 1, 0)] * len(img.getbands())
    hmax = max(lay[1] for lay in layers)
    vmax = max(lay[2] for lay in layers)
    samples = sum(lay[1] * lay[2] for lay in layers) / (hmax * vmax)
    return int(w * h * scale * scale * 2 * samples)


_CONVERT_TO_REDUCE = {"PA": "RGBA", "1": "L"}  # "P" goes to RGBA or RGB, by its transparency


def _reduce(img: Image.Image, fit: tuple[int, int]) -> Image.Image:
    """``img`` reduced by the largest whole factor keeping both sides at least twice ``fit`` (W, H).

    A box average (``Image.reduce``; for 16-bit grey, which it refuses, a BOX ``resize``, which
    takes it at 2 bytes a pixel). Palette and bilevel images are first converted to a mode it
    takes, as :func:`to_mode` would convert them anyway: palette to RGB(A), bilevel to L.
    """
    factor = min(img.width // (2 * max(fit[0], 1)), img.height // (2 * max(fit[1], 1)))
    if factor < 2:
        return img
    if img.mode.startswith("I;16"):
        return img.resize((img.width // factor, img.height // factor), Image.Resampling.BOX)
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    elif img.mode in _CONVERT_TO_REDUCE:
        img = img.convert(_CONVERT_TO_REDUCE[img.mode])
    try:
        return img.reduce(factor)
    except ValueError:  # a rare mode reduce() does not take: convert at full size, as before
        return img
