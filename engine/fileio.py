"""File helpers: atomic writes (a reader sees the old file or the new one, never half of either) and a
header-only check of ``.npz`` archives before ``np.load`` allocates what they declare.

An atomic write's temp file lies beside its target (``os.replace`` needs the same file system) and is
named ``.tmp-<target>.<random>``: a process killed mid-write leaves one behind, which
`remove_stray_temps` finds by that prefix and removes at the next start."""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, BinaryIO

import numpy as np

TMP_PREFIX = ".tmp-"  # every temp file of an atomic write starts with this


@contextlib.contextmanager
def atomic_writer(path: str | Path, *, suffix: str = ".tmp") -> Iterator[BinaryIO]:
    """Yield a binary file in ``path``'s folder; on success fsync it and ``os.replace`` it onto ``path``.

    On any error the temp file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f"{TMP_PREFIX}{path.name}.", suffix=suffix)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; a saved checkpoint or dataset should be readable like any file
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp file in the same folder, fsync, ``os.replace``)."""
    with atomic_writer(path) as f:
        f.write(data)


def remove_stray_temps(root: str | Path) -> int:
    """Delete the ``.tmp-*`` files and folders that writes left anywhere under ``root`` (a killed
    process's); returns how many.

    Call only when no write can be under way (at start-up): a live write's temp file matches too.
    """
    removed = 0
    for folder, dirs, files in os.walk(root):  # symlinked folders are not followed
        for name in [d for d in dirs if d.startswith(TMP_PREFIX)]:
            path = Path(folder, name)
            if path.is_symlink():
                path.unlink()
            else:
                shutil.rmtree(path, ignore_errors=True)
            dirs.remove(name)
            removed += 1
        for name in files:
            if name.startswith(TMP_PREFIX):
                Path(folder, name).unlink(missing_ok=True)
                removed += 1
    return removed


def check_npz(source: str | Path | IO[bytes], *, max_bytes: int) -> None:
    """Refuse an ``.npz`` before loading it, reading only each member's ``.npy`` header.

    Every member must be a ``name.npy`` array whose declared size (shape x item size) fits in the bytes
    the member holds, and all together at most ``max_bytes``; so a header declaring ``shape (10**12,)``
    is refused without allocating anything. A file object is left at its start.

    Raises:
        ValueError: naming the member and what is wrong with it (``zipfile.BadZipFile`` is one).
    """
    total = 0
    with zipfile.ZipFile(source) as zf:
        for info in zf.infolist():
            if not info.filename.endswith(".npy"):
                raise ValueError(f"member {info.filename!r} is not a .npy array")
            with zf.open(info) as f:
                version = np.lib.format.read_magic(f)
                if version not in ((1, 0), (2, 0)):
                    raise ValueError(f"member {info.filename!r}: unsupported .npy version {version}")
                read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
                shape, _, dtype = read(f)
                held = info.file_size - f.tell()
            if any(n < 0 for n in shape):
                raise ValueError(f"member {info.filename!r}: negative dimension in shape {shape}")
            size = math.prod(shape) * dtype.itemsize
            total += size
            if total > max_bytes:
                raise ValueError(f"member {info.filename!r} declares shape {shape} ({size:,} bytes): too large "
                                 f"(at most {max_bytes:,} bytes in all)")
            if size > held:
                raise ValueError(f"member {info.filename!r} declares {size:,} bytes of data but holds {held:,}")
    if hasattr(source, "seek"):
        source.seek(0)
