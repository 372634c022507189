"""Your own images: a folder (or a .zip) with one sub-folder per class.

Layouts::

    cat/a.png  dog/b.jpg                     -> seeded split, stratified by class
    train/cat/a.png  test/cat/c.png  ...     -> the given split

A zip may wrap either layout in one top folder. Hidden files and ``__MACOSX`` are
ignored; files that cannot be decoded are skipped and listed in the report. Size and CPU
budgets are checked before and while decoding (see :func:`load_image_folder`).
"""

from __future__ import annotations

import math
import tempfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .archive import ArchiveError, check_zip, is_ignored, member_parts, read_member
from .dataset import (
    Dataset,
    DatasetError,
    DatasetTooLarge,
    dataset_folder,
    human_bytes,
    open_dataset,
    write_info,
    write_pixels,
)
from .images import ImageError, open_image, to_uint8_chw
from .shape_infer import Chosen, choose_shape, read_header

__all__ = ["FolderReport", "load_image_folder"]

_MAX_FILE_BYTES = 64 * 2**20  # one image file in a folder on disk
_MAX_ZIP_BYTES = 512 * 2**20  # all images read from one zip, actual bytes


@dataclass
class FolderReport:
    """What an import found.

    Attributes:
        counts: class -> {"train": n, "test": n} images used.
        skipped: (relative path, reason) of every file that could not be used.
        layout: "split" when train/ and test/ were given, "folders" when the split was drawn.
    """

    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    layout: str = "folders"
    chosen: Chosen | None = None  # the shape, when any of it was taken from the images' headers


def load_image_folder(
    path: str | Path,
    *,
    input_shape: tuple[int | None, int | None, int | None] = (3, 64, 64),
    test_fraction: float = 0.2,
    seed: int = 0,
    name: str | None = None,
    max_files: int = 20000,
    dest: str | Path | None = None,
    max_bytes: int | None = None,
    max_seconds: float | None = None,
    max_decoded_bytes: int = 64 * 2**20,
) -> tuple[Dataset, FolderReport]:
    """Import a folder or ``.zip`` of class folders as a :class:`Dataset`.

    A None in ``input_shape`` is taken from the images' headers before any decoding
    (`engine.data.shape_infer.choose_shape`: grey if all are grey, the most common size, within
    256 pixels a side and ``max_bytes``); ``report.chosen`` then says what and why.
    Every image is decoded safely, resized to cover (H, W), centre-cropped and converted
    to C channels. Without ``train/`` and ``test/`` folders, each class with n >= 2 images
    puts ``round(test_fraction * n)`` of them (at least 1, at most n - 1) in the test split,
    chosen with ``numpy.random.default_rng(seed)``; a ``train/`` folder alone is split the
    same way. Classes are sorted by name.

    Budgets: before any decoding, (number of image files) x C x H x W must be at most
    ``max_bytes``; each image's header must declare at most ``max_decoded_bytes`` of pixels;
    the import stops once it has used ``max_seconds`` of CPU time (this thread's). Decoded
    images go one at a time to a file, so memory holds one image, not the dataset.

    Returns:
        (dataset with x: (N, C, H, W) uint8, report). With ``dest`` the dataset is written
        there in the folder format and opened memory-mapped; without, it is read into memory.

    Raises:
        DatasetTooLarge: a budget was exceeded (``budget`` "bytes" or "seconds").
        DatasetError (or its subclass ArchiveError for unsafe zips): no class folders, fewer
            than 2 classes, a class without a usable image, more than ``max_files`` files.
    """
    if not 0.0 <= test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in [0, 1), got {test_fraction}")
    path = Path(path)
    budget = _Budget(input_shape, max_bytes, max_seconds, max_decoded_bytes)
    if dest is None:
        with tempfile.TemporaryDirectory(prefix="cnnvis-folder-") as tmp:
            ds, report = load_image_folder(path, input_shape=input_shape, test_fraction=test_fraction, seed=seed,
                                           name=name, max_files=max_files, dest=Path(tmp) / "ds", max_bytes=max_bytes,
                                           max_seconds=max_seconds, max_decoded_bytes=max_decoded_bytes)
            return open_dataset(Path(tmp) / "ds", mmap=False), report
    dest = Path(dest)
    if path.is_dir():
        entries = _scan_folder(path, max_files)
        read = lambda rel, count=True: _read_file(path / rel)
        return _build(entries, read, budget, test_fraction, seed, name or path.name, max_files, dest)
    if path.is_file() and zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as zf:
                infos = {i.filename: i for i in check_zip(zf, max_entries=max_files)}
                left = [_MAX_ZIP_BYTES]

                def read(rel: str, count: bool = True) -> bytes:  # the header pass does not count
                    data = read_member(zf, infos[rel], left[0] if count else _MAX_ZIP_BYTES)
                    left[0] -= len(data) if count else 0
                    return data

                entries = _strip_wrapper([member_parts(n) for n in sorted(infos)])
                return _build(entries, read, budget, test_fraction, seed, name or path.stem, max_files, dest)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError) as exc:
            raise ArchiveError("invalid", f"{path.name} is not a readable zip file ({exc})") from exc
    raise DatasetError(f"{str(path)!r} is neither a folder nor a .zip file")


@dataclass
class _Budget:
    """The limits of one import and its clock (CPU time of the importing thread)."""

    shape: tuple[int | None, int | None, int | None]
    max_bytes: int | None
    max_seconds: float | None
    max_decoded_bytes: int
    start: float = field(default_factory=time.thread_time)

    def check_size(self, n_images: int) -> None:
        need = n_images * math.prod(self.shape)
        if self.max_bytes is not None and need > self.max_bytes:
            c, h, w = self.shape
            need_s, limit_s = human_bytes(need), human_bytes(self.max_bytes)
            if need_s == limit_s:  # rounded alike: give the bytes
                need_s, limit_s = f"{need:,} bytes", f"{self.max_bytes:,} bytes"
            raise DatasetTooLarge("bytes", f"{n_images:,} images of {c}x{h}x{w} need {need_s} as stored; the limit is {limit_s}")

    def check_time(self, done: int, total: int) -> None:
        used = time.thread_time() - self.start
        if self.max_seconds is not None and used > self.max_seconds:
            raise DatasetTooLarge("seconds", f"the import stopped after {used:.0f} s of CPU time, with {done:,} of "
                                             f"{total:,} images decoded; the limit is {self.max_seconds:g} s")


class _Pool:
    """Decoded (C, H, W) uint8 images appended to an unnamed temporary file, then read back by index."""

    def __init__(self, folder: Path, shape: tuple[int, int, int]) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.file = tempfile.TemporaryFile(dir=folder)  # noqa: SIM115  closed by close()
        self.shape, self.size, self.n = shape, math.prod(shape), 0

    def add(self, image: np.ndarray) -> int:
        self.file.write(np.ascontiguousarray(image, dtype=np.uint8).tobytes())
        self.n += 1
        return self.n - 1

    def read(self, index: int) -> np.ndarray:
        self.file.seek(index * self.size)
        return np.frombuffer(self.file.read(self.size), np.uint8).reshape(self.shape)

    def close(self) -> None:
        self.file.close()


def _scan_folder(root: Path, max_files: int) -> list[tuple[list[str], str]]:
    """Files up to 4 levels below root (see :func:`_strip_wrapper`); symlinks are not followed."""
    found: list[list[str]] = []

    def walk(folder: Path, parts: list[str]) -> None:
        for entry in sorted(folder.iterdir(), key=lambda p: p.name):
            if is_ignored(entry.name) or entry.is_symlink():
                continue
            if entry.is_dir() and len(parts) < 3:
                walk(entry, [*parts, entry.name])
            elif entry.is_file():
                found.append([*parts, entry.name])
                if len(found) > max_files:
                    raise DatasetError(f"{str(root)!r} holds more than {max_files} files")

    walk(root, [])
    return _strip_wrapper(found)


def _read_file(path: Path) -> bytes:
    """One image file from disk, refusing files over _MAX_FILE_BYTES (reported as skipped)."""
    try:
        with open(path, "rb") as f:
            data = f.read(_MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise DatasetError(f"unreadable: {exc.strerror or exc}") from exc
    if len(data) > _MAX_FILE_BYTES:
        raise DatasetError(f"too_large: the file is over {_MAX_FILE_BYTES // 2**20} MiB")
    return data


def _strip_wrapper(all_parts: list[list[str]]) -> list[tuple[list[str], str]]:
    """(parts, relative name) per file, without one top folder that wraps everything
    (``photos/cat/a.png`` -> ``cat/a.png``), as when a folder is zipped."""
    entries = [(p, "/".join(p)) for p in all_parts]
    tops = {p[0] for p, _ in entries}
    if (
        len(tops) == 1
        and next(iter(tops)).lower() not in ("train", "test")
        and all(len(p) > 1 for p, _ in entries)
        and any(len(p) > 2 for p, _ in entries)
    ):
        entries = [(p[1:], rel) for p, rel in entries]
    return entries


def _build(
    entries: list[tuple[list[str], str]],
    read: Callable[..., bytes],
    budget: _Budget,
    test_fraction: float,
    seed: int,
    name: str,
    max_files: int,
    dest: Path,
) -> tuple[Dataset, FolderReport]:
    """Group files into classes and splits, check the size budget, decode them and write the dataset to ``dest``."""
    report = FolderReport()
    tops = {p[0].lower() for p, _ in entries if len(p) > 1}
    given = "train" in tops
    report.layout = "split" if given and "test" in tops else "folders"
    files: dict[str, dict[str, list[str]]] = {}  # class -> split -> names (relative)
    for parts, rel in entries:
        if given and len(parts) == 3 and parts[0].lower() in ("train", "test"):
            split, cls = parts[0].lower(), parts[1]
        elif not given and len(parts) == 2:
            split, cls = "train", parts[0]
        else:
            report.skipped.append((rel, "not inside a class folder"))
            continue
        files.setdefault(cls, {"train": [], "test": []})[split].append(rel)
    if len(files) > max_files:
        raise DatasetError(f"too many class folders ({len(files)})")
    if len(files) < 2:
        found = f"only {sorted(files)}" if files else "none"
        raise DatasetError(
            f"need at least 2 class folders (cat/, dog/, ... or train/cat/, test/cat/, ...); found {found}"
        )
    total = sum(len(v) for f in files.values() for v in f.values())
    if None in budget.shape:
        report.chosen = _choose(files, read, budget, total)
        budget.shape = report.chosen.shape
    budget.check_size(total)
    classes = sorted(files)
    picked: dict[str, list[int]] = {"train": [], "test": []}  # pool indices
    y: dict[str, list[int]] = {"train": [], "test": []}
    rng = np.random.default_rng(seed)
    pool = _Pool(dest.parent, budget.shape)
    try:
        for label, cls in enumerate(classes):
            decoded = {s: _decode_all(sorted(files[cls][s]), read, pool, budget, total, report) for s in ("train", "test")}
            if not decoded["train"]:
                where = "train/" + cls if given else cls
                why = next((f" ({f}: {r})" for f, r in reversed(report.skipped) if f"/{where}/" in f"/{f}"), "")
                raise DatasetError(f"class folder {where!r} has no usable image{why}")
            if report.layout == "folders":
                decoded = _split(decoded["train"], test_fraction, rng)
            for s in ("train", "test"):
                picked[s].extend(decoded[s])
                y[s].extend([label] * len(decoded[s]))
            report.counts[cls] = {s: len(decoded[s]) for s in ("train", "test")}
        description = f"Imported from {name}: {sum(len(v) for v in y.values())} images in {len(classes)} classes."
        with dataset_folder(dest) as tmp:
            for s in ("train", "test"):
                write_pixels(tmp / f"x_{s}.npy", (len(picked[s]), *budget.shape), (pool.read(i) for i in picked[s]))
            write_info(tmp, name, classes, description, budget.shape, {s: np.array(y[s], np.int64) for s in y})
    finally:
        pool.close()
    return open_dataset(dest), report


def _choose(files: dict[str, dict[str, list[str]]], read: Callable[..., bytes], budget: _Budget, total: int) -> Chosen:
    """The missing parts of ``budget.shape`` from every image's header (files are read, not decoded)."""
    headers = []
    for rel in sorted(r for f in files.values() for v in f.values() for r in v):
        budget.check_time(0, total)
        try:
            hd = read_header(read(rel, False))
        except DatasetError:
            continue  # unreadable: the decoding pass reports it
        if hd is not None:
            headers.append(hd)
    c, h, w = budget.shape
    return choose_shape(headers, channels=c, height=h, width=w, n_images=total, max_bytes=budget.max_bytes)


def _decode_all(
    names: list[str], read: Callable[[str], bytes], pool: _Pool, budget: _Budget, total: int, report: FolderReport
) -> list[int]:
    """Pool indices of the decodable files, decoded to (C, H, W) uint8; the others go to ``report.skipped``."""
    out = []
    for rel in names:
        budget.check_time(pool.n, total)
        try:
            img = open_image(read(rel), max_decoded_bytes=budget.max_decoded_bytes, fit=(budget.shape[2], budget.shape[1]))
            out.append(pool.add(to_uint8_chw(img, budget.shape)))
        except ImageError as exc:
            report.skipped.append((rel, f"{exc.kind}: {exc.message}"))
        except ArchiveError:
            raise
        except DatasetError as exc:
            report.skipped.append((rel, str(exc)))
    return out


def _split(images: list[int], test_fraction: float, rng: np.random.Generator) -> dict[str, list[int]]:
    """Seeded split of one class: round(f * n) test images, at least 1 and at most n - 1 (n >= 2)."""
    n = len(images)
    n_test = int(np.floor(test_fraction * n + 0.5))
    if n >= 2 and test_fraction > 0:
        n_test = min(max(n_test, 1), n - 1)
    else:
        n_test = 0
    order = rng.permutation(n)
    test = set(order[:n_test].tolist())
    return {
        "train": [images[i] for i in range(n) if i not in test],
        "test": [images[i] for i in range(n) if i in test],
    }
