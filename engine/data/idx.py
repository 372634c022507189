"""IDX files (the MNIST / Fashion-MNIST format), gzipped or not.

Format (big-endian): two zero bytes, a type code, the number of dimensions d, then d
uint32 sizes, then the values in C order. Gzip is detected from the magic bytes
``1f 8b``, never from the file name. Ref: http://yann.lecun.com/exdb/mnist/ (bottom).
"""

from __future__ import annotations

import contextlib
import gzip
import io
import math
import zlib
from pathlib import Path

import numpy as np

from engine.fileio import atomic_write

from .dataset import Dataset, DatasetError, DatasetTooLarge, human_bytes

__all__ = ["FASHION_CLASSES", "MNIST_FILES", "load_mnist", "read_idx", "write_idx"]

_TYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_GZIP_MAGIC = b"\x1f\x8b"
_MAX_BYTES = 1 << 30  # decompressed size cap: the 60,000 MNIST training images are 47 MB

FASHION_CLASSES: tuple[str, ...] = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)

#: split -> (images, labels) base names; a ``.gz`` suffix is also accepted.
MNIST_FILES: dict[str, tuple[str, str]] = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def read_idx(source: str | Path | bytes, *, max_bytes: int = _MAX_BYTES) -> np.ndarray:
    """Parse one IDX file (path or its bytes; gzip detected by magic bytes).

    Returns:
        An array of the header's shape in native byte order, e.g. (60000, 28, 28) uint8.

    Raises:
        DatasetError: unreadable file, bad magic, unknown type code, zero dimensions, or a
            payload whose length differs from the header's (truncated or with trailing bytes).
    """
    label = "IDX data" if isinstance(source, (bytes, bytearray, memoryview)) else f"IDX file {str(source)!r}"
    _check_declared(source, label, max_bytes)
    data = _read_bytes(source, label, max_bytes)
    if data[:2] == _GZIP_MAGIC:
        data = _gunzip(data, label, max_bytes)
    if len(data) < 4:
        raise DatasetError(f"{label} is too short to be an IDX file ({len(data)} bytes)")
    if data[0] != 0 or data[1] != 0:
        raise DatasetError(
            f"{label} is not an IDX file: it starts with bytes {data[:4].hex(' ')}, expected 00 00 <type> <dims>"
        )
    code, ndim = data[2], data[3]
    if code not in _TYPES:
        known = ", ".join(f"0x{c:02X}" for c in _TYPES)
        raise DatasetError(f"{label} has unknown IDX type code 0x{code:02X}; known codes are {known}")
    if ndim == 0:
        raise DatasetError(f"{label} declares 0 dimensions")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DatasetError(f"{label} is truncated inside its header ({len(data)} of {header} bytes)")
    dims = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    dtype = _TYPES[code]
    expected = math.prod(dims) * dtype.itemsize  # Python ints: no overflow
    if expected > max_bytes:
        raise DatasetTooLarge("bytes", f"{label} declares {expected:,} bytes of data, more than the limit of {max_bytes:,}")
    actual = len(data) - header
    if actual != expected:
        what = "truncated" if actual < expected else "followed by extra bytes"
        raise DatasetError(
            f"{label} is {what}: its header says shape {dims} of {dtype.name} ({expected} bytes) "
            f"but {actual} bytes follow the header"
        )
    arr = np.frombuffer(data, dtype=dtype, offset=header).reshape(dims)
    return arr.astype(dtype.newbyteorder("="))


def write_idx(path: str | Path, array: np.ndarray) -> None:
    """Write ``array`` as an IDX file, gzipped when ``path`` ends with ``.gz``; atomic.

    Supported dtypes: uint8, int8, int16, int32, float32, float64 (1 to 255 dimensions).
    """
    array = np.asarray(array)
    codes = {np.dtype(t).newbyteorder("="): c for c, t in _TYPES.items()}
    key = array.dtype.newbyteorder("=")
    if key not in codes or not 1 <= array.ndim <= 255:
        raise ValueError(f"cannot write a {array.dtype} array with {array.ndim} dimensions as IDX")
    code = codes[key]
    header = bytes([0, 0, code, array.ndim]) + np.array(array.shape, dtype=">u4").tobytes()
    payload = header + np.ascontiguousarray(array, dtype=_TYPES[code]).tobytes()
    if str(path).endswith(".gz"):
        payload = gzip.compress(payload, mtime=0)
    atomic_write(path, payload)


def load_mnist(directory: str | Path, *, kind: str = "mnist", max_bytes: int = _MAX_BYTES) -> Dataset:
    """Load MNIST or Fashion-MNIST from a folder holding the four standard IDX files.

    Each file may be raw or gzipped (``train-images-idx3-ubyte`` or ``...-ubyte.gz``).

    Returns:
        Dataset ``kind`` with x: (N, 1, 28, 28) uint8, y: (N,) int64 (60000 / 10000 for
        the official files).

    Raises:
        DatasetTooLarge: a file declares (or holds) more than ``max_bytes``, checked from its header first.
        DatasetError: a missing or malformed file, mismatched counts, labels outside 0-9.
    """
    if kind not in ("mnist", "fashion-mnist"):
        raise ValueError(f"kind must be 'mnist' or 'fashion-mnist', got {kind!r}")
    directory = Path(directory)
    if not directory.is_dir():
        raise DatasetError(f"{str(directory)!r} is not a folder; point to the folder holding the {kind} files")
    arrays: dict[str, np.ndarray] = {}
    for split, (images_name, labels_name) in MNIST_FILES.items():
        images = read_idx(_find(directory, images_name), max_bytes=max_bytes)
        labels = read_idx(_find(directory, labels_name), max_bytes=max_bytes)
        if images.ndim != 3 or images.dtype != np.uint8:
            raise DatasetError(
                f"{images_name} must hold uint8 images of shape (N, H, W), got {images.dtype} {images.shape}"
            )
        if labels.ndim != 1 or labels.dtype != np.uint8:
            raise DatasetError(f"{labels_name} must hold N uint8 labels, got {labels.dtype} {labels.shape}")
        if len(images) != len(labels):
            raise DatasetError(f"{images_name} has {len(images)} images but {labels_name} has {len(labels)} labels")
        if len(labels) and labels.max() > 9:
            raise DatasetError(f"{labels_name} holds label {int(labels.max())}; labels must be 0-9")
        arrays[f"x_{split}"] = images[:, None]
        arrays[f"y_{split}"] = labels.astype(np.int64)
    classes = FASHION_CLASSES if kind == "fashion-mnist" else tuple(str(d) for d in range(10))
    description = (
        "Fashion-MNIST: 28x28 grey images of Zalando clothing articles in 10 classes."
        if kind == "fashion-mnist"
        else "MNIST: 28x28 grey images of handwritten digits."
    )
    return Dataset(kind, classes, description=description, **arrays)


def _find(directory: Path, base: str) -> Path:
    for name in (base, base + ".gz", base.replace("-idx", ".idx"), base.replace("-idx", ".idx") + ".gz"):
        if (directory / name).is_file():
            return directory / name
    raise DatasetError(
        f"{str(directory)!r} has no {base} or {base}.gz; the folder must hold "
        + ", ".join(f"{n}[.gz]" for pair in MNIST_FILES.values() for n in pair)
    )


def _check_declared(source: str | Path | bytes, label: str, max_bytes: int) -> None:
    """Refuse a file whose header declares more than ``max_bytes`` before reading (or unzipping) the rest."""
    try:
        with contextlib.ExitStack() as stack:
            if isinstance(source, (bytes, bytearray, memoryview)):
                f = stack.enter_context(io.BytesIO(bytes(source[: 4 + 4 * 255 + 64 * 1024])))
            else:
                f = stack.enter_context(open(source, "rb"))
            if f.read(2) == _GZIP_MAGIC:
                f.seek(0)
                f = stack.enter_context(gzip.GzipFile(fileobj=f))
            else:
                f.seek(0)
            head = f.read(4)
            if len(head) < 4 or head[:2] != b"\0\0" or head[2] not in _TYPES or head[3] == 0:
                return  # read_idx says what is wrong
            raw = f.read(4 * head[3])
    except (OSError, EOFError, zlib.error):
        return  # read_idx reports it
    if len(raw) == 4 * head[3]:
        expected = math.prod(int(d) for d in np.frombuffer(raw, dtype=">u4")) * _TYPES[head[2]].itemsize
        if expected > max_bytes:
            raise DatasetTooLarge(
                "bytes", f"{label} declares {expected:,} bytes of data ({human_bytes(expected)}); the limit is {human_bytes(max_bytes)}"
            )


def _read_bytes(source: str | Path | bytes, label: str, max_bytes: int) -> bytes:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source)
    try:
        with open(source, "rb") as f:
            data = f.read(max_bytes + 1)
    except OSError as exc:
        raise DatasetError(f"could not read {label}: {exc.strerror or exc}") from exc
    if len(data) > max_bytes:
        raise DatasetTooLarge("bytes", f"{label} is larger than the limit of {max_bytes:,} bytes")
    return data


def _gunzip(data: bytes, label: str, max_bytes: int) -> bytes:
    """Decompress gzip data, reading at most max_bytes (a bomb stops at the cap)."""
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as f:
            out = f.read(max_bytes + 1)
    except (OSError, EOFError, zlib.error) as exc:
        raise DatasetError(f"{label} is a corrupt or truncated gzip file ({exc})") from exc
    if len(out) > max_bytes:
        raise DatasetTooLarge("bytes", f"{label} decompresses to more than the limit of {max_bytes:,} bytes")
    return out
