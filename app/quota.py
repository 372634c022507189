"""Quotas on the data directory: how many models, how many bytes under DATA_DIR (0 turns one off).

One `Quota` lives on ``state.quota``. Before a write that adds to the data directory, its owner calls
``check_bytes(n)``; before a new model, ``check_models(count)``. Either raises `QuotaExceeded` (507)
naming the limit, the usage and the setting that raises it.

The byte usage is a walk of DATA_DIR (a few hundred files: milliseconds), cached for ``ttl_s``; a
check that passes adds its bytes to the cached figure, so writes in quick succession add up before
the next walk. Overwrites (live training saving a model again) are never checked: losing training
to a full quota is worse than going a little over it.

Every file counts, the models' history databases among them (``history.sqlite`` and its ``-wal``):
a history is kept whole (`app.stores.history`), so it grows with training, and what bounds it is
this quota (a full data directory refuses new models, images and datasets) and the disk.

With workspaces on (`app.workspaces`), a student's request is measured against its own workspace:
``max_models``, ``max_images``, ``max_datasets`` and ``max_data_bytes`` then bound each workspace,
its bytes being the sum of what the stores report it owns (`track`) plus its uploaded images,
measured afresh at each check. The teacher, and a server without workspaces, count the whole directory.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from app.config import Settings
from app.errors import QuotaExceeded
from app.workspaces import current

GIB, MIB = 1024**3, 1024**2


def folder_bytes(root: str | Path) -> int:
    """The bytes of every file under ``root`` (symlinks neither followed nor counted; vanishing files skipped)."""
    total, stack = 0, [str(root)]
    while stack:
        try:
            with os.scandir(stack.pop()) as entries:
                for entry in entries:
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            stack.append(entry.path)
                        elif entry.is_file(follow_symlinks=False):
                            total += entry.stat(follow_symlinks=False).st_size
                    except OSError:
                        continue
        except OSError:
            continue
    return total


def _size(n: int) -> str:
    return f"{n / GIB:.2f} GiB" if n >= GIB else f"{n / MIB:.1f} MiB"


class Quota:
    """The data directory's limits, checked before writes; thread-safe."""

    def __init__(self, settings: Settings, ttl_s: float = 5.0, clock: Callable[[], float] = time.monotonic):
        self.root = Path(settings.data_dir)
        self.max_models, self.max_bytes = settings.max_models, settings.max_data_bytes
        self.ttl_s, self._clock = ttl_s, clock
        self._mutex = threading.Lock()
        self._used: int | None = None
        self._measured = 0.0
        self._owned: list[Callable[[str], int]] = []  # each store's bytes owned by a workspace

    def track(self, owned_bytes: Callable[[str], int]) -> None:
        """Count ``owned_bytes(workspace)`` in that workspace's usage (a store registers itself)."""
        self._owned.append(owned_bytes)

    def workspace_bytes(self, owner: str) -> int:
        """Bytes the workspace ``owner`` holds: what the stores report, plus its uploaded images."""
        from app.stores.images import owned_image_bytes  # the stores import this module

        return sum(f(owner) for f in self._owned) + owned_image_bytes(self.root / "images", owner)

    def used_bytes(self) -> int:
        """Bytes under DATA_DIR: the cached figure, measured again when older than ``ttl_s``."""
        with self._mutex:
            if self._used is None or self._clock() - self._measured > self.ttl_s:
                self._used, self._measured = folder_bytes(self.root), self._clock()
            return self._used

    def check_bytes(self, adding: int) -> None:
        """Raise `QuotaExceeded` if writing ``adding`` more bytes would take DATA_DIR past
        ``max_data_bytes``; otherwise count them as written (until the next measurement)."""
        if self.max_bytes <= 0:
            return
        viewer = current()
        if viewer.scoped:
            used = self.workspace_bytes(viewer.workspace)
            if used + adding > self.max_bytes:
                raise QuotaExceeded(
                    f"your workspace is full: it holds {_size(used)} and this would add {_size(adding)}, beyond its "
                    f"limit of {_size(self.max_bytes)} (max_data_bytes, per workspace; CNNVIS_MAX_DATA_BYTES); "
                    "delete models, images or datasets to make room",
                    limit=self.max_bytes, used=used, setting="CNNVIS_MAX_DATA_BYTES",
                )  # fmt: skip
            return
        used = self.used_bytes()
        with self._mutex:
            if used + adding > self.max_bytes:
                raise QuotaExceeded(
                    f"the data directory is full: it holds {_size(used)} and this would add {_size(adding)}, beyond its "
                    f"limit of {_size(self.max_bytes)} (max_data_bytes; raise CNNVIS_MAX_DATA_BYTES, 0 for no limit); "
                    "delete models, images or datasets to make room",
                    limit=self.max_bytes, used=used, setting="CNNVIS_MAX_DATA_BYTES",
                )  # fmt: skip
            if self._used is not None:
                self._used += adding

    def check_models(self, count: int, adding: int = 1) -> None:
        """Raise `QuotaExceeded` if ``count`` saved models plus ``adding`` new ones exceed ``max_models``."""
        if self.max_models > 0 and count + adding > self.max_models:
            raise QuotaExceeded(
                f"there are {count} models{' in your workspace' if current().scoped else ''}, the limit (max_models; raise CNNVIS_MAX_MODELS, 0 for no limit) is "
                f"{self.max_models}; delete a model to make room",
                limit=self.max_models, used=count, setting="CNNVIS_MAX_MODELS",
            )  # fmt: skip

    def forget(self) -> None:
        """Measure again at the next check (after deleting files)."""
        with self._mutex:
            self._used = None
