"""The dataset type and its on-disk formats: a folder of raw ``.npy`` files opened lazily, and a one-file ``.npz``.

A :class:`Dataset` holds images as ``uint8`` arrays in NCHW layout and labels as
``int64``; it is validated once, when it is built, so every consumer can trust
its shapes. :func:`to_float` is the one place where pixels become ``float32`` (per batch).

The folder format (what a server keeps)::

    name/dataset.json    name, description, classes, input shape, sizes, counts (no pixel)
    name/x_train.npy     (N, C, H, W) uint8, opened memory-mapped: pages load as they are read
    name/y_train.npy     (N,) int64
    name/x_test.npy, name/y_test.npy

:func:`store_dataset` writes it, :func:`open_dataset` opens it, :func:`dataset_info` reads only the JSON.
The ``.npz`` (:func:`save_dataset`) is the older single-file format, still read by :func:`load_dataset`.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import tempfile
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from engine.fileio import atomic_write, atomic_writer, check_npz

__all__ = [
    "Dataset",
    "DatasetError",
    "DatasetTooLarge",
    "INFO_FILE",
    "dataset_folder",
    "dataset_info",
    "human_bytes",
    "load_dataset",
    "open_dataset",
    "save_dataset",
    "store_dataset",
    "to_float",
    "write_info",
    "write_pixels",
]

_FORMAT_VERSION = 1  # the .npz
_FOLDER_VERSION = 2  # the folder of .npy files
INFO_FILE = "dataset.json"
MAX_DATASET_BYTES = 2**32  # all arrays of one saved dataset, as declared in their headers
_MAX_INFO_BYTES = 1 << 20
_SPLITS = ("train", "test")


class DatasetError(ValueError):
    """A dataset could not be built, read or found; the message says what to do."""


class DatasetTooLarge(DatasetError):
    """A budget refused the work before (or while) doing it; ``budget`` names which one.

    ``budget`` is "bytes" (the dataset as stored) or "seconds" (the CPU time of an import);
    the message gives the numbers, a caller adds the setting that raises the limit.
    """

    def __init__(self, budget: Literal["bytes", "seconds"], message: str) -> None:
        super().__init__(message)
        self.budget = budget


def human_bytes(n: int) -> str:
    """``1966080000`` -> "1.8 GB", ``536870912`` -> "512 MB" (binary units)."""
    return f"{n / 2**30:.1f} GB" if n >= 2**30 else f"{n / 2**20:.0f} MB" if n >= 2**20 else f"{n / 2**10:.0f} KB"


@dataclass(frozen=True, eq=False)
class Dataset:
    """An image-classification dataset split into train and test.

    Attributes:
        name: short identifier, e.g. ``"shapes"``.
        classes: class names; label ``k`` means ``classes[k]``.
        x_train: (N, C, H, W) uint8 images.
        y_train: (N,) int64 labels in ``[0, len(classes))``.
        x_test: (M, C, H, W) uint8 images (M may be 0).
        y_test: (M,) int64 labels.
        description: one human-readable sentence or paragraph.

    Raises:
        DatasetError: on construction when dtypes, shapes or labels are inconsistent.
    """

    name: str
    classes: tuple[str, ...]
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    description: str = ""

    def __post_init__(self) -> None:
        classes = tuple(str(c) for c in self.classes)
        object.__setattr__(self, "classes", classes)
        if not self.name:
            raise DatasetError("a dataset needs a non-empty name")
        if len(classes) < 2:
            raise DatasetError(f"dataset {self.name!r} needs at least 2 classes, got {len(classes)}")
        if len(set(classes)) != len(classes):
            raise DatasetError(f"dataset {self.name!r} has duplicate class names: {list(classes)}")
        shape = None
        for split in _SPLITS:
            x = getattr(self, f"x_{split}")
            y = getattr(self, f"y_{split}")
            if not isinstance(x, np.ndarray) or x.dtype != np.uint8 or x.ndim != 4:
                raise DatasetError(
                    f"x_{split} of dataset {self.name!r} must be a uint8 array of shape (N, C, H, W), "
                    f"got {_describe(x)}"
                )
            if not isinstance(y, np.ndarray) or y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
                raise DatasetError(
                    f"y_{split} of dataset {self.name!r} must be a 1-D integer array, got {_describe(y)}"
                )
            if len(x) != len(y):
                raise DatasetError(
                    f"dataset {self.name!r}: {len(x)} {split} images but {len(y)} {split} labels"
                )
            if len(y) and (y.min() < 0 or y.max() >= len(classes)):
                raise DatasetError(
                    f"dataset {self.name!r}: {split} labels must lie in [0, {len(classes) - 1}], "
                    f"found values from {int(y.min())} to {int(y.max())}"
                )
            if y.dtype != np.int64:
                object.__setattr__(self, f"y_{split}", y.astype(np.int64))
            if shape is not None and x.shape[1:] != shape:
                raise DatasetError(
                    f"dataset {self.name!r}: train images are {shape} but test images are {x.shape[1:]}"
                )
            shape = x.shape[1:]
        if len(self.x_train) == 0:
            raise DatasetError(f"dataset {self.name!r} has no training images")
        if min(self.x_train.shape[1:]) < 1:
            raise DatasetError(f"dataset {self.name!r} has empty images of shape {self.x_train.shape[1:]}")

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one image."""
        c, h, w = self.x_train.shape[1:]
        return int(c), int(h), int(w)

    @property
    def num_classes(self) -> int:
        """Number of classes K."""
        return len(self.classes)

    def split(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """``(x, y)`` of split ``"train"`` or ``"test"``: (N, C, H, W) uint8 and (N,) int64.

        Raises:
            ValueError: for any other split name.
        """
        if name not in _SPLITS:
            raise ValueError(f"unknown split {name!r}; expected one of {list(_SPLITS)}")
        return getattr(self, f"x_{name}"), getattr(self, f"y_{name}")

    def counts(self) -> dict[str, list[int]]:
        """Per-class image counts: ``{"train": [n_0, ..., n_K-1], "test": [...]}``."""
        k = self.num_classes
        return {s: np.bincount(self.split(s)[1], minlength=k).tolist() for s in _SPLITS}


def to_float(x: np.ndarray) -> np.ndarray:
    """uint8 pixels (any shape) -> float32 ``x / 255`` in [0, 1].

    Raises:
        TypeError: if ``x`` is not uint8 (to catch a double conversion early).
    """
    if x.dtype != np.uint8:
        raise TypeError(f"to_float expects uint8 pixels, got {x.dtype}")
    return x.astype(np.float32) * np.float32(1.0 / 255.0)


def save_dataset(ds: Dataset, path: str | Path, *, compress: bool = False) -> None:
    """Save ``ds`` as one ``.npz`` file, atomically.

    Strings are stored as fixed-width unicode arrays, never object arrays, so the file
    loads with ``allow_pickle=False``. ``compress`` trades speed for size (noisy images
    compress poorly, so it is off by default).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {
        "format_version": np.array(_FORMAT_VERSION, dtype=np.int64),
        "name": np.array(ds.name, dtype=np.str_),
        "description": np.array(ds.description, dtype=np.str_),
        "classes": np.array(ds.classes, dtype=np.str_),
        "x_train": ds.x_train,
        "y_train": ds.y_train,
        "x_test": ds.x_test,
        "y_test": ds.y_test,
    }
    with atomic_writer(path) as f:
        (np.savez_compressed if compress else np.savez)(f, **arrays)


def load_dataset(path: str | Path) -> Dataset:
    """Load a dataset written by :func:`save_dataset` (never unpickles anything), or open a folder
    written by :func:`store_dataset` (see :func:`open_dataset`); ``name.npz`` opens the folder ``name``
    when only the folder exists (a dataset moved to the folder layout).

    Raises:
        DatasetError: when the file is missing, not an ``.npz`` of ``.npy`` arrays, declares arrays larger
            than it holds (or than ``MAX_DATASET_BYTES``), lacks a field, or holds
            arrays of the wrong shape, dtype or label range.
    """
    path = Path(path)
    if path.suffix == ".npz" and not path.exists() and path.with_suffix("").is_dir():
        path = path.with_suffix("")  # moved to the folder layout since: the old path still works
    if path.is_dir():
        return open_dataset(path)
    if not path.is_file():
        raise DatasetError(f"dataset file {str(path)!r} does not exist")
    try:
        check_npz(path, max_bytes=MAX_DATASET_BYTES)
        with np.load(path, allow_pickle=False) as npz:
            missing = {"name", "classes", "x_train", "y_train", "x_test", "y_test"} - set(npz.files)
            if missing:
                raise DatasetError(
                    f"{str(path)!r} is not a saved dataset: fields {sorted(missing)} are missing"
                )
            version = int(npz["format_version"]) if "format_version" in npz.files else 1
            if version > _FORMAT_VERSION:
                raise DatasetError(
                    f"{str(path)!r} was written by a newer version (format {version}); upgrade to read it"
                )
            name, classes = npz["name"], npz["classes"]
            if name.dtype.kind != "U" or name.ndim != 0 or classes.dtype.kind != "U" or classes.ndim != 1:
                raise DatasetError(f"{str(path)!r}: 'name' and 'classes' must be unicode string arrays")
            description = str(npz["description"]) if "description" in npz.files else ""
            fields = {k: npz[k] for k in ("x_train", "y_train", "x_test", "y_test")}
    except DatasetError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise DatasetError(
            f"could not read dataset file {str(path)!r} ({exc}); delete it and generate or import it again"
        ) from exc
    return Dataset(
        name=str(name), classes=tuple(str(c) for c in classes), description=description, **fields
    )


@contextlib.contextmanager
def dataset_folder(dest: str | Path) -> Iterator[Path]:
    """Yield a new empty folder beside ``dest``; on success it becomes ``dest`` (an older ``dest`` is
    replaced), on any error it is removed and ``dest`` is left as it was."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".tmp-{dest.name}."))
    try:
        yield tmp
        os.chmod(tmp, 0o755)
        if dest.exists():
            old = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".tmp-{dest.name}.old."))
            os.replace(dest, old / "d")
            os.replace(tmp, dest)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_pixels(path: str | Path, shape: tuple[int, int, int, int], chunks: Iterable[np.ndarray]) -> None:
    """Write a (N, C, H, W) uint8 ``.npy`` from chunks of images, holding one chunk at a time.

    Raises:
        DatasetError: when the chunks do not add up to ``shape``.
    """
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.uint8)), "fortran_order": False, "shape": tuple(shape)}
    written, want = 0, math.prod(shape)
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, header)
        for chunk in chunks:
            chunk = np.ascontiguousarray(chunk, dtype=np.uint8)
            f.write(chunk.tobytes())
            written += chunk.size
        f.flush()
        os.fsync(f.fileno())
    if written != want:
        raise DatasetError(f"{Path(path).name}: wrote {written} pixel values, expected {want} for shape {shape}")


def write_info(folder: str | Path, ds_name: str, classes: Iterable[str], description: str,
               input_shape: tuple[int, int, int], labels: dict[str, np.ndarray]) -> dict[str, Any]:
    """Write ``dataset.json`` (what a listing shows, no pixel) and the label files; return the info."""
    folder, classes = Path(folder), [str(c) for c in classes]
    for split in _SPLITS:
        np.save(folder / f"y_{split}.npy", np.asarray(labels[split], dtype=np.int64), allow_pickle=False)
    info = {
        "format_version": _FOLDER_VERSION, "name": ds_name, "description": description, "classes": classes,
        "input_shape": [int(v) for v in input_shape],
        "sizes": {s: len(labels[s]) for s in _SPLITS},
        "counts": {s: np.bincount(np.asarray(labels[s], dtype=np.int64), minlength=len(classes)).tolist()[:len(classes)]
                   for s in _SPLITS},
    }  # fmt: skip
    atomic_write(folder / INFO_FILE, json.dumps(info, indent=1).encode())
    return info


def store_dataset(ds: Dataset, dest: str | Path) -> None:
    """Write ``ds`` in the folder format at ``dest`` (atomically: a reader sees the old folder or the new)."""
    with dataset_folder(dest) as tmp:
        for split in _SPLITS:
            x = ds.split(split)[0]
            write_pixels(tmp / f"x_{split}.npy", x.shape, (x[i : i + 256] for i in range(0, len(x), 256)))
        write_info(tmp, ds.name, ds.classes, ds.description, ds.input_shape, {s: ds.split(s)[1] for s in _SPLITS})


def dataset_info(folder: str | Path) -> dict[str, Any]:
    """The ``dataset.json`` of a stored dataset, checked for shape (no pixel is read).

    Raises:
        DatasetError: missing, unreadable or malformed.
    """
    path = Path(folder) / INFO_FILE
    try:
        with open(path, "rb") as f:
            raw = f.read(_MAX_INFO_BYTES + 1)
        if len(raw) > _MAX_INFO_BYTES:
            raise DatasetError(f"{str(path)!r} is larger than {_MAX_INFO_BYTES} bytes")
        info = json.loads(raw)
    except (OSError, ValueError) as exc:
        raise DatasetError(f"could not read {str(path)!r} ({exc}); delete the dataset and import it again") from exc
    ok = (
        isinstance(info, dict) and isinstance(info.get("name"), str) and isinstance(info.get("description"), str)
        and isinstance(info.get("classes"), list) and all(isinstance(c, str) for c in info["classes"])
        and _int_list(info.get("input_shape"), 3)
        and isinstance(info.get("sizes"), dict) and all(_int_list([info["sizes"].get(s)], 1) for s in _SPLITS)
        and isinstance(info.get("counts"), dict)
        and all(_int_list(info["counts"].get(s), len(info["classes"])) for s in _SPLITS)
    )  # fmt: skip
    if not ok:
        raise DatasetError(f"{str(path)!r} is not a dataset description; delete the dataset and import it again")
    if info.get("format_version", _FOLDER_VERSION) > _FOLDER_VERSION:
        raise DatasetError(f"{str(path)!r} was written by a newer version; upgrade to read it")
    return info


def open_dataset(folder: str | Path, *, mmap: bool = True) -> Dataset:
    """Open a folder written by :func:`store_dataset`: images memory-mapped read-only (``mmap``) or read
    into memory, labels read; headers are checked against the description and the file sizes first, so a
    truncated file is an error here rather than a crash on first access. Never unpickles anything.

    Raises:
        DatasetError: a missing or malformed file, or arrays that disagree with ``dataset.json``.
    """
    folder = Path(folder)
    info = dataset_info(folder)
    c, h, w = info["input_shape"]
    arrays = {}
    for split in _SPLITS:
        n = info["sizes"][split]
        for key, dtype, shape in ((f"x_{split}", np.uint8, (n, c, h, w)), (f"y_{split}", np.int64, (n,))):
            path = folder / f"{key}.npy"
            _check_npy(path, np.dtype(dtype), shape)
            lazy = mmap and key[0] == "x" and n > 0
            try:
                arrays[key] = np.load(path, mmap_mode="r" if lazy else None, allow_pickle=False)
            except (OSError, ValueError) as exc:
                raise DatasetError(f"could not read {str(path)!r} ({exc})") from exc
    return Dataset(name=info["name"], classes=tuple(info["classes"]), description=info["description"], **arrays)


def _check_npy(path: Path, dtype: np.dtype, shape: tuple[int, ...]) -> None:
    """The header of ``path`` declares exactly ``dtype`` and ``shape`` and the file holds that many bytes."""
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            if version not in ((1, 0), (2, 0)):
                raise ValueError(f"unsupported .npy version {version}")
            read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            got_shape, fortran, got_dtype = read(f)
            start = f.tell()
        size = path.stat().st_size
    except (OSError, ValueError) as exc:
        raise DatasetError(f"could not read {str(path)!r} ({exc}); delete the dataset and import it again") from exc
    if got_dtype != dtype or tuple(got_shape) != tuple(shape) or fortran:
        raise DatasetError(f"{str(path)!r} holds {got_dtype} {tuple(got_shape)}; its dataset.json says {dtype} {tuple(shape)}")
    if size != start + math.prod(shape) * dtype.itemsize:
        raise DatasetError(f"{str(path)!r} is {size} bytes, not the {start + math.prod(shape) * dtype.itemsize} its header declares")


def _int_list(v: object, n: int) -> bool:
    return isinstance(v, list) and len(v) == n and all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in v)


def _describe(a: object) -> str:
    if isinstance(a, np.ndarray):
        return f"{a.dtype} array of shape {a.shape}"
    return type(a).__name__
