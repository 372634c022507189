"""Downsampling: the ``buckets`` table's ranges of steps, how they are folded and merged, and which
rows a downsampled read picks from them.

For the steps and for each split's evaluations, and each width of 4, 8, ... 2**20 steps, ``buckets``
holds every range of that width (``bucket = step // width``): its row count, first and last row, and
the rows where loss and accuracy were lowest and highest. A commit recomputes the ranges from its
first new step on, each width folded from the one below (about two merges per new row). A downsampled
read merges a few hundred or thousand stored ranges into at most ``points / 6`` and fetches their (at
most six) chosen rows by primary key: milliseconds, however long the history. Events, made by people,
are few: they are thinned in Python.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

WIDTHS = tuple(2**k for k in range(2, 21))  # bucket widths in steps; past 2**20 * points / 6 steps Python merges more
PICKS = 6  # rows a bucket contributes at most: first, last, lowest and highest loss and accuracy

# A series: "steps", or "evaluations:{split}". An aggregate: (n, first, last, lo_loss, lo_loss_at, hi_loss,
# hi_loss_at, lo_acc, lo_acc_at, hi_acc, hi_acc_at); "at" names a row: its step in ``steps``, its id in
# ``evaluations``, and -1 - index for a row not saved yet.
STEPS, EVALS = "steps", "evaluations:"

# ---- ranges in memory ---------------------------------------------------------------------------------


def fold_rows(rows: Iterable[tuple], width: int) -> list[tuple[int, tuple]]:
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


def fold(pairs: Iterable[tuple[int, tuple]]) -> list[tuple[int, tuple]]:
    """``[(key, aggregate)]`` in order -> one aggregate per run of equal keys."""
    out: list[tuple[int, tuple]] = []
    for key, agg in pairs:
        if out and out[-1][0] == key:
            out[-1] = (key, _merge(out[-1][1], agg))
        else:
            out.append((key, agg))
    return out


def picks_of(agg: tuple) -> set[int]:
    return {agg[i] for i in (1, 2, 4, 6, 8, 10) if agg[i] is not None}


def grid(first: int, last: int, points: int, widths: tuple[int, ...] = ()) -> tuple[int, int]:
    """``(base, ratio)``: buckets of ``base * ratio`` steps, wide enough to cut ``first..last`` into at most
    ``points // PICKS - 1`` whole buckets and a partial one (so at most ``points`` picks), read as stored
    buckets of ``base`` steps merged ``ratio`` at a time. ``base`` is the widest of ``widths`` at most an
    eighth of the width needed, so the buckets are within about 12 % of it (1 with no ``widths``)."""
    target = -(-(last - first + 1) // max(1, points // PICKS - 1))
    base = max((w for w in widths if w <= max(target // 8, widths[0])), default=1)
    return base, -(-target // base)


def thin(steps: list[int], points: int) -> list[int]:
    """Indices of ``steps`` (events) to keep, in order: all when they fit in ``points``, else the first and
    last of each bucket of steps."""
    if len(steps) <= points:
        return list(range(len(steps)))
    order = sorted(range(len(steps)), key=steps.__getitem__)
    aggs = fold_rows(((steps[i], i, None, None) for i in order), grid(steps[order[0]], steps[order[-1]], points)[1])
    return sorted(set().union(*(picks_of(a) for _, a in aggs)))


# ---- the buckets table --------------------------------------------------------------------------------


def _points(db: sqlite3.Connection, series: str, start: int) -> Iterable[tuple]:
    """``(step, at, loss, accuracy)`` of a series from step ``start`` on, in order."""
    if series == STEPS:
        return db.execute("SELECT step, step, loss, accuracy FROM steps WHERE step >= ? ORDER BY step", (start,))
    return db.execute("SELECT step, id, loss, accuracy FROM evaluations WHERE split = ? AND step >= ? ORDER BY step, id",
                      (series[len(EVALS):], start))  # fmt: skip


def read_buckets(db: sqlite3.Connection, series: str, width: int, start: int) -> list[tuple[int, tuple]]:
    rows = db.execute("SELECT * FROM buckets WHERE series = ? AND width = ? AND bucket >= ? ORDER BY bucket",
                      (series, width, start))  # fmt: skip
    return [(r[2], tuple(r[3:])) for r in rows]


def rebuild(db: sqlite3.Connection, series: str, start: int) -> None:
    """Recompute every bucket of ``series`` that holds a step from ``start`` on (inside the caller's
    transaction): the narrowest width from the rows, each wider one from the one below."""
    below = None
    for width in WIDTHS:
        key = start // width
        db.execute("DELETE FROM buckets WHERE series = ? AND width = ? AND bucket >= ?", (series, width, key))
        if below is None:
            folded = fold_rows(_points(db, series, key * width), width)
        else:
            ratio = width // below
            folded = fold((k // ratio, agg) for k, agg in read_buckets(db, series, below, key * ratio))
        db.executemany("INSERT INTO buckets VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)", [(series, width, k, *agg) for k, agg in folded])
        below = width


def count(db: sqlite3.Connection, series: str) -> int:
    """Rows of a series, from its widest buckets (a row or two)."""
    return db.execute("SELECT coalesce(sum(n), 0) FROM buckets WHERE series = ? AND width = ?", (series, WIDTHS[-1])).fetchone()[0]
