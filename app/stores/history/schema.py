"""The history database's layout (tables, columns, schema version), its connection and transactions, and
a row's encoding: the columns a step, evaluation or event is stored in, and the ``history.json`` form.

Layout: ``DATA_DIR/models/{id}/history.sqlite`` (WAL mode), one per model folder, so copying or
deleting a model stays a folder operation and one model's writes never wait on another's::

    steps(step PK, loss, accuracy, learning_rate, epoch, time,   one row per step; NULL = not recorded
          layers JSON, extra JSON)                              (loss and accuracy: null = not finite);
                                                                layers: grad_norm, update_ratio and
                                                                dead_relu per layer index; extra: any
                                                                other field, as older files may hold
    evaluations(id PK, step, split, loss, accuracy, body JSON)   body: the record as appended
    events(id PK, step, body JSON)                               body: {"step", "time", "changes"}
    buckets(width, bucket, n, first, last, lo/hi loss and        see `app.stores.history.buckets`
            accuracy with the step each was at)  PK (width, bucket)
    meta(key PK, value)                                          "generation": changes when cleared

A history that leaves or arrives as a file keeps the ``history.json`` format (`read_json_history`); a
folder still holding one is migrated on load (`app.stores.history.store`).
"""

from __future__ import annotations

import contextlib
import json
import math
import secrets
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from engine.jsonio import read_json

DB_NAME = "history.sqlite"
LEGACY_NAME = "history.json"  # the format before, still that of files that leave or arrive
KINDS = ("steps", "evaluations", "events")
STEP_FIELDS = ("step", "loss", "accuracy", "learning_rate", "epoch", "time")
LAYER_FIELDS = ("grad_norm", "update_ratio", "dead_relu")  # per layer index, kept in the ``layers`` column
VERSION = 1  # PRAGMA user_version of a database with this schema
SCHEMA = (
    "CREATE TABLE IF NOT EXISTS steps (step INTEGER PRIMARY KEY, loss REAL, accuracy REAL, learning_rate REAL, "
    "epoch INTEGER, time REAL, layers TEXT, extra TEXT)",
    "CREATE TABLE IF NOT EXISTS evaluations (id INTEGER PRIMARY KEY, step INTEGER NOT NULL, split TEXT NOT NULL, "
    "loss REAL, accuracy REAL, body TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS evaluations_step ON evaluations (step)",
    "CREATE INDEX IF NOT EXISTS evaluations_split ON evaluations (split, step)",
    "CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY, step INTEGER NOT NULL, body TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS events_step ON events (step)",
    "CREATE TABLE IF NOT EXISTS buckets (series TEXT, width INTEGER, bucket INTEGER, n INTEGER, first INTEGER, "
    "last INTEGER, lo_loss REAL, lo_loss_at INTEGER, hi_loss REAL, hi_loss_at INTEGER, lo_acc REAL, lo_acc_at INTEGER, "
    "hi_acc REAL, hi_acc_at INTEGER, PRIMARY KEY (series, width, bucket)) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)",
)
STEP_COLUMNS = "step, loss, accuracy, learning_rate, epoch, time, extra"

# ---- rows ------------------------------------------------------------------------------------------


def num(v: Any) -> float | None:
    """A finite number as a float, anything else as None."""
    if type(v) is float:  # the common case, first
        return v if v - v == 0.0 else None  # inf - inf and nan - nan are nan
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else None


def _clean(obj: Any) -> Any:
    """``obj`` with every non-finite float as None (JSON has neither NaN nor infinity)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


_encode = json.JSONEncoder(allow_nan=False, separators=(",", ":")).encode  # engine.jsonio.dumps, made once


def dumps(obj: Any) -> str:
    """Strict, compact JSON text (`engine.jsonio.dumps`); a non-finite number becomes null."""
    try:
        return _encode(obj)
    except ValueError:
        return _encode(_clean(obj))


def step_values(row: dict[str, Any]) -> tuple:
    layers, extra = {}, {}
    for k, v in row.items():
        if k not in STEP_FIELDS:
            (layers if k in LAYER_FIELDS else extra)[k] = v
    epoch = row.get("epoch")
    return (row["step"], num(row.get("loss")), num(row.get("accuracy")), num(row.get("learning_rate")),
            epoch if isinstance(epoch, int) and not isinstance(epoch, bool) else None, num(row.get("time")),
            dumps(layers) if layers else None, dumps(extra) if extra else None)  # fmt: skip


def step_row(r: tuple, layers: str | None = None) -> dict[str, Any]:
    """A ``steps`` row (`STEP_COLUMNS`, then optionally the layers column) as the dict it was appended as."""
    row: dict[str, Any] = {"step": r[0], "loss": r[1], "accuracy": r[2]}
    for key, value in zip(("learning_rate", "epoch", "time"), r[3:6]):
        if value is not None:
            row[key] = value
    if layers:
        row.update(json.loads(layers))
    if r[6]:
        row.update(json.loads(r[6]))
    return row


def plain(row: dict[str, Any]) -> dict[str, Any]:
    """A step without its per-layer figures."""
    return {k: v for k, v in row.items() if k not in LAYER_FIELDS} if any(k in row for k in LAYER_FIELDS) else row


def split_of(e: dict[str, Any]) -> str:
    return e["split"] if isinstance(e.get("split"), str) else ""


# ---- the history.json form ----------------------------------------------------------------------------


def valid(items: Any, step: int | None) -> list[dict[str, Any]]:
    """The records of a ``history.json`` list worth keeping: objects with a step from 0 to ``step``."""
    if not isinstance(items, list):
        return []
    return [e for e in items if isinstance(e, dict) and isinstance(e.get("step"), int) and not isinstance(e["step"], bool)
            and 0 <= e["step"] <= (step if step is not None else e["step"])]  # fmt: skip


def read_json_history(path: Path, step: int | None = None) -> dict[str, list]:
    """A ``history.json`` file (the shipped models' companions, migrated folders) as ``{"steps", "evaluations",
    "events"}``, keeping the records up to ``step``; a missing or unreadable file is an empty history."""
    data = read_json(path)
    data = data if isinstance(data, dict) else {}
    return {kind: valid(data.get(kind), step) for kind in KINDS}


# ---- the database ----------------------------------------------------------------------------------


def connect(path: Path, *, create: bool = True) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit), WAL, the schema made if missing."""
    uri = f"{path.resolve().as_uri()}?mode={'rwc' if create else 'rw'}"
    db = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False, timeout=30)
    try:
        if create:
            db.execute("PRAGMA journal_mode=WAL").fetchone()
        db.execute("PRAGMA synchronous=FULL")
        if db.execute("PRAGMA user_version").fetchone()[0] < VERSION:
            db.execute("BEGIN IMMEDIATE")
            for statement in SCHEMA:
                db.execute(statement)
            db.execute("INSERT OR IGNORE INTO meta VALUES ('generation', ?)", (secrets.token_hex(8),))
            db.execute(f"PRAGMA user_version = {VERSION}")
            db.execute("COMMIT")
    except BaseException:
        db.close()
        raise
    return db


@contextlib.contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
