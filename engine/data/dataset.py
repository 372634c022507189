"""The in-memory dataset type and its one on-disk format (a pickle-free ``.npz``).

A :class:`Dataset` holds images as ``uint8`` arrays in NCHW layout and labels as
``int64``; it is validated once, when it is built, so every consumer can trust
its shapes. :func:`to_float` is the one place where pixels become ``float32``.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.fileio import atomic_writer, check_npz

__all__ = ["Dataset", "DatasetError", "load_dataset", "save_dataset", "to_float"]

_FORMAT_VERSION = 1
MAX_DATASET_BYTES = 2**32  # all arrays of one saved dataset, as declared in their headers
_SPLITS = ("train", "test")


class DatasetError(ValueError):
    """A dataset could not be built, read or found; the message says what to do."""


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
    """Load a dataset written by :func:`save_dataset` (never unpickles anything).

    Raises:
        DatasetError: when the file is missing, not an ``.npz`` of ``.npy`` arrays, declares arrays larger
            than it holds (or than ``MAX_DATASET_BYTES``), lacks a field, or holds
            arrays of the wrong shape, dtype or label range.
    """
    path = Path(path)
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


def _describe(a: object) -> str:
    if isinstance(a, np.ndarray):
        return f"{a.dtype} array of shape {a.shape}"
    return type(a).__name__
