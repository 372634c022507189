"""History that grows without slowing: ``python -m bench history``.

In a temporary data directory, two LeNet-5 models (momentum buffers, so a save writes the optimizer
state too): one with a hundred recorded steps, one with a million, each step with the trainer's
per-layer figures (grad_norm and update_ratio per weighted layer, dead_relu every tenth step) and an
evaluation every 100 steps (the page's live training). The million go in by ``executemany`` in
commits of 100,000 (the rate is printed). Then:

- a save as live training makes one every 5 s (`ModelStore.save`: the history's new rows, optimizer,
  checkpoint) after 1,500 new steps (5 s at 300 steps/s), on both models, interleaved, each cut back
  afterwards (untimed) so both stay at their size. Target: a save with a million steps costs at most
  twice one with a hundred.
- the page's history requests to a real server (``cnnvis serve`` on 127.0.0.1, the bytes of the
  answer as sent: no compression on loopback): GET .../history and .../history?layers=true.
  Target: under 100 ms and 200 KB each.
- full data, for the record: a page of 10,000 steps, and the whole history as CSV.
"""

from __future__ import annotations

import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from bench.server import Server

BIG, SMALL, APPEND = 1_000_000, 100, 1500
CHUNK = 100_000
TARGETS = {"save_ratio": 2.0, "request_ms": 100.0, "request_kb": 200.0}


def _model():
    from engine.model import Model
    from engine.presets import preset_spec

    model = Model.build(preset_spec("lenet5", (1, 28, 28), 10), seed=0)
    weighted = [str(i) for i, layer in enumerate(model.layers) if layer.params]
    relus = [str(info.index) for info in model.info if info.type == "relu"]
    return model, weighted, relus


def _steps(first: int, last: int, weighted: list[str], relus: list[str], rng: random.Random) -> list[dict[str, Any]]:
    """Steps shaped like `app.services.training.record_steps`'s, with noisy falling losses."""
    out = []
    for s in range(first, last + 1):
        row = {"step": s, "loss": 2.3 / (1 + s / 5000) + rng.random() * 0.2, "accuracy": rng.randrange(33) / 32,
               "learning_rate": 0.05, "epoch": s * 32 // 60000, "time": 1.7e9 + s / 300,
               "grad_norm": {i: rng.random() for i in weighted}, "update_ratio": {i: rng.random() * 2e-3 for i in weighted}}
        if s % 10 == 0:
            row["dead_relu"] = {i: rng.random() * 0.1 for i in relus}
        out.append(row)
    return out


def _evaluations(first: int, last: int, rng: random.Random) -> list[dict[str, Any]]:
    return [{"step": s, "split": "test", "loss": 1 / (1 + s / 5000), "accuracy": rng.random(),
             "per_class_accuracy": [rng.random() for _ in range(10)], "time": 1.7e9 + s / 300}
            for s in range(first - first % 100 + 100, last + 1, 100)]  # fmt: skip


def _build(store, name: str, steps: int, weighted, relus, rng) -> tuple[Any, float]:
    """A saved model with ``steps`` recorded steps; returns it and the seconds its history took to insert."""
    from app.stores import ModelRecord
    from app.stores.history import DB_NAME

    model, _, _ = _model()
    rec = ModelRecord(id=name, name=name, model=model, classes=[str(i) for i in range(10)], dataset="digits")
    rec.optimizer_state = {k: np.zeros_like(v) for k, v in model.params.items()}
    store.add(rec)
    path = store.root / name / DB_NAME
    seconds = 0.0
    for first in range(1, steps + 1, CHUNK):
        last = min(steps, first + CHUNK - 1)
        rows, evals = _steps(first, last, weighted, relus, rng), _evaluations(first, last, rng)
        t0 = time.perf_counter()
        rec.history.add_steps(rows)
        for e in evals:
            rec.history.add("evaluations", e)
        rec.history.commit(path)
        seconds += time.perf_counter() - t0
    rec.history.add("events", {"step": steps // 2, "time": 1.7e9, "changes": {"learning_rate": 0.05}})
    rec.step = steps
    store.save(rec)
    return rec, seconds


def _timed_save(store, rec, weighted, relus, rng) -> tuple[float, float]:
    """ms of the history commit and of the whole save after APPEND new steps; then cut back (untimed)."""
    from app.stores.history import DB_NAME, History

    path = store.root / rec.id / DB_NAME
    start = rec.step
    rec.history.add_steps(_steps(start + 1, start + APPEND, weighted, relus, rng))
    rec.step = start + APPEND
    t0 = time.perf_counter()
    rec.history.commit(path)  # what `store.save` does first; timed apart to show the history's share
    t1 = time.perf_counter()
    store.save(rec)
    t2 = time.perf_counter()
    rec.step = start
    rec.history = History.open(path, start)  # the cut a restart makes after a kill: back to the same size
    return (t1 - t0) * 1e3, (t2 - t0) * 1e3


def _requests(base: str, path: str, rounds: int) -> dict[str, float]:
    with httpx.Client(timeout=60) as c:
        c.get(base + path)  # warm-up
        times, size = [], 0
        for _ in range(rounds):
            t0 = time.perf_counter()
            r = c.get(base + path)
            times.append((time.perf_counter() - t0) * 1e3)
            r.raise_for_status()
            size = len(r.content)
    return {"p50_ms": round(statistics.median(times), 1), "max_ms": round(max(times), 1), "kb": round(size / 1000, 1)}


def run(rounds: int = 15) -> dict[str, Any]:
    from app.config import Settings
    from app.stores import ModelStore
    from app.stores.history import DB_NAME

    rng = random.Random(0)
    _, weighted, relus = _model()
    out: dict[str, Any] = {"targets": TARGETS, "append": APPEND}
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        store = ModelStore(Settings(data_dir=data, pretrained_dir=Path(tmp) / "none"))
        store.load()
        small, _ = _build(store, "small", SMALL, weighted, relus, rng)
        big, seconds = _build(store, "big", BIG, weighted, relus, rng)
        out["insert"] = {"steps": BIG, "seconds": round(seconds, 1), "steps_per_second": round(BIG / seconds),
                         "db_mb": round((store.root / "big" / DB_NAME).stat().st_size / 1e6, 1)}
        saves: dict[str, list[tuple[float, float]]] = {"small": [], "big": []}
        for _ in range(rounds):  # interleaved: the shared box's noise hits both alike
            for name, rec in (("small", small), ("big", big)):
                saves[name].append(_timed_save(store, rec, weighted, relus, rng))
        for name in saves:
            out[f"save_{name}"] = {"steps": SMALL if name == "small" else BIG,
                                   "commit_ms": round(statistics.median(t[0] for t in saves[name]), 2),
                                   "save_ms": round(statistics.median(t[1] for t in saves[name]), 2)}
        out["save_ratio"] = round(out["save_big"]["save_ms"] / out["save_small"]["save_ms"], 2)
        out["commit_ratio"] = round(out["save_big"]["commit_ms"] / out["save_small"]["commit_ms"], 2)
        server = Server(data, Path(tmp) / "none")
        server.start()
        try:
            api = "/api/v1/models/big/history"
            out["requests"] = {
                "page: /history": _requests(server.base, api, rounds * 2),
                "page: /history?layers=true": _requests(server.base, api + "?layers=true", rounds * 2),
                "small model: /history": _requests(server.base, "/api/v1/models/small/history", rounds * 2),
                "a page: ?from_step=500000&limit=10000": _requests(server.base, api + "?from_step=500000&limit=10000", 3),
                "everything: ?format=csv": _requests(server.base, api + "?format=csv", 1),
            }
        finally:
            server.stop()
    return out


def table(report: dict[str, Any]) -> str:
    t, ins = report["targets"], report["insert"]
    s, b = report["save_small"], report["save_big"]
    lines = [
        f"History of a LeNet-5: {b['steps']:,} steps vs {s['steps']:,} (per-layer figures, an evaluation every 100 steps)",
        f"insert {ins['steps']:,} steps (executemany, commits of {CHUNK:,}): {ins['seconds']} s, "
        f"{ins['steps_per_second']:,} steps/s; database {ins['db_mb']} MB",
        "",
        f"a save after {report['append']:,} new steps (medians)   {s['steps']:>8,} steps {b['steps']:>12,} steps {'ratio':>7} {'target':>8}",
        f"{'  history commit ms':<44}{s['commit_ms']:>15.2f}{b['commit_ms']:>19.2f}{report['commit_ratio']:>8.2f}",
        f"{'  whole save ms (history, optimizer, ckpt)':<44}{s['save_ms']:>15.2f}{b['save_ms']:>19.2f}"
        f"{report['save_ratio']:>8.2f}{'<= ' + str(t['save_ratio']):>9}",
        "",
        f"{'request (real server, 127.0.0.1)':<44}{'p50 ms':>9}{'max ms':>9}{'KB':>9}   target",
    ]
    for name, r in report["requests"].items():
        target = f"< {t['request_ms']:.0f} ms, < {t['request_kb']:.0f} KB" if name.startswith("page") else ""
        lines.append(f"  {name:<42}{r['p50_ms']:>9.1f}{r['max_ms']:>9.1f}{r['kb']:>9.1f}   {target}")
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    print(table(run()))
