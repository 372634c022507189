"""Datasets: the built-in generators (made on first use, cached as ``.npz``) and uploaded zips.

Everything lives in ``DATA_DIR/datasets/{name}.npz``. Built-ins are listed before they exist (their
shape and classes are known); the first request that needs one generates it, once, under a lock
per name. Loaded datasets stay in memory.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import threading
from pathlib import Path
from typing import Any

from app.config import Settings
from app.errors import Conflict, Invalid, NotFound, TooLarge
from engine.data.archive import ArchiveError
from engine.data.dataset import Dataset, DatasetError, load_dataset, save_dataset
from engine.data.cifar import load_cifar10
from engine.data.folder import load_image_folder
from engine.data.idx import load_mnist
from engine.data.registry import BUILTIN_INFO, builtin_dataset

log = logging.getLogger("cnnvis")
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")

BUILTINS = BUILTIN_INFO  # name -> shape, classes, description and generator, known before generating


def dataset_json(ds: Dataset, *, builtin: bool) -> dict[str, Any]:
    return {
        "name": ds.name, "builtin": builtin, "ready": True, "description": ds.description,
        "input_shape": list(ds.input_shape), "classes": list(ds.classes), "num_classes": ds.num_classes,
        "counts": ds.counts(), "sizes": {"train": len(ds.y_train), "test": len(ds.y_test)},
    }  # fmt: skip


class DatasetStore:
    def __init__(self, settings: Settings):
        self.root = Path(settings.datasets_dir)
        self.import_root = Path(settings.import_dir)
        self.sizes = dict(settings.builtin_sizes or {})
        self._loaded: dict[str, Dataset] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._mutex = threading.Lock()

    def _path(self, name: str) -> Path:
        return self.root / f"{name}.npz"

    def _lock(self, name: str) -> threading.Lock:
        with self._mutex:
            return self._locks.setdefault(name, threading.Lock())

    def names(self) -> list[str]:
        uploaded = sorted(p.stem for p in self.root.glob("*.npz") if NAME_RE.match(p.stem) and p.stem not in BUILTINS) if self.root.is_dir() else []
        return [*BUILTINS, *uploaded]

    def exists(self, name: str) -> bool:
        return name in BUILTINS or (bool(NAME_RE.match(name)) and self._path(name).is_file())

    def summary(self, name: str) -> dict[str, Any]:
        """What the list shows; built-ins not generated yet are described from their constants."""
        with self._mutex:
            ds = self._loaded.get(name)
        if ds is not None or name not in BUILTINS or self._path(name).is_file():
            return dataset_json(ds or self.get(name), builtin=name in BUILTINS)
        b = BUILTINS[name]
        return {
            "name": name, "builtin": True, "ready": False, "description": b.description, "input_shape": list(b.input_shape),
            "classes": list(b.classes), "num_classes": len(b.classes), "counts": None, "sizes": None,
        }  # fmt: skip

    def get(self, name: str) -> Dataset:
        """The dataset, loading or generating it once (raises NotFound)."""
        if not self.exists(name):
            raise NotFound(f"no dataset named {name!r}; known datasets: {', '.join(self.names())}")
        with self._mutex:
            if name in self._loaded:
                return self._loaded[name]
        with self._lock(name):
            with self._mutex:
                if name in self._loaded:
                    return self._loaded[name]
            ds = self._load_or_make(name)
            with self._mutex:
                self._loaded[name] = ds
            return ds

    def _load_or_make(self, name: str) -> Dataset:
        path = self._path(name)
        if name not in BUILTINS:
            try:
                return load_dataset(path)
            except DatasetError as e:
                raise Invalid(f"dataset {name!r} is unreadable: {e}") from None
        want = self.sizes.get(name)
        if want is None:
            log.info("preparing built-in dataset %s", name)
            return builtin_dataset(name, self.root)
        if path.is_file():  # a test-sized built-in
            try:
                ds = load_dataset(path)
                if (len(ds.y_train), len(ds.y_test)) == tuple(want):
                    return ds
            except DatasetError:
                pass
        ds = BUILTINS[name].make(n_train=want[0], n_test=want[1])
        save_dataset(ds, path)
        return ds

    def delete(self, name: str, used_by: list[str]) -> None:
        """Remove an imported dataset; built-ins and datasets that models train on stay (409)."""
        if not self.exists(name):
            raise NotFound(f"no dataset named {name!r}; known datasets: {', '.join(self.names())}")
        if name in BUILTINS:
            raise Conflict(f"{name!r} is a built-in dataset and cannot be deleted")
        if used_by:
            raise Conflict(f"models {', '.join(used_by)} train on {name!r}; switch them to another dataset or delete them first")
        with self._lock(name):
            with self._mutex:
                self._loaded.pop(name, None)
            self._path(name).unlink(missing_ok=True)

    def warm(self) -> threading.Thread:
        """Generate every built-in in a daemon thread (so the first request does not wait)."""

        def run() -> None:
            for name in BUILTINS:
                try:
                    self.get(name)
                except Exception:  # noqa: BLE001  a failed warm-up only means a slower first request
                    log.exception("could not prepare dataset %s", name)

        thread = threading.Thread(target=run, name="cnnvis-warm-datasets", daemon=True)
        thread.start()
        return thread

    def import_path(self, relative: str) -> Path:
        """Resolve a client-given path inside the import folder; anything that leaves it is refused."""
        root = self.import_root.resolve()
        if "\x00" in relative:
            raise Invalid("path must not contain a NUL byte")
        try:
            target = (root / relative).resolve()
            if not target.is_relative_to(root):
                raise Invalid(f"path must lie inside the server's import folder {root}; put the files there first")
            if not target.exists():
                raise NotFound(f"nothing at {relative!r} in the server's import folder {root}")
        except OSError as e:  # e.g. a name longer than the file system allows
            shown = relative if len(relative) <= 80 else relative[:77] + "..."
            raise Invalid(f"path {shown!r} cannot be used ({e.strerror}); give a shorter path inside {root}") from None
        return target

    def import_files(self, fmt: str, path: str | Path, name: str, *, input_shape: tuple[int, int, int] = (3, 64, 64),
                     test_fraction: float = 0.2, seed: int = 0) -> tuple[Dataset, Any]:
        """Import files the user has as dataset ``name``: ``fmt`` is "mnist", "fashion-mnist" (IDX),
        "cifar10" (binary version) or "folder" (a directory or .zip of class folders; ``input_shape``,
        ``test_fraction`` and ``seed`` apply to it). Returns the dataset and the folder report (None
        for the other formats); raises 409, 413 or 422 with the reason."""
        if not NAME_RE.match(name):
            raise Invalid("name must be 1-40 lowercase letters, digits, '-' or '_', starting with a letter or digit")
        with self._lock(name):
            if self.exists(name):
                raise Conflict(f"a dataset named {name!r} already exists; choose another name")
            report = None
            try:
                if fmt in ("mnist", "fashion-mnist"):
                    ds = load_mnist(path, kind=fmt)
                elif fmt == "cifar10":
                    ds = load_cifar10(path)
                elif fmt == "folder":
                    ds, report = load_image_folder(path, input_shape=input_shape, test_fraction=test_fraction, seed=seed, name=name)
                else:
                    raise Invalid(f"format must be one of mnist, fashion-mnist, cifar10, folder; got {fmt!r}")
            except ArchiveError as e:
                raise (TooLarge if e.kind == "too_large" else Invalid)(str(e)) from None
            except (DatasetError, ValueError, OSError) as e:
                raise Invalid(str(e)) from None
            if len(ds.y_test) == 0:
                raise Invalid("the test split would be empty: give each class at least 2 images (or add a test/ folder)")
            ds = dataclasses.replace(ds, name=name)
            save_dataset(ds, self._path(name))
            with self._mutex:
                self._loaded[name] = ds
        return ds, report
