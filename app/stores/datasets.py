"""Datasets: the built-in generators (made on first use, cached on disk) and imported ones.

Each lives in ``DATA_DIR/datasets/{name}/``: ``dataset.json`` (what a listing shows) beside raw ``.npy``
arrays, images as uint8 opened memory-mapped, so listing datasets or building the page reads no pixel
and an opened dataset costs memory only for the pages a batch touches. A ``{name}.npz`` from an older
version is moved to that layout the first time it is listed or used (and then removed).

Built-ins are listed before they exist (their shape and classes are known); the first request that
needs one generates it, once, under a lock per name. Imports are budgeted before any decoding (images
x C x H x W against ``max_dataset_bytes``), in CPU time (``max_import_seconds``) and in number
(``max_datasets``).

Workspaces (`app.workspaces`): an import's ``dataset.json`` names its ``owner``; other workspaces
neither list nor open it (NotFound), and ``max_datasets`` counts the importer's own. Built-ins are
everyone's. Names stay one namespace: importing under a name another workspace took is 409. A request
carrying a model's share token (`Viewer.share`) may also read that model's dataset (`summary`, `get`:
its facts, samples and forward passes by sample), never list, delete or build models on it (`exists`).
"""

from __future__ import annotations

import dataclasses
import logging
import re
import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from app.config import Settings
from app.errors import Conflict, Invalid, NotFound, QuotaExceeded, TooLarge
from app.quota import Quota, folder_bytes
from app.workspaces import EVERYONE, Viewer, current
from engine.data.archive import ArchiveError
from engine.data.cifar import load_cifar10
from engine.data.dataset import (
    INFO_FILE,
    Dataset,
    DatasetError,
    DatasetTooLarge,
    dataset_info,
    human_bytes,
    load_dataset,
    open_dataset,
    store_dataset,
)
from engine.data.folder import load_image_folder
from engine.data.idx import load_mnist
from engine.data.registry import BUILTIN_INFO, builtin_dataset
from engine.jsonio import read_json, write_json

log = logging.getLogger("cnnvis")
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")

BUILTINS = BUILTIN_INFO  # name -> shape, classes, description and generator, known before generating
_ADVICE = {
    "bytes": "(CNNVIS_MAX_DATASET_BYTES): choose a smaller size or fewer images",
    "seconds": "(CNNVIS_MAX_IMPORT_SECONDS): import fewer or smaller images",
}


def info_json(info: dict[str, Any], *, builtin: bool) -> dict[str, Any]:
    """What the API shows of a stored dataset, from its ``dataset.json`` alone."""
    return {
        "name": info["name"], "builtin": builtin, "ready": True, "description": info["description"],
        "input_shape": list(info["input_shape"]), "classes": list(info["classes"]), "num_classes": len(info["classes"]),
        "counts": info["counts"], "sizes": info["sizes"],
    }  # fmt: skip


class DatasetStore:
    def __init__(self, settings: Settings, quota: Quota | None = None, shared: Callable[[str], str | None] | None = None):
        self.quota = quota  # the data directory's byte quota, checked with what an import stored
        self.shared = shared  # a share hash -> the dataset of the model it opens (`ModelStore.shared_dataset`)
        self.root = Path(settings.datasets_dir)
        self.import_root = Path(settings.import_dir)
        self.sizes = dict(settings.builtin_sizes or {})
        self.settings = settings
        self._loaded: dict[str, Dataset] = {}  # memory-mapped: cheap to keep
        self._info: dict[str, dict[str, Any]] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._mutex = threading.Lock()
        if quota is not None:
            quota.track(self.owned_bytes)

    def _dir(self, name: str) -> Path:
        return self.root / name

    def _legacy(self, name: str) -> Path:
        return self.root / f"{name}.npz"

    def _lock(self, name: str) -> threading.Lock:
        with self._mutex:
            return self._locks.setdefault(name, threading.Lock())

    def imported(self, viewer: Viewer | None = None) -> list[str]:
        """Names of the imported datasets (not the built-ins) ``viewer`` (default: the request's) may see, sorted."""
        if not self.root.is_dir():
            return []
        viewer = viewer or current()
        found = {p.name for p in self.root.iterdir() if p.is_dir() and (p / INFO_FILE).is_file()}
        found |= {p.stem for p in self.root.glob("*.npz")}
        return sorted(n for n in found if NAME_RE.match(n) and n not in BUILTINS and self._visible(n, viewer))

    def owner(self, name: str) -> str | None:
        """The workspace that imported ``name`` (None: a built-in, or imported without workspaces)."""
        info = read_json(self._dir(name) / INFO_FILE) if name not in BUILTINS else None
        return info.get("owner") if isinstance(info, dict) and isinstance(info.get("owner"), str) else None

    def _visible(self, name: str, viewer: Viewer) -> bool:
        return name in BUILTINS or viewer.teacher or viewer.owns(self.owner(name))

    def readable(self, name: str, viewer: Viewer | None = None) -> bool:
        """Whether ``viewer`` (default: the request's) may read ``name``: a dataset it may see (`exists`), or
        the dataset of the model whose share token it carries."""
        viewer = viewer or current()
        if self.exists(name, viewer):
            return True
        return (viewer.share is not None and self.shared is not None and self.shared(viewer.share) == name
                and self.exists(name, EVERYONE))

    def owned_bytes(self, owner: str) -> int:
        """The bytes of ``owner``'s imported datasets (for its quota)."""
        return sum(folder_bytes(self._dir(n)) for n in self.imported(Viewer(owner)))

    def names(self) -> list[str]:
        return [*BUILTINS, *self.imported()]

    def exists(self, name: str, viewer: Viewer | None = None) -> bool:
        """Whether ``name`` is a dataset ``viewer`` (default: the request's) may see."""
        return name in BUILTINS or (
            bool(NAME_RE.match(name)) and ((self._dir(name) / INFO_FILE).is_file() or self._legacy(name).is_file())
            and self._visible(name, viewer or current())
        )

    def summary(self, name: str) -> dict[str, Any]:
        """What the list shows, from ``dataset.json`` (no pixel is read); built-ins not generated yet are
        described from their constants. Raises NotFound, or Invalid for an unreadable import."""
        if not self.readable(name):
            raise NotFound(f"no dataset named {name!r}; known datasets: {', '.join(self.names())}")
        info = self._read_info(name)
        if info is not None:
            return info_json(info, builtin=name in BUILTINS)
        b = BUILTINS[name]
        return {
            "name": name, "builtin": True, "ready": False, "description": b.description, "input_shape": list(b.input_shape),
            "classes": list(b.classes), "num_classes": len(b.classes), "counts": None, "sizes": None,
        }  # fmt: skip

    def listing(self) -> list[dict[str, Any]]:
        """Every dataset's summary (no pixel is read); an unreadable import is listed as not ready, with the
        reason as its description, so one damaged dataset does not break the list or the page."""
        out = []
        for name in self.names():
            try:
                out.append(self.summary(name))
            except (Invalid, NotFound) as e:
                out.append({"name": name, "builtin": False, "ready": False, "description": e.detail, "input_shape": None,
                            "classes": [], "num_classes": 0, "counts": None, "sizes": None})  # fmt: skip
        return out

    def _read_info(self, name: str) -> dict[str, Any] | None:
        """The dataset's description, or None for a built-in not generated yet (or generated at another size)."""
        with self._mutex:
            if name in self._info:
                return self._info[name]
        if name not in BUILTINS and not (self._dir(name) / INFO_FILE).is_file():
            self.get(name)  # an older .npz: moved to the folder layout once
        try:
            info = dataset_info(self._dir(name))
        except DatasetError as e:
            if name in BUILTINS:
                return None
            raise Invalid(f"dataset {name!r} is unreadable: {e}") from None
        if name in BUILTINS and not self._current(name, info):
            return None
        with self._mutex:
            self._info[name] = info
        return info

    def _current(self, name: str, info: dict[str, Any]) -> bool:
        """Whether a stored built-in is the one this server wants (generator version, test sizes)."""
        want = self.sizes.get(name)
        if want is None:
            return info["description"] == BUILTINS[name].description
        return (info["sizes"]["train"], info["sizes"]["test"]) == tuple(want)

    def get(self, name: str) -> Dataset:
        """The dataset, opened (memory-mapped) or generated once (raises NotFound)."""
        if not self.readable(name):
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
                self._info.pop(name, None)
            return ds

    def folder(self, name: str) -> Path:
        """The folder a worker process opens the dataset from (made first if it is a built-in not yet on disk)."""
        self.get(name)
        return self._dir(name)

    def _load_or_make(self, name: str) -> Dataset:
        folder, legacy = self._dir(name), self._legacy(name)
        want = self.sizes.get(name)
        if name in BUILTINS and want is None:
            log.info("preparing built-in dataset %s", name)
            return builtin_dataset(name, self.root)
        try:
            if (folder / INFO_FILE).is_file() and (name not in BUILTINS or self._current(name, dataset_info(folder))):
                return open_dataset(folder)
            if legacy.is_file():
                ds = load_dataset(legacy)
                if name not in BUILTINS or (len(ds.y_train), len(ds.y_test)) == tuple(want):
                    log.info("moving dataset %s to the memory-mapped folder layout", name)
                    store_dataset(ds, folder)
                    legacy.unlink()
                    return open_dataset(folder)
        except DatasetError as e:
            if name not in BUILTINS:
                raise Invalid(f"dataset {name!r} is unreadable: {e}") from None
        store_dataset(BUILTINS[name].make(n_train=want[0], n_test=want[1]), folder)  # a test-sized built-in
        legacy.unlink(missing_ok=True)
        return open_dataset(folder)

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
                self._info.pop(name, None)
            shutil.rmtree(self._dir(name), ignore_errors=True)
            self._legacy(name).unlink(missing_ok=True)

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

    def check_quota(self) -> None:
        """Raise `QuotaExceeded` (507) when ``max_datasets`` imported datasets exist already."""
        viewer = current()
        limit, count = self.settings.max_datasets, len(self.imported(viewer if viewer.scoped else EVERYONE))
        if limit > 0 and count >= limit:
            raise QuotaExceeded(
                f"there are {count} imported datasets, the limit (max_datasets; raise CNNVIS_MAX_DATASETS, 0 for no "
                f"limit) is {limit}; delete a dataset to make room",
                limit=limit, used=count, setting="CNNVIS_MAX_DATASETS",
            )  # fmt: skip

    def import_files(self, fmt: str, path: str | Path, name: str, *,
                     input_shape: tuple[int | None, int | None, int | None] = (3, 64, 64),
                     test_fraction: float = 0.2, seed: int = 0) -> tuple[Dataset, Any]:
        """Import files the user has as dataset ``name``: ``fmt`` is "mnist", "fashion-mnist" (IDX),
        "cifar10" (binary version) or "folder" (a directory or .zip of class folders; ``input_shape``,
        whose None parts are taken from the images' headers (``report.chosen``), ``test_fraction``
        and ``seed`` apply to it). Returns the dataset and the folder report (None
        for the other formats); raises 409, 413, 422 or 507 with the reason."""
        if not NAME_RE.match(name):
            raise Invalid("name must be 1-40 lowercase letters, digits, '-' or '_', starting with a letter or digit")
        s = self.settings
        with self._lock(name):
            if self.exists(name, EVERYONE):  # any workspace's: one folder per name
                raise Conflict(f"a dataset named {name!r} already exists; choose another name")
            self.check_quota()
            report, folder = None, self._dir(name)
            try:
                if fmt == "folder":
                    ds, report = load_image_folder(path, input_shape=input_shape, test_fraction=test_fraction, seed=seed,
                                                   name=name, dest=folder, max_bytes=s.max_dataset_bytes,
                                                   max_seconds=s.max_import_seconds, max_decoded_bytes=s.max_decoded_bytes)
                else:
                    ds = self._read_format(fmt, path, name)
                    store_dataset(ds, folder)
                    ds = open_dataset(folder)
            except DatasetTooLarge as e:
                raise TooLarge(f"{e} {_ADVICE[e.budget]}", budget=e.budget) from None
            except ArchiveError as e:
                raise (TooLarge if e.kind == "too_large" else Invalid)(str(e)) from None
            except (DatasetError, ValueError, OSError) as e:
                raise Invalid(str(e)) from None
            if len(ds.y_test) == 0:
                shutil.rmtree(folder, ignore_errors=True)
                raise Invalid("the test split would be empty: give each class at least 2 images (or add a test/ folder)")
            if self.quota is not None:
                try:
                    self.quota.check_bytes(folder_bytes(folder))
                except QuotaExceeded:
                    shutil.rmtree(folder, ignore_errors=True)
                    raise
            self._own(folder)
            with self._mutex:
                self._loaded[name] = ds
        return ds, report

    @staticmethod
    def _own(folder: Path) -> None:
        """Name the importing workspace in ``dataset.json`` (nothing with workspaces off)."""
        owner = current().workspace
        info = read_json(folder / INFO_FILE)
        if owner is not None and isinstance(info, dict):
            write_json(folder / INFO_FILE, info | {"owner": owner})

    def _read_format(self, fmt: str, path: str | Path, name: str) -> Dataset:
        """An MNIST-like or CIFAR-10 dataset read into memory (their files are bounded), checked against the budget."""
        limit = self.settings.max_dataset_bytes
        if fmt in ("mnist", "fashion-mnist"):
            ds = load_mnist(path, kind=fmt, max_bytes=limit)
        elif fmt == "cifar10":
            ds = load_cifar10(path)
        else:
            raise Invalid(f"format must be one of mnist, fashion-mnist, cifar10, folder; got {fmt!r}")
        need = ds.x_train.nbytes + ds.x_test.nbytes
        if need > limit:
            c, h, w = ds.input_shape
            raise DatasetTooLarge("bytes", f"{len(ds.y_train) + len(ds.y_test):,} images of {c}x{h}x{w} need "
                                           f"{human_bytes(need)} as stored; the limit is {human_bytes(limit)}")
        return dataclasses.replace(ds, name=name)
