"""CIFAR-10, binary version only (the pickled "python version" is never read).

Each ``.bin`` file is a run of 3073-byte records: 1 label byte, then 1024 red, 1024 green
and 1024 blue bytes of a 32x32 image in row-major order. ``batches.meta.txt`` lists the
class names, one per line. Ref: https://www.cs.toronto.edu/~kriz/cifar.html
"""

from __future__ import annotations

import tarfile
import zlib
from pathlib import Path

import numpy as np

from engine.fileio import atomic_write

from .dataset import Dataset, DatasetError

__all__ = ["CIFAR10_CLASSES", "load_cifar10", "write_cifar10_bin"]

CIFAR10_CLASSES: tuple[str, ...] = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)
_RECORD = 1 + 3 * 32 * 32
_TRAIN = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
_TEST = "test_batch.bin"
_META = "batches.meta.txt"
_MAX_MEMBER = 10000 * _RECORD  # the official batches hold exactly 10,000 records each
_MAX_META = 4096


def load_cifar10(path: str | Path) -> Dataset:
    """Load CIFAR-10 from ``cifar-10-batches-bin/`` or from ``cifar-10-binary.tar.gz``.

    The archive is read in memory (never extracted); only the seven expected regular
    files are read, each with a size cap.

    Returns:
        Dataset "cifar10" with x: (N, 3, 32, 32) uint8 (50000 / 10000 officially).

    Raises:
        DatasetError: missing files, a length that is not a whole number of 3073-byte
            records, labels outside 0-9, or a bad class list.
    """
    path = Path(path)
    if path.is_dir():
        files = _read_folder(path)
    elif path.is_file():
        files = _read_tar(path)
    else:
        raise DatasetError(
            f"{str(path)!r} does not exist; point to the cifar-10-batches-bin folder or cifar-10-binary.tar.gz"
        )
    missing = [n for n in (*_TRAIN, _TEST) if n not in files]
    if missing:
        raise DatasetError(f"{str(path)!r} lacks {', '.join(missing)} of the CIFAR-10 binary version")
    x_train, y_train = zip(*(_parse_batch(files[n], n) for n in _TRAIN))
    x_test, y_test = _parse_batch(files[_TEST], _TEST)
    classes = _parse_meta(files[_META]) if _META in files else CIFAR10_CLASSES
    return Dataset(
        "cifar10",
        classes,
        np.concatenate(x_train),
        np.concatenate(y_train),
        x_test,
        y_test,
        "CIFAR-10: 32x32 colour photos of 10 kinds of vehicles and animals.",
    )


def write_cifar10_bin(directory: str | Path, x: np.ndarray, y: np.ndarray, *, n_test: int | None = None,
                      classes: tuple[str, ...] = CIFAR10_CLASSES) -> Path:
    """Write (N, 3, 32, 32) uint8 images and (N,) labels in the CIFAR-10 binary layout.

    The last ``n_test`` records (default N // 6) go to ``test_batch.bin``, the rest are
    spread over ``data_batch_1.bin`` .. ``data_batch_5.bin``; ``batches.meta.txt`` gets
    the class names. Used to build test fixtures. Returns ``directory``.
    """
    x = np.asarray(x)
    y = np.asarray(y)
    if x.dtype != np.uint8 or x.shape[1:] != (3, 32, 32) or y.shape != (len(x),):
        raise ValueError(f"need x (N, 3, 32, 32) uint8 and y (N,), got {x.dtype} {x.shape} and {y.shape}")
    if len(y) and (y.min() < 0 or y.max() > 255):
        raise ValueError("labels must fit in one byte")
    directory = Path(directory)
    records = np.concatenate([y.astype(np.uint8)[:, None], x.reshape(len(x), -1)], axis=1)
    n_test = len(x) // 6 if n_test is None else n_test
    train, test = records[: len(x) - n_test], records[len(x) - n_test:]
    for name, part in zip(_TRAIN, np.array_split(train, len(_TRAIN))):
        atomic_write(directory / name, part.tobytes())
    atomic_write(directory / _TEST, test.tobytes())
    atomic_write(directory / _META, ("\n".join(classes) + "\n\n").encode())
    return directory


def _parse_batch(data: bytes, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Records -> x: (n, 3, 32, 32) uint8, y: (n,) int64."""
    if len(data) % _RECORD:
        raise DatasetError(
            f"{name} is {len(data)} bytes, not a whole number of {_RECORD}-byte records; "
            "it is truncated or not from the CIFAR-10 binary version"
        )
    rec = np.frombuffer(data, dtype=np.uint8).reshape(-1, _RECORD)
    y = rec[:, 0].astype(np.int64)
    if len(y) and y.max() > 9:
        raise DatasetError(f"{name} holds label {int(y.max())}; CIFAR-10 labels are 0-9")
    return rec[:, 1:].reshape(-1, 3, 32, 32).copy(), y


def _parse_meta(data: bytes) -> tuple[str, ...]:
    try:
        names = tuple(line.strip() for line in data.decode("utf-8").splitlines() if line.strip())
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{_META} is not text ({exc})") from exc
    if len(names) != 10:
        raise DatasetError(f"{_META} should list 10 class names, found {len(names)}")
    return names


def _read_folder(folder: Path) -> dict[str, bytes]:
    if (folder / "cifar-10-batches-bin").is_dir():
        folder = folder / "cifar-10-batches-bin"
    out = {}
    for name in (*_TRAIN, _TEST, _META):
        p = folder / name
        if p.is_file():
            cap = _MAX_META if name == _META else _MAX_MEMBER
            with open(p, "rb") as f:
                data = f.read(cap + 1)
            if len(data) > cap:
                raise DatasetError(f"{str(p)!r} is larger than the {cap} bytes of an official CIFAR-10 file")
            out[name] = data
    return out


def _read_tar(path: Path) -> dict[str, bytes]:
    """Read the expected members of a (gzipped) tar in memory; nothing touches the disk."""
    wanted = {*_TRAIN, _TEST, _META}
    out: dict[str, bytes] = {}
    try:
        with tarfile.open(path, mode="r:*") as tar:
            for member in tar:
                parts = member.name.split("/")
                base = parts[-1]
                if base not in wanted or len(parts) > 2 or ".." in parts or member.name.startswith("/"):
                    continue
                if not member.isreg():
                    raise DatasetError(f"{member.name} in {str(path)!r} is not a regular file")
                cap = _MAX_META if base == _META else _MAX_MEMBER
                if member.size > cap:
                    raise DatasetError(f"{member.name} in {str(path)!r} is larger than an official CIFAR-10 file")
                f = tar.extractfile(member)
                out[base] = f.read(cap + 1) if f is not None else b""
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise DatasetError(f"could not read {str(path)!r} as a tar archive ({exc})") from exc
    return out
