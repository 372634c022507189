"""The reader: `HistoryReader`, a consistent view of one model's history for one request: downsampled
series that keep minima and maxima, pages of every step, and CSV.

Readers (`History.reader`, made while holding the model's lock) open the database in a read
transaction, which WAL keeps consistent while saves go on, and copy the unsaved rows, so the
model's lock is held for microseconds only.
"""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from app.stores.history.buckets import (
    EVALS,
    PICKS,
    STEPS,
    WIDTHS,
    count,
    fold,
    fold_rows,
    grid,
    picks_of,
    read_buckets,
    thin,
)
from app.stores.history.schema import LAYER_FIELDS, STEP_COLUMNS, connect, dumps, num, plain, split_of, step_row

if TYPE_CHECKING:
    from app.stores.history.store import History

CSV_HEADER = ("split", "step", "epoch", "loss", "accuracy", "learning_rate", "time", "changes", "per_class_accuracy", "layers")


class HistoryReader:
    """The stored rows in one read transaction (WAL keeps them as they were while saves go on) and a
    copy of the unsaved ones. Close it (or use it in ``with``) when done."""

    def __init__(self, history: History):
        self.pending = {kind: list(rows) for kind, rows in history.pending.items()}
        self.db: sqlite3.Connection | None = None
        if history.path is not None and not history._cleared:
            try:
                self.db = connect(history.path, create=False)
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
        return [step_row(r[:7], r[7]) for r in sorted(out)]

    def _bodies(self, kind: str, ids: list[int]) -> dict[int, dict[str, Any]]:
        out = {}
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            rows = self._query(f"SELECT id, body FROM {kind} WHERE id IN ({','.join('?' * len(chunk))})", tuple(chunk))  # noqa: S608
            out.update((r[0], json.loads(r[1])) for r in rows)
        return out

    def total_steps(self) -> int:
        return (count(self.db, STEPS) if self.db is not None else 0) + len(self.pending["steps"])

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
        into wider ones (`grid`), with the unsaved rows' buckets."""
        stored = count(self.db, series) if self.db is not None else 0
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
        base, ratio = grid(first, last, points, WIDTHS)
        aggs = [(k // ratio, a) for k, a in read_buckets(self.db, series, base, first // base)] if stored else []
        order = sorted(range(len(pending)), key=lambda i: pending[i][0])
        unsaved = ((pending[i][0], -1 - i, num(pending[i][1]), num(pending[i][2])) for i in order)
        aggs += [(k // ratio, a) for k, a in fold_rows(unsaved, base)]
        picks = set().union(*(picks_of(a) for _, a in fold(sorted(aggs, key=lambda p: p[0]))))
        return sorted(p for p in picks if p >= 0), sorted(-1 - p for p in picks if p < 0)

    def _steps(self, points: int, layers: bool) -> tuple[list[dict[str, Any]], bool]:
        pending = self.pending["steps"]
        keep = pending if layers else [plain(s) for s in pending]
        chosen = self._choose(STEPS, points, [(s["step"], s.get("loss"), s.get("accuracy")) for s in pending])
        if chosen is None:
            rows = self._query(f"SELECT {STEP_COLUMNS}, {'layers' if layers else 'NULL'} FROM steps ORDER BY step")  # noqa: S608
            return [step_row(r[:7], r[7]) for r in rows] + keep, False
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
        return sorted(set(found) | {split_of(e) for e in self.pending["evaluations"]})

    def _evaluations(self, points: int) -> tuple[list[dict[str, Any]], bool]:
        pending = self.pending["evaluations"]
        splits = self._splits()
        stored = sum(count(self.db, EVALS + s) for s in splits) if self.db is not None else 0
        if stored + len(pending) <= points:
            return [json.loads(r[0]) for r in self._query("SELECT body FROM evaluations ORDER BY id")] + pending, False
        ids, idx = [], []
        for split in splits:
            mine = [i for i, e in enumerate(pending) if split_of(e) == split]
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
        keep = thin([r[1] for r in stored] + [e["step"] for e in pending], points)
        bodies = self._bodies("events", [stored[i][0] for i in keep if i < len(stored)])
        return [bodies[stored[i][0]] if i < len(stored) else pending[i - len(stored)] for i in keep], len(keep) < len(stored) + len(pending)

    # ---- full data: pages and CSV -------------------------------------------------------------------
    def page(self, from_step: int, limit: int, layers: bool) -> dict[str, Any]:
        """Every step from ``from_step`` on, ``limit`` at most, with the evaluations and events of the same
        steps; ``next_from_step`` is where the next page starts (None after the last)."""
        cols = f"{STEP_COLUMNS}, {'layers' if layers else 'NULL'}"
        rows = [step_row(r[:7], r[7]) for r in self._query(
            f"SELECT {cols} FROM steps WHERE step >= ? ORDER BY step LIMIT ?", (from_step, limit + 1))]  # noqa: S608
        rows += [s if layers else plain(s) for s in self.pending["steps"] if s["step"] >= from_step]
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
                return ["event", e["step"], "", "", "", "", e.get("time", ""), dumps(e.get("changes", {})), "", ""]
            return [e.get("split", "test"), e["step"], e.get("epoch", ""), e.get("loss"), e.get("accuracy"), "",
                    e.get("time", ""), "", dumps(e.get("per_class_accuracy")), ""]  # fmt: skip

        try:
            out.writerow(CSV_HEADER)
            after = -1
            while self.db is not None:
                rows = self._query(f"SELECT {STEP_COLUMNS}, {'layers' if layers else 'NULL'} FROM steps "  # noqa: S608
                                   "WHERE step > ? ORDER BY step LIMIT 5000", (after,))
                for r in rows:
                    out.writerow(step_line(step_row(r[:7]), r[7] or ""))
                yield flush()
                if len(rows) < 5000:
                    break
                after = rows[-1][0]
            for s in self.pending["steps"]:
                figures = {k: s[k] for k in LAYER_FIELDS if k in s}
                out.writerow(step_line(s, dumps(figures) if layers and figures else ""))
            for kind in ("evaluations", "events"):
                for (body,) in self._query(f"SELECT body FROM {kind} ORDER BY id"):  # noqa: S608
                    out.writerow(other_line(kind, json.loads(body)))
                for e in self.pending[kind]:
                    out.writerow(other_line(kind, e))
            yield flush()
        finally:
            self.close()
