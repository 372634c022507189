"""One model's training history in an embedded SQLite database, appended to and never rewritten.

Layout: ``DATA_DIR/models/{id}/history.sqlite`` (WAL mode), one per model folder, so copying or
deleting a model stays a folder operation and one model's writes never wait on another's::

    steps(step PK, loss, accuracy, learning_rate, epoch, time,   one row per step; NULL = not recorded
          layers JSON, extra JSON)                              (loss and accuracy: null = not finite);
                                                                layers: grad_norm, update_ratio and
                                                                dead_relu per layer index; extra: any
                                                                other field, as older files may hold
    evaluations(id PK, step, split, loss, accuracy, body JSON)   body: the record as appended
    events(id PK, step, body JSON)                               body: {"step", "time", "changes"}
    buckets(width, bucket, n, first, last, lo/hi loss and        see "Downsampling" below
            accuracy with the step each was at)  PK (width, bucket)
    meta(key PK, value)                                          "generation": changes when cleared

Writing: rows appended (`History.add`, holding the model's lock) wait in memory until the model is
saved; `History.commit` then writes them in one transaction. Its cost follows the rows appended, not
the rows stored: B-tree inserts and the few buckets they fall in. The store commits the history
before it writes the checkpoint, and `History.open` deletes rows past the checkpoint's step, so a
server killed between the two restarts with history and weights that agree. ``synchronous=FULL``:
a commit is on disk before the checkpoint is written, as the atomic writes' fsync is.

Downsampling: for the steps and for each split's evaluations, and each width of 4, 8, ... 2**20 steps,
``buckets`` holds every range of that width (``bucket = step // width``): its row count, first and last
row, and the rows where loss and accuracy were lowest and highest. A commit recomputes the ranges
from its first new step on, each width folded from the one below (about two merges per new row). A
downsampled read merges a few hundred or thousand stored ranges into at most ``points / 6`` and
fetches their (at most six) chosen rows by primary key: milliseconds, however long the history.
Events, made by people, are few: they are thinned in Python.

Readers (`History.reader`, made while holding the model's lock) open the database in a read
transaction, which WAL keeps consistent while saves go on, and copy the unsaved rows, so the
model's lock is held for microseconds only. A history that leaves or arrives as a file keeps the
``history.json`` format (`read_json_history`); a folder still holding one is migrated on load.
"""

from __future__ import annotations

import contextlib
import copy
import csv
import io
import json
import logging
import math
import secrets
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.jsonio import read_json

log = logging.getLogger("cnnvis")
DB_NAME = "history.sqlite"
LEGACY_NAME = "history.json"  # the format before, still that of files that leave or arrive
KINDS = ("steps", "evaluations", "events")
STEP_FIELDS = ("step", "loss", "accuracy", "learning_rate", "epoch", "time")
LAYER_FIELDS = ("grad_norm", "update_ratio", "dead_relu")  # per layer index, kept in the ``layers`` column
WIDTHS = tuple(2**k for k in range(2, 21))  # bucket widths in steps; past 2**20 * points / 6 steps Python merges more
PICKS = 6  # rows a bucket contributes at most: first, last, lowest and highest loss and accuracy
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
CSV_HEADER = ("split", "step", "epoch", "loss", "accuracy", "learning_rate", "time", "changes", "per_class_accuracy", "layers")

# ---- rows ------------------------------------------------------------------------------------------


def _num(v: Any) -> float | None:
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


def _json(obj: Any) -> str:
    """Strict, compact JSON text (`engine.jsonio.dumps`); a non-finite number becomes null."""
    try:
        return _encode(obj)
    except ValueError:
        return _encode(_clean(obj))


def _step_values(row: dict[str, Any]) -> tuple:
    layers, extra = {}, {}
    for k, v in row.items():
        if k not in STEP_FIELDS:
            (layers if k in LAYER_FIELDS else extra)[k] = v
    epoch = row.get("epoch")
    return (row["step"], _num(row.get("loss")), _num(row.get("accuracy")), _num(row.get("learning_rate")),
            epoch if isinstance(epoch, int) and not isinstance(epoch, bool) else None, _num(row.get("time")),
            _json(layers) if layers else None, _json(extra) if extra else None)  # fmt: skip


def _step_row(r: tuple, layers: str | None = None) -> dict[str, Any]:
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


def _plain(row: dict[str, Any]) -> dict[str, Any]:
    """A step without its per-layer figures."""
    return {k: v for k, v in row.items() if k not in LAYER_FIELDS} if any(k in row for k in LAYER_FIELDS) else row


def _valid(items: Any, step: int | None) -> list[dict[str, Any]]:
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
    return {kind: _valid(data.get(kind), step) for kind in KINDS}


# ---- buckets ---------------------------------------------------------------------------------------
# A series: "steps", or "evaluations:{split}". An aggregate: (n, first, last, lo_loss, lo_loss_at, hi_loss,
# hi_loss_at, lo_acc, lo_acc_at, hi_acc, hi_acc_at); "at" names a row: its step in ``steps``, its id in
# ``evaluations``, and -1 - index for a row not saved yet.
STEPS, EVALS = "steps", "evaluations:"


def _split(e: dict[str, Any]) -> str:
    return e["split"] if isinstance(e.get("split"), str) else ""


def _fold_rows(rows: Iterable[tuple], width: int) -> list[tuple[int, tuple]]:
    """``[(step, at, loss, accuracy)]`` in step order -> ``[(step // width, aggregate)]``; ties keep the earlier."""
    out: list[tuple[int, tuple]] = []
    key, cur = None, []
    for step, at, loss, acc in rows:
        k = step // width
        if k != key:
            if key is not None:
                out.append((key, tuple(cur)))
            lat, aat = (at if loss is not None else None), (at if acc is not None else None)
            key, cur = k, [1, at, at, loss, lat, loss, lat, acc, aat, acc, aat]
            continue
        cur[0] += 1
        cur[2] = at
        if loss is not None:
            if cur[3] is None or loss < cur[3]:
                cur[3], cur[4] = loss, at
            if cur[5] is None or loss > cur[5]:
                cur[5], cur[6] = loss, at
        if acc is not None:
            if cur[7] is None or acc < cur[7]:
                cur[7], cur[8] = acc, at
            if cur[9] is None or acc > cur[9]:
                cur[9], cur[10] = acc, at
    if key is not None:
        out.append((key, tuple(cur)))
    return out


def _merge(a: tuple, b: tuple) -> tuple:
    """The aggregates of two consecutive ranges (``a`` first) as one."""
    out = [a[0] + b[0], a[1], b[2]]
    for lo in (3, 7):
        hi = lo + 2
        out += a[lo:hi] if b[lo] is None or (a[lo] is not None and a[lo] <= b[lo]) else b[lo:hi]
        out += a[hi:hi + 2] if b[hi] is None or (a[hi] is not None and a[hi] >= b[hi]) else b[hi:hi + 2]
    return tuple(out)


def _fold(pairs: Iterable[tuple[int, tuple]]) -> list[tuple[int, tuple]]:
    """``[(key, aggregate)]`` in order -> one aggregate per run of equal keys."""
    out: list[tuple[int, tuple]] = []
    for key, agg in pairs:
        if out and out[-1][0] == key:
            out[-1] = (key, _merge(out[-1][1], agg))
        else:
            out.append((key, agg))
    return out


def _picks(agg: tuple) -> set[int]:
    return {agg[i] for i in (1, 2, 4, 6, 8, 10) if agg[i] is not None}


def _grid(first: int, last: int, points: int, widths: tuple[int, ...] = ()) -> tuple[int, int]:
    """``(base, ratio)``: buckets of ``base * ratio`` steps, wide enough to cut ``first..last`` into at most
    ``points // PICKS - 1`` whole buckets and a partial one (so at most ``points`` picks), read as stored
    buckets of ``base`` steps merged ``ratio`` at a time. ``base`` is the widest of ``widths`` at most an
    eighth of the width needed, so the buckets are within about 12 % of it (1 with no ``widths``)."""
    target = -(-(last - first + 1) // max(1, points // PICKS - 1))
    base = max((w for w in widths if w <= max(target // 8, widths[0])), default=1)
    return base, -(-target // base)


def _thin(steps: list[int], points: int) -> list[int]:
    """Indices of ``steps`` (events) to keep, in order: all when they fit in ``points``, else the first and
    last of each bucket of steps."""
    if len(steps) <= points:
        return list(range(len(steps)))
    order = sorted(range(len(steps)), key=steps.__getitem__)
    aggs = _fold_rows(((steps[i], i, None, None) for i in order), _grid(steps[order[0]], steps[order[-1]], points)[1])
    return sorted(set().union(*(_picks(a) for _, a in aggs)))


def _points(db: sqlite3.Connection, series: str, start: int) -> Iterable[tuple]:
    """``(step, at, loss, accuracy)`` of a series from step ``start`` on, in order."""
    if series == STEPS:
        return db.execute("SELECT step, step, loss, accuracy FROM steps WHERE step >= ? ORDER BY step", (start,))
    return db.execute("SELECT step, id, loss, accuracy FROM evaluations WHERE split = ? AND step >= ? ORDER BY step, id",
                      (series[len(EVALS):], start))  # fmt: skip


def _read_buckets(db: sqlite3.Connection, series: str, width: int, start: int) -> list[tuple[int, tuple]]:
    rows = db.execute("SELECT * FROM buckets WHERE series = ? AND width = ? AND bucket >= ? ORDER BY bucket",
                      (series, width, start))  # fmt: skip
    return [(r[2], tuple(r[3:])) for r in rows]


def _rebuild(db: sqlite3.Connection, series: str, start: int) -> None:
    """Recompute every bucket of ``series`` that holds a step from ``start`` on (inside the caller's
    transaction): the narrowest width from the rows, each wider one from the one below."""
    below = None
    for width in WIDTHS:
        key = start // width
        db.execute("DELETE FROM buckets WHERE series = ? AND width = ? AND bucket >= ?", (series, width, key))
        if below is None:
            folded = _fold_rows(_points(db, series, key * width), width)
        else:
            ratio = width // below
            folded = _fold((k // ratio, agg) for k, agg in _read_buckets(db, series, below, key * ratio))
        db.executemany("INSERT INTO buckets VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)", [(series, width, k, *agg) for k, agg in folded])
        below = width


# ---- the database ----------------------------------------------------------------------------------


def _connect(path: Path, *, create: bool = True) -> sqlite3.Connection:
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
def _transaction(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _insert(db: sqlite3.Connection, pending: dict[str, list]) -> None:
    """Insert unsaved rows and recompute the buckets from their first step on."""
    starts: dict[str, int] = {}
    steps = pending["steps"]
    if steps:
        db.executemany("INSERT OR REPLACE INTO steps VALUES (?,?,?,?,?,?,?,?)", map(_step_values, steps))
        starts[STEPS] = min(s["step"] for s in steps)
    evals = [(e["step"], _split(e), _num(e.get("loss")), _num(e.get("accuracy")), _json(e)) for e in pending["evaluations"]]
    db.executemany("INSERT INTO evaluations (step, split, loss, accuracy, body) VALUES (?,?,?,?,?)", evals)
    for step, split, *_ in evals:
        starts[EVALS + split] = min(step, starts.get(EVALS + split, step))
    db.executemany("INSERT INTO events (step, body) VALUES (?,?)", [(e["step"], _json(e)) for e in pending["events"]])
    for series, start in starts.items():
        _rebuild(db, series, start)


def _clear(db: sqlite3.Connection) -> None:
    for table in ("steps", "evaluations", "events", "buckets"):
        db.execute(f"DELETE FROM {table}")  # noqa: S608  a fixed table name
    db.execute("UPDATE meta SET value = ? WHERE key = 'generation'", (secrets.token_hex(8),))


def _cut(db: sqlite3.Connection, step: int, marks: dict[str, int] | None = None) -> None:
    """Delete the steps, evaluations and events past ``step`` (or, with ``marks``, the evaluations and
    events stored after those ids) and recompute the buckets they were in."""
    if db.execute("DELETE FROM steps WHERE step > ?", (step,)).rowcount:
        _rebuild(db, STEPS, step + 1)
    column, limit = ("id", marks["evaluations"]) if marks else ("step", step)
    starts = db.execute(f"SELECT split, min(step) FROM evaluations WHERE {column} > ? GROUP BY split", (limit,)).fetchall()  # noqa: S608
    db.execute(f"DELETE FROM evaluations WHERE {column} > ?", (limit,))  # noqa: S608  fixed names
    for split, start in starts:
        _rebuild(db, EVALS + split, start)
    column, limit = ("id", marks["events"]) if marks else ("step", step)
    db.execute(f"DELETE FROM events WHERE {column} > ?", (limit,))  # noqa: S608


def _migrate(db: sqlite3.Connection, legacy: Path, step: int) -> None:
    """Import a ``history.json`` left by an older version into an empty database, then remove it. An
    interrupted migration is redone (the import is one transaction); a database that already holds
    rows is the migration's result, committed before a kill kept the file from being removed."""
    if not legacy.is_file():
        return
    with _transaction(db):
        if not any(db.execute(f"SELECT 1 FROM {kind} LIMIT 1").fetchone() for kind in KINDS):  # noqa: S608
            _insert(db, read_json_history(legacy, step))
    legacy.unlink()
    log.info("history %s moved into %s", legacy, legacy.with_name(DB_NAME))


def _count(db: sqlite3.Connection, series: str) -> int:
    """Rows of a series, from its widest buckets (a row or two)."""
    return db.execute("SELECT coalesce(sum(n), 0) FROM buckets WHERE series = ? AND width = ?", (series, WIDTHS[-1])).fetchone()[0]


def _broken(e: sqlite3.Error) -> bool:
    """A database that cannot be read as one (garbage, truncated), not one that is busy or on a full disk."""
    return getattr(e, "sqlite_errorname", "").startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB", "SQLITE_ERROR"))


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
        return cls(**{kind: _valid(data.get(kind), step) for kind in KINDS})

    @classmethod
    def open(cls, path: Path, step: int) -> History:
        """The history stored at ``path``, cut to the checkpoint's ``step`` (rows a save committed before a
        kill stopped its checkpoint are dropped); a ``history.json`` beside it is migrated first. A file
        that is not a database is set aside as ``history.sqlite.broken`` and the history starts afresh."""
        history = cls()
        for attempt in (1, 2):
            try:
                with contextlib.closing(_connect(path)) as db:
                    _migrate(db, path.with_name(LEGACY_NAME), step)
                    if db.execute("SELECT 1 FROM steps WHERE step > ? LIMIT 1", (step,)).fetchone() or any(
                            db.execute(f"SELECT 1 FROM {k} WHERE step > ? LIMIT 1", (step,)).fetchone()  # noqa: S608
                            for k in ("evaluations", "events")):
                        with _transaction(db):
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
        self._stored_steps = _count(db, STEPS)
        for kind in ("evaluations", "events"):
            self._marks[kind] = db.execute(f"SELECT coalesce(max(id), -1) FROM {kind}").fetchone()[0]  # noqa: S608
        last = db.execute(f"SELECT {STEP_COLUMNS}, layers FROM steps ORDER BY step DESC LIMIT 1").fetchone()  # noqa: S608
        self._last, self._marks["steps"] = (_step_row(last[:7], last[7]), last[0]) if last else (None, -1)
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
        with contextlib.closing(_connect(path)) as db:
            with _transaction(db):
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
            with contextlib.closing(_connect(origin.path, create=False)) as src, contextlib.closing(_connect(path)) as dst:
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


class HistoryReader:
    """The stored rows in one read transaction (WAL keeps them as they were while saves go on) and a
    copy of the unsaved ones. Close it (or use it in ``with``) when done."""

    def __init__(self, history: History):
        self.pending = {kind: list(rows) for kind, rows in history.pending.items()}
        self.db: sqlite3.Connection | None = None
        if history.path is not None and not history._cleared:
            try:
                self.db = _connect(history.path, create=False)
            except sqlite3.OperationalError:  # not made yet, or the model's folder deleted meanwhile
                return
            self.db.execute("BEGIN")
            self.db.execute("SELECT count(*) FROM meta").fetchone()  # the read transaction starts here

    def close(self) -> None:
        if self.db is not None:
            self.db.close()
            self.db = None

    def __enter__(self) -> HistoryReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _query(self, sql: str, args: tuple = ()) -> list[tuple]:
        return self.db.execute(sql, args).fetchall() if self.db is not None else []

    def _steps_by_id(self, steps: list[int], layers: bool) -> list[dict[str, Any]]:
        cols = f"{STEP_COLUMNS}, layers" if layers else f"{STEP_COLUMNS}, NULL"
        out = []
        for i in range(0, len(steps), 500):
            chunk = steps[i:i + 500]
            out += self._query(f"SELECT {cols} FROM steps WHERE step IN ({','.join('?' * len(chunk))})", tuple(chunk))  # noqa: S608
        return [_step_row(r[:7], r[7]) for r in sorted(out)]

    def _bodies(self, kind: str, ids: list[int]) -> dict[int, dict[str, Any]]:
        out = {}
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            rows = self._query(f"SELECT id, body FROM {kind} WHERE id IN ({','.join('?' * len(chunk))})", tuple(chunk))  # noqa: S608
            out.update((r[0], json.loads(r[1])) for r in rows)
        return out

    def total_steps(self) -> int:
        return (_count(self.db, STEPS) if self.db is not None else 0) + len(self.pending["steps"])

    # ---- the default answer: downsampled ------------------------------------------------------------
    def downsampled(self, points: int, layers: bool) -> dict[str, Any]:
        """At most ``points`` steps: all when they fit, else per bucket of steps the first, the last and
        those with the lowest and highest loss and accuracy; about a sixth as many evaluations (shared by
        the splits, thinned alike) and a tenth as many events (each bucket's first and last)."""
        steps, thin_s = self._steps(points, layers)
        evaluations, thin_e = self._evaluations(max(2 * PICKS, points // 6))
        events, thin_v = self._events(max(2, points // 10))
        return {"steps": steps, "evaluations": evaluations, "events": events, "total_steps": self.total_steps(),
                "downsampled": thin_s or thin_e or thin_v, "next_from_step": None}  # fmt: skip

    def _choose(self, series: str, points: int, pending: list[tuple]) -> tuple[list[int], list[int]] | None:
        """The rows of a series to send, as (stored ``at``s, indices into ``pending``, the unsaved
        ``[(step, loss, accuracy)]``), or None when all fit in ``points``: stored buckets merged here
        into wider ones (`_grid`), with the unsaved rows' buckets."""
        stored = _count(self.db, series) if self.db is not None else 0
        if stored + len(pending) <= points:
            return None
        steps = [p[0] for p in pending]
        if stored:
            where = ("steps", "") if series == STEPS else ("evaluations", "WHERE split = ?")
            args = () if series == STEPS else (series[len(EVALS):],) * 2
            lo, hi = self.db.execute(f"SELECT (SELECT min(step) FROM {where[0]} {where[1]}), "  # noqa: S608
                                     f"(SELECT max(step) FROM {where[0]} {where[1]})", args).fetchone()
            steps += [lo, hi]
        first, last = min(steps), max(steps)
        base, ratio = _grid(first, last, points, WIDTHS)
        aggs = [(k // ratio, a) for k, a in _read_buckets(self.db, series, base, first // base)] if stored else []
        order = sorted(range(len(pending)), key=lambda i: pending[i][0])
        unsaved = ((pending[i][0], -1 - i, _num(pending[i][1]), _num(pending[i][2])) for i in order)
        aggs += [(k // ratio, a) for k, a in _fold_rows(unsaved, base)]
        picks = set().union(*(_picks(a) for _, a in _fold(sorted(aggs, key=lambda p: p[0]))))
        return sorted(p for p in picks if p >= 0), sorted(-1 - p for p in picks if p < 0)

    def _steps(self, points: int, layers: bool) -> tuple[list[dict[str, Any]], bool]:
        pending = self.pending["steps"]
        keep = pending if layers else [_plain(s) for s in pending]
        chosen = self._choose(STEPS, points, [(s["step"], s.get("loss"), s.get("accuracy")) for s in pending])
        if chosen is None:
            rows = self._query(f"SELECT {STEP_COLUMNS}, {'layers' if layers else 'NULL'} FROM steps ORDER BY step")  # noqa: S608
            return [_step_row(r[:7], r[7]) for r in rows] + keep, False
        stored, unsaved = chosen
        return sorted(self._steps_by_id(stored, layers) + [keep[i] for i in unsaved], key=lambda r: r["step"]), True

    def _splits(self) -> list[str]:
        """The splits evaluated, found by index seeks (not a scan): usually "test" and maybe "train"."""
        found, after = [], None
        while self.db is not None:
            row = self.db.execute("SELECT min(split) FROM evaluations" + ("" if after is None else " WHERE split > ?"),
                                  () if after is None else (after,)).fetchone()  # fmt: skip
            if row[0] is None:
                break
            found.append(after := row[0])
        return sorted(set(found) | {_split(e) for e in self.pending["evaluations"]})

    def _evaluations(self, points: int) -> tuple[list[dict[str, Any]], bool]:
        pending = self.pending["evaluations"]
        splits = self._splits()
        stored = sum(_count(self.db, EVALS + s) for s in splits) if self.db is not None else 0
        if stored + len(pending) <= points:
            return [json.loads(r[0]) for r in self._query("SELECT body FROM evaluations ORDER BY id")] + pending, False
        ids, idx = [], []
        for split in splits:
            mine = [i for i, e in enumerate(pending) if _split(e) == split]
            chosen = self._choose(EVALS + split, max(2 * PICKS, points // len(splits)),
                                  [(pending[i]["step"], pending[i].get("loss"), pending[i].get("accuracy")) for i in mine])
            if chosen is None:
                ids += [r[0] for r in self._query("SELECT id FROM evaluations WHERE split = ?", (split,))]
                idx += mine
            else:
                ids += chosen[0]
                idx += [mine[i] for i in chosen[1]]
        bodies = self._bodies("evaluations", sorted(ids))
        return [bodies[i] for i in sorted(ids)] + [pending[i] for i in sorted(idx)], True

    def _events(self, points: int) -> tuple[list[dict[str, Any]], bool]:
        stored = self._query("SELECT id, step FROM events ORDER BY id")
        pending = self.pending["events"]
        keep = _thin([r[1] for r in stored] + [e["step"] for e in pending], points)
        bodies = self._bodies("events", [stored[i][0] for i in keep if i < len(stored)])
        return [bodies[stored[i][0]] if i < len(stored) else pending[i - len(stored)] for i in keep], len(keep) < len(stored) + len(pending)

    # ---- full data: pages and CSV -------------------------------------------------------------------
    def page(self, from_step: int, limit: int, layers: bool) -> dict[str, Any]:
        """Every step from ``from_step`` on, ``limit`` at most, with the evaluations and events of the same
        steps; ``next_from_step`` is where the next page starts (None after the last)."""
        cols = f"{STEP_COLUMNS}, {'layers' if layers else 'NULL'}"
        rows = [_step_row(r[:7], r[7]) for r in self._query(
            f"SELECT {cols} FROM steps WHERE step >= ? ORDER BY step LIMIT ?", (from_step, limit + 1))]  # noqa: S608
        rows += [s if layers else _plain(s) for s in self.pending["steps"] if s["step"] >= from_step]
        rows.sort(key=lambda r: r["step"])
        more = len(rows) > limit
        rows = rows[:limit]
        end = rows[-1]["step"] + 1 if more else None
        return {"steps": rows, "evaluations": self._between("evaluations", from_step, end),
                "events": self._between("events", from_step, end), "total_steps": self.total_steps(),
                "downsampled": False, "next_from_step": end}  # fmt: skip

    def _between(self, kind: str, start: int, end: int | None) -> list[dict[str, Any]]:
        end = end if end is not None else 2**63 - 1
        stored = self._query(f"SELECT body FROM {kind} WHERE step >= ? AND step < ? ORDER BY id", (start, end))  # noqa: S608
        return [json.loads(r[0]) for r in stored] + [e for e in self.pending[kind] if start <= e["step"] < end]

    def csv(self, layers: bool) -> Iterator[str]:
        """Every step, evaluation and event as CSV text in chunks (`CSV_HEADER`; JSON in the last three
        columns); closes the reader at the end."""
        buf = io.StringIO()
        out = csv.writer(buf, lineterminator="\n")

        def flush() -> str:
            text = buf.getvalue()
            buf.seek(0)
            buf.truncate()
            return text

        def step_line(r: dict[str, Any], figures: str) -> list:
            return ["train", r["step"], r.get("epoch", ""), r["loss"], r["accuracy"], r.get("learning_rate", ""),
                    r.get("time", ""), "", "", figures]  # fmt: skip

        def other_line(kind: str, e: dict[str, Any]) -> list:
            if kind == "events":
                return ["event", e["step"], "", "", "", "", e.get("time", ""), _json(e.get("changes", {})), "", ""]
            return [e.get("split", "test"), e["step"], e.get("epoch", ""), e.get("loss"), e.get("accuracy"), "",
                    e.get("time", ""), "", _json(e.get("per_class_accuracy")), ""]  # fmt: skip

        try:
            out.writerow(CSV_HEADER)
            after = -1
            while self.db is not None:
                rows = self._query(f"SELECT {STEP_COLUMNS}, {'layers' if layers else 'NULL'} FROM steps "  # noqa: S608
                                   "WHERE step > ? ORDER BY step LIMIT 5000", (after,))
                for r in rows:
                    out.writerow(step_line(_step_row(r[:7]), r[7] or ""))
                yield flush()
                if len(rows) < 5000:
                    break
                after = rows[-1][0]
            for s in self.pending["steps"]:
                figures = {k: s[k] for k in LAYER_FIELDS if k in s}
                out.writerow(step_line(s, _json(figures) if layers and figures else ""))
            for kind in ("evaluations", "events"):
                for (body,) in self._query(f"SELECT body FROM {kind} ORDER BY id"):  # noqa: S608
                    out.writerow(other_line(kind, json.loads(body)))
                for e in self.pending[kind]:
                    out.writerow(other_line(kind, e))
            yield flush()
        finally:
            self.close()
