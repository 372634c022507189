"""The writer: `History`, one model's rows appended in memory and committed to its database, cut to a
checkpoint's step on load, copied with its model, and migrated from an old ``history.json``.

Writing: rows appended (`History.add`, holding the model's lock) wait in memory until the model is
saved; `History.commit` then writes them in one transaction. Its cost follows the rows appended, not
the rows stored: B-tree inserts and the few buckets they fall in. The store commits the history
before it writes the checkpoint, and `History.open` deletes rows past the checkpoint's step, so a
server killed between the two restarts with history and weights that agree. ``synchronous=FULL``:
a commit is on disk before the checkpoint is written, as the atomic writes' fsync is.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import secrets
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.stores.history.buckets import EVALS, STEPS, count, rebuild
from app.stores.history.reader import HistoryReader
from app.stores.history.schema import (
    DB_NAME,
    KINDS,
    LEGACY_NAME,
    STEP_COLUMNS,
    connect,
    dumps,
    num,
    read_json_history,
    split_of,
    step_row,
    step_values,
    transaction,
    valid,
)

log = logging.getLogger("cnnvis")

# ---- writing rows -------------------------------------------------------------------------------------


def _insert(db: sqlite3.Connection, pending: dict[str, list]) -> None:
    """Insert unsaved rows and recompute the buckets from their first step on."""
    starts: dict[str, int] = {}
    steps = pending["steps"]
    if steps:
        db.executemany("INSERT OR REPLACE INTO steps VALUES (?,?,?,?,?,?,?,?)", map(step_values, steps))
        starts[STEPS] = min(s["step"] for s in steps)
    evals = [(e["step"], split_of(e), num(e.get("loss")), num(e.get("accuracy")), dumps(e)) for e in pending["evaluations"]]
    db.executemany("INSERT INTO evaluations (step, split, loss, accuracy, body) VALUES (?,?,?,?,?)", evals)
    for step, split, *_ in evals:
        starts[EVALS + split] = min(step, starts.get(EVALS + split, step))
    db.executemany("INSERT INTO events (step, body) VALUES (?,?)", [(e["step"], dumps(e)) for e in pending["events"]])
    for series, start in starts.items():
        rebuild(db, series, start)


def _clear(db: sqlite3.Connection) -> None:
    for table in ("steps", "evaluations", "events", "buckets"):
        db.execute(f"DELETE FROM {table}")  # noqa: S608  a fixed table name
    db.execute("UPDATE meta SET value = ? WHERE key = 'generation'", (secrets.token_hex(8),))


def _cut(db: sqlite3.Connection, step: int, marks: dict[str, int] | None = None) -> None:
    """Delete the steps, evaluations and events past ``step`` (or, with ``marks``, the evaluations and
    events stored after those ids) and recompute the buckets they were in."""
    if db.execute("DELETE FROM steps WHERE step > ?", (step,)).rowcount:
        rebuild(db, STEPS, step + 1)
    column, limit = ("id", marks["evaluations"]) if marks else ("step", step)
    starts = db.execute(f"SELECT split, min(step) FROM evaluations WHERE {column} > ? GROUP BY split", (limit,)).fetchall()  # noqa: S608
    db.execute(f"DELETE FROM evaluations WHERE {column} > ?", (limit,))  # noqa: S608  fixed names
    for split, start in starts:
        rebuild(db, EVALS + split, start)
    column, limit = ("id", marks["events"]) if marks else ("step", step)
    db.execute(f"DELETE FROM events WHERE {column} > ?", (limit,))  # noqa: S608


def _migrate(db: sqlite3.Connection, legacy: Path, step: int) -> None:
    """Import a ``history.json`` left by an older version into an empty database, then remove it. An
    interrupted migration is redone (the import is one transaction); a database that already holds
    rows is the migration's result, committed before a kill kept the file from being removed."""
    if not legacy.is_file():
        return
    with transaction(db):
        if not any(db.execute(f"SELECT 1 FROM {kind} LIMIT 1").fetchone() for kind in KINDS):  # noqa: S608
            _insert(db, read_json_history(legacy, step))
    legacy.unlink()
    log.info("history %s moved into %s", legacy, legacy.with_name(DB_NAME))


def _broken(e: sqlite3.Error) -> bool:
    """A database that cannot be read as one (garbage, truncated), not one that is busy or on a full disk."""
    return getattr(e, "sqlite_errorname", "").startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB", "SQLITE_ERROR"))


# ---- the writer ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Origin:
    """Where a copy's stored rows come from: the source's database, its generation and how far its
    rows went (last step, last evaluation id, last event id) when the copy was made."""

    path: Path
    generation: str
    marks: dict[str, int]


class History:
    """One model's history: the rows its database holds plus those appended since the last commit.

    Mutate (`add`, `reset_to`, `commit`) only while holding the model's lock. A history with no
    database (a shipped model's, read from its ``.history.json``) lives in memory and commits nowhere
    until `commit` is given a path. ``copy.deepcopy`` makes the history of a copied model; assigning a
    dict to ``ModelRecord.history`` replaces the whole history (`reset_to`).
    """

    def __init__(self, steps: Iterable[dict] = (), evaluations: Iterable[dict] = (), events: Iterable[dict] = ()):
        self.path: Path | None = None
        self.pending: dict[str, list[dict[str, Any]]] = {"steps": list(steps), "evaluations": list(evaluations),
                                                         "events": list(events)}  # fmt: skip
        self._stored_steps = 0  # steps in the database
        self._marks = dict.fromkeys(KINDS, -1)  # the database's last step, last evaluation id, last event id
        self._last: dict[str, Any] | None = None  # the database's last step
        self._generation = ""
        self._cleared = False  # the stored rows go at the next commit
        self._origin: _Origin | None = None  # a copy's source, read at its first commit

    @classmethod
    def from_dict(cls, data: dict[str, Any], step: int | None = None) -> History:
        """A history in memory from the ``history.json`` form, keeping valid records up to ``step``."""
        data = data if isinstance(data, dict) else {}
        return cls(**{kind: valid(data.get(kind), step) for kind in KINDS})

    @classmethod
    def open(cls, path: Path, step: int) -> History:
        """The history stored at ``path``, cut to the checkpoint's ``step`` (rows a save committed before a
        kill stopped its checkpoint are dropped); a ``history.json`` beside it is migrated first. A file
        that is not a database is set aside as ``history.sqlite.broken`` and the history starts afresh."""
        history = cls()
        for attempt in (1, 2):
            try:
                with contextlib.closing(connect(path)) as db:
                    _migrate(db, path.with_name(LEGACY_NAME), step)
                    if db.execute("SELECT 1 FROM steps WHERE step > ? LIMIT 1", (step,)).fetchone() or any(
                            db.execute(f"SELECT 1 FROM {k} WHERE step > ? LIMIT 1", (step,)).fetchone()  # noqa: S608
                            for k in ("evaluations", "events")):
                        with transaction(db):
                            _cut(db, step)
                    history._loaded(db)
                break
            except sqlite3.DatabaseError as e:
                if attempt == 2 or not _broken(e):
                    raise
                log.warning("history %s is unreadable (%s): set aside, starting afresh", path, e)
                path.replace(path.with_name(DB_NAME + ".broken"))
                for suffix in ("-wal", "-shm"):
                    path.with_name(DB_NAME + suffix).unlink(missing_ok=True)
        history.path = path
        return history

    def _loaded(self, db: sqlite3.Connection) -> None:
        """Read what the in-memory side needs to know of the database: its steps, last ids, last step."""
        self._stored_steps = count(db, STEPS)
        for kind in ("evaluations", "events"):
            self._marks[kind] = db.execute(f"SELECT coalesce(max(id), -1) FROM {kind}").fetchone()[0]  # noqa: S608
        last = db.execute(f"SELECT {STEP_COLUMNS}, layers FROM steps ORDER BY step DESC LIMIT 1").fetchone()  # noqa: S608
        self._last, self._marks["steps"] = (step_row(last[:7], last[7]), last[0]) if last else (None, -1)
        self._generation = db.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()[0]

    # ---- appending (hold the model's lock) ----------------------------------------------------------
    def add(self, kind: str, row: dict[str, Any]) -> None:
        """Append a step, evaluation or event (``row["step"]`` an int); saved at the next commit."""
        self.pending[kind].append(row)

    def add_steps(self, rows: Iterable[dict[str, Any]]) -> None:
        self.pending["steps"].extend(rows)

    def reset_to(self, data: dict[str, Any]) -> History:
        """Replace the whole history by ``data`` (``{"steps": [], ...}`` after a reset); the stored rows are
        deleted at the next commit, in the same transaction as the new ones are written."""
        fresh = History.from_dict(data)
        self.pending, self._cleared, self._origin, self._last = fresh.pending, self.path is not None, None, None
        self._stored_steps = 0
        return self

    @property
    def last_step(self) -> dict[str, Any] | None:
        """The last step recorded, saved or not (None before the first)."""
        return self.pending["steps"][-1] if self.pending["steps"] else self._last

    @property
    def total_steps(self) -> int:
        """Steps recorded in all, saved or not."""
        return self._stored_steps + len(self.pending["steps"])

    def __deepcopy__(self, memo: dict) -> History:
        """The history of a copied model: the unsaved rows copied now, the stored ones copied from this
        database at the copy's first commit, up to where they were now."""
        twin = History(**copy.deepcopy(self.pending, memo))
        twin._last = self._last
        if self._origin is not None:
            twin._origin = self._origin
        elif self.path is not None and not self._cleared:
            twin._origin = _Origin(self.path, self._generation, dict(self._marks))
        return twin

    def disk_bytes(self) -> int:
        """About what a first commit of this history adds to the disk (for the quota check of a new model)."""
        size = 0
        if self._origin is not None:
            with contextlib.suppress(OSError):
                size = self._origin.path.stat().st_size
        return size + 64 * 1024 + 200 * sum(len(v) for v in self.pending.values())

    # ---- saving (hold the model's lock) -------------------------------------------------------------
    def commit(self, path: Path) -> None:
        """Write the rows appended since the last commit to the database at ``path``, made if missing
        (then a copy's source rows first), in one transaction; the history is stored there from now on."""
        if path == self.path and not (self._cleared or self._origin or any(self.pending.values())):
            return
        origin = self._origin if not path.exists() else None
        if origin is not None:
            self._copy_origin(origin, path)
        with contextlib.closing(connect(path)) as db:
            with transaction(db):
                if origin is not None:
                    if db.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()[0] == origin.generation:
                        _cut(db, origin.marks["steps"], origin.marks)
                        db.execute("UPDATE meta SET value = ? WHERE key = 'generation'", (secrets.token_hex(8),))
                    else:  # the source was reset or deleted since the copy was made: its rows are not ours
                        log.warning("history of %s changed while it was copied; the copy keeps only its recent steps", origin.path)
                        _clear(db)
                if self._cleared:
                    _clear(db)
                _insert(db, self.pending)
            self._loaded(db)
        self.path, self._cleared, self._origin = path, False, None
        self.pending = {kind: [] for kind in KINDS}

    @staticmethod
    def _copy_origin(origin: _Origin, path: Path) -> None:
        """Copy the source database to ``path`` (SQLite's backup: a consistent snapshot while it is written)."""
        try:
            with contextlib.closing(connect(origin.path, create=False)) as src, contextlib.closing(connect(path)) as dst:
                src.backup(dst)
        except sqlite3.Error as e:
            log.warning("could not copy the history %s: %s", origin.path, e)
            for suffix in ("", "-wal", "-shm"):
                path.with_name(path.name + suffix).unlink(missing_ok=True)

    def moved(self, path: Path) -> None:
        """The database was moved with its folder (a new model's folder renamed into place)."""
        self.path = path

    # ---- reading ------------------------------------------------------------------------------------
    def reader(self) -> HistoryReader:
        """A consistent view for one request; make it holding the model's lock, use it without."""
        return HistoryReader(self)
