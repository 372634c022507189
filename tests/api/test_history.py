"""The history in SQLite (app.stores.history): appended per save and kept whole, cut to the checkpoint's
step on load, downsampled with its extremes (against a naive per-bucket oracle), paged, as CSV, copied
with a model, migrated from history.json, counted by the quota."""

from __future__ import annotations

import copy
import csv
import io
import json
import math
import random
import sqlite3

import pytest

from app.quota import folder_bytes
from app.stores.history import DB_NAME, WIDTHS, History
from engine.checkpoint import load_checkpoint
from tests.api.conftest import SMALL_SPEC, open_client

API = "/api/v1"
LAYERS = {"grad_norm": {"0": 0.5, "3": 0.25}, "update_ratio": {"0": 0.001, "3": 0.002}}


def step_rows(first: int, last: int, seed: int = 0, layers: bool = True) -> list[dict]:
    """Noisy decreasing losses with a spike every 997 steps and a dip every 1499; accuracies in tenths."""
    rng = random.Random(seed)
    out = []
    for s in range(first, last + 1):
        loss = 2.0 / math.sqrt(s) + rng.random() * 0.1 + (5.0 if s % 997 == 0 else 0.0) - (0.5 if s % 1499 == 0 else 0.0)
        row = {"step": s, "loss": loss, "accuracy": rng.randrange(11) / 10, "learning_rate": 0.01, "epoch": s // 100,
               "time": 1.7e9 + s}
        out.append(row | (LAYERS if layers and s % 3 == 0 else {}))
    return out


def naive_picks(rows: list[dict], width: int) -> list[int]:
    """The oracle: per range of ``width`` steps, the first, last, lowest and highest loss and accuracy (earliest on ties)."""
    by: dict[int, list[dict]] = {}
    for r in rows:
        by.setdefault(r["step"] // width, []).append(r)
    keep = set()
    for group in by.values():
        keep |= {group[0]["step"], group[-1]["step"]}
        for key in ("loss", "accuracy"):
            valued = [r for r in group if r[key] is not None]
            if valued:
                keep.add(min(valued, key=lambda r: (r[key], r["step"]))["step"])
                keep.add(min(valued, key=lambda r: (-r[key], r["step"]))["step"])
    return sorted(keep)


def grid_width(first: int, last: int, points: int) -> int:
    """The bucket width of a downsampled answer: at least span / (points / 6 - 1), a multiple of the widest
    stored width at most an eighth of that."""
    target = -(-(last - first + 1) // (points // 6 - 1))
    base = max(w for w in WIDTHS if w <= max(target // 8, 4))
    return base * -(-target // base)


def buckets(path, series: str = "steps") -> list[tuple]:
    with sqlite3.connect(path) as db:
        return db.execute("SELECT * FROM buckets WHERE series = ? ORDER BY width, bucket", (series,)).fetchall()


def naive_buckets(rows: list[dict], series: str = "steps", at: str = "step") -> list[tuple]:
    """The oracle for the buckets table: every width, every range, from the rows themselves (in order)."""
    out = []
    for width in WIDTHS:
        by: dict[int, list[dict]] = {}
        for r in rows:
            by.setdefault(r["step"] // width, []).append(r)
        for key, group in sorted(by.items()):
            row = [series, width, key, len(group), group[0][at], group[-1][at]]
            for name in ("loss", "accuracy"):
                valued = [(i, r) for i, r in enumerate(group) if r[name] is not None]
                lo = min(valued, key=lambda p: (p[1][name], p[0]))[1]
                hi = min(valued, key=lambda p: (-p[1][name], p[0]))[1]
                row += [lo[name], lo[at], hi[name], hi[at]]
            out.append(tuple(row))
    return out


def read(history: History, **kw) -> dict:
    with history.reader() as r:
        return r.page(kw.get("from_step", 0), kw.get("limit", 10**9), True) if "from_step" in kw else r.downsampled(kw["points"], True)


# ---- the store ------------------------------------------------------------------------------------


def test_buckets_appended_in_chunks_equal_one_rebuild_and_a_cut_keeps_them_right(tmp_path):
    """Appending across many commits (ranges split between them) and cutting back keeps every bucket what
    the rows say (computed the slow, obvious way)."""
    rows = step_rows(1, 3000, seed=1)
    rows[700]["loss"] = None  # a non-finite loss, stored as null
    h, path, rng, i = History(), tmp_path / DB_NAME, random.Random(2), 0
    while i < len(rows):
        n = rng.choice((1, 3, 64, 500))
        h.add_steps(rows[i:i + n])
        h.commit(path)
        i += n
    assert buckets(path) == naive_buckets(rows)
    assert h.total_steps == 3000 and h.last_step == rows[-1]
    cut = History.open(path, 2345)  # a save committed the history, then the kill came before its checkpoint
    assert cut.total_steps == 2345 and cut.last_step["step"] == 2345
    assert buckets(path) == naive_buckets(rows[:2345])


def test_evaluation_buckets_per_split_follow_appends_and_cuts(tmp_path):
    rng = random.Random(3)
    evals = [{"step": s, "split": split, "loss": rng.random(), "accuracy": rng.random()}
             for s in range(0, 5000, 7) for split in ("test", "train") if rng.random() < 0.8]
    h, path = History(), tmp_path / DB_NAME
    for i in range(0, len(evals), 300):
        for e in evals[i:i + 300]:
            h.add("evaluations", e)
        h.commit(path)
    for e, i in zip(evals, range(1, len(evals) + 1)):
        e["id"] = i
    for split in ("test", "train"):
        mine = [e for e in evals if e["split"] == split]
        assert buckets(path, f"evaluations:{split}") == naive_buckets(mine, f"evaluations:{split}", "id")
    History.open(path, 3000)
    for split in ("test", "train"):
        mine = [e for e in evals if e["split"] == split and e["step"] <= 3000]
        assert buckets(path, f"evaluations:{split}") == naive_buckets(mine, f"evaluations:{split}", "id")


@pytest.mark.parametrize("points", [12, 100, 1000])
def test_downsampled_steps_are_the_oracles_picks_with_saved_and_unsaved_rows(tmp_path, points):
    rows = step_rows(1, 20_000)
    h = History(steps=rows[:15_000])
    h.commit(tmp_path / DB_NAME)
    h.add_steps(rows[15_000:])  # not saved yet: read from memory
    got = read(h, points=points)
    width = grid_width(1, 20_000, points)
    assert [s["step"] for s in got["steps"]] == naive_picks(rows, width)
    assert len(got["steps"]) <= points and got["downsampled"] and got["total_steps"] == 20_000
    assert got["steps"][0] == rows[0] and got["steps"][-1] == rows[-1]  # whole rows, per-layer figures too
    spikes = [r["step"] for r in rows if r["step"] % 997 == 0]
    assert set(spikes) <= {s["step"] for s in got["steps"]} or points < 6 * len(spikes)


def test_a_short_history_is_sent_whole_and_pages_cover_everything_once(tmp_path):
    rows = step_rows(1, 250)
    evals = [{"step": s, "split": "test", "loss": 1.0 / (s + 1), "accuracy": 0.5, "per_class_accuracy": [0.5, None], "time": 1.0}
             for s in range(0, 251, 25)]
    events = [{"step": 0, "time": 1.0, "changes": {"learning_rate": 0.1}}, {"step": 120, "time": 2.0, "changes": {"frozen": [0]}}]
    h = History(steps=rows[:200], evaluations=evals[:5], events=events[:1])
    h.commit(tmp_path / DB_NAME)
    for r in rows[200:]:
        h.add("steps", r)
    for e in evals[5:]:
        h.add("evaluations", e)
    h.add("events", events[1])
    whole = read(h, points=1000)
    assert (whole["steps"], whole["evaluations"], whole["events"]) == (rows, evals, events) and not whole["downsampled"]
    pages, start = [], 0
    while start is not None:
        page = read(h, from_step=start, limit=70)
        pages.append(page)
        start = page["next_from_step"]
    assert [s for p in pages for s in p["steps"]] == rows and len(pages) == 4
    assert [e for p in pages for e in p["evaluations"]] == evals and [e for p in pages for e in p["events"]] == events


def test_many_evaluations_and_events_are_thinned_per_split(tmp_path):
    evals = [{"step": s, "split": split, "loss": 1.0 / s, "accuracy": 0.5, "time": 1.0}
             for s in range(100, 100_001, 100) for split in ("test", "train")]
    h = History(evaluations=evals, events=[{"step": s, "changes": {"x": s}} for s in range(5000)])
    got = read(h, points=1200)
    assert 0 < len(got["evaluations"]) <= 200 and 0 < len(got["events"]) <= 120
    assert {e["split"] for e in got["evaluations"]} == {"test", "train"}
    assert got["evaluations"][0] == evals[0] and got["evaluations"][-1] == evals[-1]


def test_a_copy_keeps_the_history_as_it_was_when_copied(tmp_path):
    rows = step_rows(1, 60)
    src = History(steps=rows[:40], evaluations=[{"step": 40, "split": "test", "loss": 1.0, "accuracy": 0.5}])
    src.commit(tmp_path / "a.sqlite")
    src.add_steps(rows[40:45])
    twin = copy.deepcopy(src)
    src.add_steps(rows[45:])
    src.add("evaluations", {"step": 60, "split": "test", "loss": 0.5, "accuracy": 0.6})
    src.commit(tmp_path / "a.sqlite")  # the source trains on before the copy is written
    twin.commit(tmp_path / "b.sqlite")
    got = read(twin, from_step=0)
    assert got["steps"] == rows[:45] and [e["step"] for e in got["evaluations"]] == [40]
    assert len(read(src, from_step=0)["steps"]) == 60


def test_reset_replaces_the_history_in_the_same_commit(tmp_path):
    h = History(steps=step_rows(1, 50))
    h.commit(tmp_path / DB_NAME)
    h.reset_to({"steps": [], "evaluations": [], "events": []})
    assert h.total_steps == 0 and h.last_step is None and read(h, points=100)["steps"] == []
    h.commit(tmp_path / DB_NAME)
    assert History.open(tmp_path / DB_NAME, 50).total_steps == 0 and buckets(tmp_path / DB_NAME) == []


# ---- through the API ------------------------------------------------------------------------------


def test_the_route_downsamples_pages_and_writes_csv(client, small_model):
    mid = small_model["id"]
    client.post(f"{API}/models/{mid}/train", json={"steps": 30, "batch_size": 2})
    client.post(f"{API}/models/{mid}/evaluate", json={"max_examples": 8})
    plain = client.get(f"{API}/models/{mid}/history").json()
    assert [s["step"] for s in plain["steps"]] == list(range(1, 31)) and not plain["downsampled"] and plain["step"] == 30
    assert "grad_norm" not in plain["steps"][0] and set(plain) >= {"steps", "evaluations", "events"}
    small = client.get(f"{API}/models/{mid}/history?points=12&layers=true").json()
    assert len(small["steps"]) <= 12 and small["downsampled"] and "grad_norm" in small["steps"][0]
    page = client.get(f"{API}/models/{mid}/history?from_step=5&limit=10").json()
    assert [s["step"] for s in page["steps"]] == list(range(5, 15)) and page["next_from_step"] == 15
    r = client.get(f"{API}/models/{mid}/history?format=csv&layers=true")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"]
    table = list(csv.DictReader(io.StringIO(r.text)))
    assert [int(t["step"]) for t in table if t["split"] == "train"] == list(range(1, 31))
    assert json.loads(table[0]["layers"])["grad_norm"].keys() == {"0", "3", "7"}
    assert [t["split"] for t in table[30:]] == ["test", "event"]  # the evaluation, the batch_size event
    assert float(table[0]["loss"]) == plain["steps"][0]["loss"]
    for bad in ("points=5", "limit=0", "from_step=-1", "format=xml"):
        assert client.get(f"{API}/models/{mid}/history?{bad}").status_code == 422


def test_history_is_appended_per_save_and_survives_a_restart(settings):
    with open_client(settings) as c:
        mid = c.post(f"{API}/models", json={"spec": SMALL_SPEC}).json()["id"]
        for _ in range(3):
            c.post(f"{API}/models/{mid}/train", json={"steps": 4, "batch_size": 2})
        assert not (settings.models_dir / mid / "history.json").exists()
        with sqlite3.connect(settings.models_dir / mid / DB_NAME) as db:
            assert db.execute("SELECT count(*) FROM steps").fetchone()[0] == 12
            assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        before = c.get(f"{API}/models/{mid}/history?layers=true").json()
        copied = c.post(f"{API}/models", json={"from": mid}).json()["id"]
    with open_client(settings) as c:
        assert c.get(f"{API}/models/{mid}/history?layers=true").json() == before
        assert c.get(f"{API}/models/{copied}/history?layers=true").json()["steps"] == before["steps"]


def test_an_old_history_json_is_migrated_on_start_losing_nothing(settings):
    with open_client(settings) as c:
        mid = c.post(f"{API}/models", json={"spec": SMALL_SPEC}).json()["id"]
        c.post(f"{API}/models/{mid}/train", json={"steps": 3, "batch_size": 2})
    folder = settings.models_dir / mid
    step = load_checkpoint(folder / "checkpoint.npz").step
    old = {"steps": step_rows(1, step + 2),  # two steps past the checkpoint: dropped, as before
           "evaluations": [{"step": 2, "split": "test", "loss": 1.5, "accuracy": 0.25, "per_class_accuracy": [0.5], "time": 9.0}],
           "events": [{"step": 0, "time": 8.0, "changes": {"learning_rate": 0.2}}]}
    old["steps"][1]["note"] = "an extra field of some older version"
    (folder / DB_NAME).unlink()
    (folder / "history.json").write_text(json.dumps(old))
    with open_client(settings) as c:
        got = c.get(f"{API}/models/{mid}/history?layers=true").json()
    assert got["steps"] == old["steps"][:step] and got["evaluations"] == old["evaluations"] and got["events"] == old["events"]
    assert not (folder / "history.json").exists() and (folder / DB_NAME).exists()
    # killed after the import's commit, before the file was removed: the next start removes it, adds nothing
    (folder / "history.json").write_text(json.dumps(old))
    with open_client(settings) as c:
        assert c.get(f"{API}/models/{mid}/history?layers=true").json()["steps"] == got["steps"]
    assert not (folder / "history.json").exists()


def test_the_quota_counts_the_history_database(settings):
    from app.quota import Quota

    with open_client(settings) as c:
        mid = c.post(f"{API}/models", json={"spec": SMALL_SPEC}).json()["id"]
        c.post(f"{API}/models/{mid}/train", json={"steps": 50, "batch_size": 2})
    db = settings.models_dir / mid / DB_NAME
    assert db.stat().st_size > 0
    assert Quota(settings).used_bytes() == folder_bytes(settings.data_dir) >= db.stat().st_size
    with open_client(settings.__class__(**{**settings.__dict__, "max_data_bytes": folder_bytes(settings.data_dir) + 1})) as c:
        assert c.post(f"{API}/models", json={"spec": SMALL_SPEC}).status_code == 507
