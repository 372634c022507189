"""Models on disk and in memory, one lock each.

Layout (every file written atomically: temp file, fsync, ``os.replace``; the history in SQLite transactions)::

    DATA_DIR/models/{id}/checkpoint.npz   engine checkpoint; meta holds name, dataset, hyperparameters,
                                          seed, examples_seen, epoch, created
    DATA_DIR/models/{id}/history.sqlite   steps, evaluations and events, appended (`app.stores.history`);
                                          a step: step, loss, accuracy, learning_rate, epoch, time, and
                                          per layer index (absent = not recorded, as in older files)
                                          grad_norm, update_ratio, dead_relu ({"0": 0.12, ...})
    DATA_DIR/models/{id}/optimizer.npz    optimizer buffers, plus "__step__" to match the checkpoint

A new model's folder is written under a temporary name (``.new-{id}``) and renamed into place, so a
crash never leaves half a model; a deleted one is renamed to ``.deleted-*`` first. Leftovers of
either are removed on load. A new model must fit the quotas (`app.quota.Quota`); saving one
again never checks them (live training must not fail for want of space it already holds). A save
commits the history first (what was appended since the last save), then the optimizer state, then the
checkpoint; on load, history past the checkpoint's step is dropped and optimizer state from another
step is ignored, so a server killed between two writes still restarts cleanly. A folder from an older
version, with a ``history.json``, is migrated to ``history.sqlite`` on load.
Shipped models (``*.npz`` in the pretrained folder) are listed read-only under their file stem, with
the history of the training that made them from a companion ``{stem}.history.json`` when there is one
(kept in memory).

Workspaces (`app.workspaces`): a saved model's meta names its ``owner`` (the workspace that made,
copied or imported it) and, once shared by link, the ``share`` hash of its token. `list`, `get` and
`count` answer for the request's viewer: another workspace's model is missing (NotFound), except to
the teacher, and to a request carrying its share token, which gets a read-only view of it (and may read
its dataset: `shared_dataset`). Shipped
models are everyone's. With workspaces off, the viewer sees everything and no owner is written.
"""

from __future__ import annotations

import dataclasses
import hmac
import io
import logging
import os
import re
import secrets
import shutil
import sqlite3
import threading
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from app.concurrency import FairLock
from app.config import Settings
from app.errors import NotFound
from app.quota import Quota, folder_bytes
from app.workspaces import Viewer, current, valid_owner
from app.stores.history import DB_NAME, History, read_json_history
from engine.checkpoint import (
    CheckpointError,
    checkpoint_bytes,
    load_checkpoint,
)
from engine.fileio import atomic_write
from engine.model import Model
from engine.train import Hyperparameters

log = logging.getLogger("cnnvis")
ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


@dataclass(eq=False)
class ModelRecord:
    """One model and everything the server knows about it. Mutate only while holding ``lock``."""

    id: str
    name: str
    model: Model
    classes: list[str]
    dataset: str | None
    read_only: bool = False
    hp: Hyperparameters = field(default_factory=Hyperparameters)
    seed: int = 0
    step: int = 0
    examples_seen: int = 0
    epoch: int = 0
    created: float = field(default_factory=time.time)
    history: History = field(default_factory=History)  # a dict assigned replaces the whole history (History.reset_to)
    copied_from: str | None = None  # the id of the model this one was copied from (kept in the checkpoint's meta)
    owner: str | None = None  # the workspace that made it (None: shipped, or workspaces off)
    share: str | None = None  # the hash of its share-link token (app.workspaces.share_hash), once shared
    optimizer_state: dict[str, np.ndarray] | None = None  # from disk, until a trainer takes it
    trainer: Any = None  # engine.train.Trainer once the model has trained in this process
    lock: FairLock = field(default_factory=FairLock)

    def __setattr__(self, name: str, value: Any) -> None:
        # ``rec.history = {"steps": [], ...}`` (a reset) replaces the stored history at the next save
        if name == "history" and not isinstance(value, History):
            current = self.__dict__.get("history")
            value = current.reset_to(value) if current is not None else History.from_dict(value)
        object.__setattr__(self, name, value)

    def diverged(self) -> bool:
        """True when the last step's loss was NaN or infinite (the weights are no longer usable)."""
        last = self.history.last_step
        return last is not None and last.get("loss") is None

    def meta(self) -> dict[str, Any]:
        return {
            "name": self.name, "dataset": self.dataset, "hyperparameters": self.hp.to_dict(), "seed": self.seed,
            "examples_seen": self.examples_seen, "epoch": self.epoch, "created": self.created,
        } | ({"copied_from": self.copied_from} if self.copied_from else {}) | self.access()  # fmt: skip

    def access(self) -> dict[str, str]:
        """The workspace fields of the meta (none with workspaces off): kept on disk, left out of downloads."""
        return {k: v for k, v in (("owner", self.owner), ("share", self.share)) if v}

    def shared_view(self) -> ModelRecord:
        """The same model, read-only (for a share link): same weights, lock and history, never saved."""
        return dataclasses.replace(self, read_only=True)


def _hyperparameters(meta: dict[str, Any]) -> Hyperparameters:
    try:
        return Hyperparameters(**meta.get("hyperparameters", {}))
    except (TypeError, ValueError):
        return Hyperparameters()


def _int(meta: dict[str, Any], key: str) -> int:
    value = meta.get(key, 0)
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def record_from_checkpoint(rid: str, source: Path | bytes, *, read_only: bool, **limits: int) -> ModelRecord:
    """Build a record from a checkpoint file or bytes (raises `CheckpointError`); ``limits`` go to `load_checkpoint`."""
    ckpt = load_checkpoint(source, **limits)
    meta = ckpt.meta
    dataset = meta.get("dataset")
    created = meta.get("created")
    source = meta.get("copied_from")
    share = meta.get("share")
    return ModelRecord(
        id=rid,
        name=str(meta.get("name") or rid)[:100],
        model=ckpt.model,
        classes=ckpt.classes or [str(i) for i in range(ckpt.model.output_shape[0])],
        dataset=dataset if isinstance(dataset, str) else None,
        read_only=read_only,
        hp=_hyperparameters(meta),
        seed=_int(meta, "seed"),
        step=ckpt.step,
        examples_seen=_int(meta, "examples_seen"),
        epoch=_int(meta, "epoch"),
        created=created if isinstance(created, (int, float)) else time.time(),
        copied_from=source if isinstance(source, str) and ID_RE.match(source) else None,
        owner=None if read_only else valid_owner(meta.get("owner")),
        share=share if isinstance(share, str) and re.fullmatch(r"[0-9a-f]{32}", share) else None,
    )


class ModelStore:
    """Every model, keyed by id. Thread-safe; a record's own fields are guarded by its lock."""

    def __init__(self, settings: Settings, quota: Quota | None = None):
        self.root = Path(settings.models_dir)
        self.pretrained = Path(settings.pretrained_dir)
        self.quota = quota
        self._records: dict[str, ModelRecord] = {}
        self._adding: dict[str, str | None] = {}  # ids being written, with their owner: they count against max_models already
        self._mutex = threading.Lock()
        if quota is not None:
            quota.track(self.owned_bytes)

    # ---- loading ---------------------------------------------------------------------------
    def load(self) -> None:
        """Read the shipped models, then every saved one; a broken folder is logged and skipped."""
        self.root.mkdir(parents=True, exist_ok=True)
        records: dict[str, ModelRecord] = {}
        for path in sorted(self.pretrained.glob("*.npz")) if self.pretrained.is_dir() else []:
            if not ID_RE.match(path.stem):
                continue
            try:
                records[path.stem] = rec = record_from_checkpoint(path.stem, path, read_only=True)
                rec.history = History.from_dict(read_json_history(path.with_suffix(".history.json"), rec.step))
            except CheckpointError as e:
                log.warning("skipping shipped model %s: %s", path.name, e)
        for folder in sorted(self.root.iterdir()):
            if folder.name.startswith((".new-", ".deleted-")) and folder.is_dir() and not folder.is_symlink():
                shutil.rmtree(folder, ignore_errors=True)  # a creation or deletion a kill interrupted
                continue
            if not ID_RE.match(folder.name) or folder.name in records or not folder.is_dir():
                continue
            try:
                records[folder.name] = self._load_folder(folder)
            except (CheckpointError, sqlite3.Error, OSError) as e:
                log.warning("skipping model %s: %s", folder.name, e)
        with self._mutex:
            self._records = records

    def _load_folder(self, folder: Path) -> ModelRecord:
        ckpt = folder / "checkpoint.npz"
        if not ckpt.is_file():
            raise CheckpointError("no checkpoint.npz")
        rec = record_from_checkpoint(folder.name, ckpt, read_only=False)
        rec.history = History.open(folder / DB_NAME, rec.step)
        rec.optimizer_state = _read_optimizer(folder / "optimizer.npz", rec.step)
        return rec

    # ---- lookup ----------------------------------------------------------------------------
    @staticmethod
    def visible(rec: ModelRecord, viewer: Viewer) -> bool:
        """Shipped models to everyone; saved ones to their workspace and the teacher."""
        return (rec.read_only and rec.owner is None) or viewer.owns(rec.owner)

    def shared_dataset(self, share: str) -> str | None:
        """The dataset of the saved model whose share hash is ``share`` (`Viewer.share`), or None: what a share
        link may also read (`DatasetStore`)."""
        with self._mutex:
            records = [r for r in self._records.values() if r.share and not r.read_only]
        return next((r.dataset for r in records if hmac.compare_digest(r.share, share)), None)

    def list(self, viewer: Viewer | None = None) -> list[ModelRecord]:
        """The models ``viewer`` (default: the request's) may see, shipped ones first."""
        viewer = viewer or current()
        with self._mutex:
            records = [r for r in self._records.values() if self.visible(r, viewer)]
        return sorted(records, key=lambda r: (not r.read_only, r.created, r.id))

    def count(self, viewer: Viewer | None = None) -> int:
        """How many saved (not shipped) models there are, counting those being added: the viewer's own
        when workspaces are on (a teacher's are those made with the teacher token)."""
        viewer = viewer or current()
        with self._mutex:
            return self._count_locked(viewer.workspace)

    def _count_locked(self, owner: str | None) -> int:
        if owner is None:
            return sum(not r.read_only for r in self._records.values()) + len(self._adding)
        return (sum(not r.read_only and r.owner == owner for r in self._records.values())
                + sum(o == owner for o in self._adding.values()))

    def owned_bytes(self, owner: str) -> int:
        """The bytes of ``owner``'s model folders (for its quota)."""
        with self._mutex:
            ids = [r.id for r in self._records.values() if r.owner == owner and not r.read_only]
        return sum(folder_bytes(self.root / rid) for rid in ids)

    def get(self, model_id: str, viewer: Viewer | None = None, *, shared: bool = True) -> ModelRecord:
        """The model, as ``viewer`` (default: the request's) may see it: NotFound when it may not, exactly
        as for a missing id; a read-only view when only its share token (and ``shared``) lets it in."""
        viewer = viewer or current()
        with self._mutex:
            rec = self._records.get(model_id) if ID_RE.match(model_id) else None
        if rec is not None and not self.visible(rec, viewer):
            ok = shared and viewer.share and rec.share and hmac.compare_digest(viewer.share, rec.share)
            rec = rec.shared_view() if ok else None
        if rec is None:
            raise NotFound(f"no model with id {model_id!r}; GET /api/v1/models lists them")
        return rec

    # ---- writing ---------------------------------------------------------------------------
    def new_id(self) -> str:
        while True:
            rid = secrets.token_hex(6)
            if rid not in self._records:
                return rid

    def add(self, rec: ModelRecord) -> ModelRecord:
        """Write a new model's folder under a temporary name, rename it into place, then list it;
        `QuotaExceeded` (507) when it would be one model too many or its files too many bytes."""
        rec.owner, rec.share = current().workspace, None  # the maker's workspace (None with workspaces off)
        files = self.snapshot(rec)
        with self._mutex:
            if self.quota is not None:
                self.quota.check_models(self._count_locked(rec.owner))
            self._adding[rec.id] = rec.owner
        tmp = self.root / f".new-{rec.id}"
        try:
            if self.quota is not None:
                self.quota.check_bytes(sum(len(b) for b in files.values()) + rec.history.disk_bytes())
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
            rec.history.commit(tmp / DB_NAME)
            self._write(tmp, files)
            os.replace(tmp, self.root / rec.id)
            rec.history.moved(self.root / rec.id / DB_NAME)
            with self._mutex:
                self._records[rec.id] = rec
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
            with self._mutex:
                self._adding.pop(rec.id, None)
        return rec

    def delete(self, rec: ModelRecord) -> None:
        with self._mutex:
            self._records.pop(rec.id, None)
        trash = self.root / f".deleted-{rec.id}-{secrets.token_hex(3)}"
        try:
            os.replace(self.root / rec.id, trash)
        except FileNotFoundError:
            return
        shutil.rmtree(trash, ignore_errors=True)
        if self.quota is not None:
            self.quota.forget()

    def snapshot(self, rec: ModelRecord) -> dict[str, bytes]:
        """The files of a model besides its history, as bytes; call while holding ``rec.lock``."""
        files = {"checkpoint.npz": checkpoint_bytes(rec.model, classes=rec.classes, step=rec.step, meta=rec.meta())}
        opt = rec.trainer.optimizer_state() if rec.trainer is not None else rec.optimizer_state
        if opt:
            buf = io.BytesIO()
            np.savez(buf, __step__=np.array(rec.step, dtype=np.int64), **opt)
            files["optimizer.npz"] = buf.getvalue()
        return files

    def save(self, rec: ModelRecord) -> None:
        """Persist a user model (call while holding its lock); shipped and deleted models are skipped."""
        folder = self.root / rec.id
        if rec.read_only or not folder.is_dir() or rec.diverged():
            return  # a diverged model keeps its last finite weights on disk
        files = self.snapshot(rec)
        rec.history.commit(folder / DB_NAME)  # first: the checkpoint's step decides which rows are kept on load
        self._write(folder, files)
        if "optimizer.npz" not in files:
            (folder / "optimizer.npz").unlink(missing_ok=True)

    @staticmethod
    def _write(folder: Path, files: dict[str, bytes]) -> None:
        # Optimizer first: the checkpoint's step decides whether it is kept on load.
        for name in ("optimizer.npz", "checkpoint.npz"):
            if name in files:
                atomic_write(folder / name, files[name])


def _read_optimizer(path: Path, step: int) -> dict[str, np.ndarray] | None:
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError):
        log.warning("ignoring unreadable optimizer state %s", path)
        return None
    saved = arrays.pop("__step__", None)
    return arrays if saved is not None and int(saved) == step else None
