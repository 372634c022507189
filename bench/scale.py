"""Concurrent live trainings, three ways: ``python -m bench scale``.

Steps per second of 1, 2 and 4 LeNet-5 trainings on digits (batch 32) at once, per trainer and in all:

- **threads**: engine `Trainer`s in threads of one process (what the server did before worker
  processes): they share one interpreter lock.
- **processes**: a real ``python -m app serve`` (`bench.server.Server`), the models playing over their
  WebSockets as `bench.load.Trainer` does; each training runs in a worker process.
- **ray**: the same server with ``CNNVIS_RAY=auto`` (what ``cnnvis serve --ray auto`` sets): a local
  Ray started by the server, each training a Ray actor. Skipped, with a note, without Ray.

Both servers stay up for the whole run and the three modes take turns, window by window, so a burst
of load from elsewhere on a shared machine falls on all of them; each figure is the best of
``rounds`` windows. A server's rate is read from the step numbers of its progress messages over
``seconds`` after a ``warmup``. Memory: the proportional set size (PSS, so shared libraries are not
counted twice) of the server and every process under it (workers; for Ray also its GCS, raylet and
actors) while the trainings play, from /proc. Compare figures of one run, not across runs.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import shutil
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from bench.load import BATCH, Trainer
from bench.server import Server

API = "/api/v1"
COUNTS = (1, 2, 4)
MODES = ("threads", "processes", "ray")


def _pss_mb(pid: int) -> float:
    """A process's PSS (RSS where the kernel has no smaps_rollup), in MB; 0 if it has gone."""
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
        key = "Pss:"
    except FileNotFoundError:
        return 0.0
    except OSError:
        text, key = Path(f"/proc/{pid}/status").read_text(), "VmRSS:"
    line = next((ln for ln in text.splitlines() if ln.startswith(key)), None)
    return int(line.split()[1]) / 1024 if line else 0.0


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _tree(pid: int) -> list[int]:
    """``pid`` and all its descendants, from /proc."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if fields[0] != "Z":
            parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += parents.get(p, [])
    return out


def _digits(data: Path) -> None:
    """Generate the digits dataset into ``data`` once (every configuration copies it)."""
    from app.config import Settings
    from app.stores import DatasetStore

    DatasetStore(Settings(data_dir=data)).get("digits")


# ---- (a) threads in one process ----------------------------------------------------------------
def _threads(data: Path, n: int, seconds: float, warmup: float) -> dict[str, Any]:
    from app.config import Settings
    from app.stores import DatasetStore
    from engine.model import Model
    from engine.presets import PRESETS, preset_spec
    from engine.train import Hyperparameters, Trainer as EngineTrainer

    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # the bench extra has it; without it BLAS keeps the threads the environment gave it
        threadpool_limits = None
    ds = DatasetStore(Settings(data_dir=data)).get("digits")
    hp = Hyperparameters(batch_size=BATCH, learning_rate=PRESETS["lenet5"].learning_rate)
    trainers = [EngineTrainer(Model.build(preset_spec("lenet5", ds.input_shape, ds.num_classes), seed=i), ds, hp, seed=i)
                for i in range(n)]
    stop, marks = threading.Event(), [[] for _ in range(n)]

    def loop(i: int) -> None:
        while not stop.is_set():
            trainers[i].train_step()
            marks[i].append(time.perf_counter())

    limit = threadpool_limits(1) if threadpool_limits else None  # one BLAS thread, as `cnnvis serve` runs
    try:
        threads = [threading.Thread(target=loop, args=(i,), daemon=True) for i in range(n)]
        for t in threads:
            t.start()
        time.sleep(warmup)
        t0 = time.perf_counter()
        time.sleep(seconds)
        t1 = time.perf_counter()
        stop.set()
        for t in threads:
            t.join()
    finally:
        if limit is not None:
            limit.unregister()
        for t in trainers:
            t.close()
    rates = [sum(1 for m in ms if t0 < m <= t1) / (t1 - t0) for ms in marks]
    return {"rates": rates, "memory_mb": None}


# ---- (b) and (c) a real server ------------------------------------------------------------------
async def _play(base: str, models: list[str], seconds: float, warmup: float, pid: int) -> tuple[list[float], float]:
    trainers = [Trainer(base, mid) for mid in models]
    tasks = [asyncio.create_task(t.run()) for t in trainers]
    try:
        await asyncio.wait_for(asyncio.gather(*(t.playing.wait() for t in trainers)), 180)
        await asyncio.sleep(warmup)
        t0 = time.perf_counter()
        await asyncio.sleep(seconds / 2)
        memory = sum(_pss_mb(p) for p in _tree(pid))
        await asyncio.sleep(seconds / 2)
        t1 = time.perf_counter()
        return [t.rate(t0, t1) for t in trainers], memory
    finally:
        for t in trainers:
            t.stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 60)


class _Served:
    """A real server for one mode, up for the whole run; each window trains fresh models (a closed
    socket's session may still be saving its model when the next window starts)."""

    def __init__(self, data: Path, env: dict[str, str]):
        self.server = Server(data, data.parent / "none", env={"CNNVIS_WARM_DATASETS": "0", **env})
        self.server.start()
        tree = _tree(self.server.proc.pid)
        self.idle_mb = sum(_pss_mb(p) for p in tree)
        if env.get("CNNVIS_RAY") and not any(b"raylet" in _cmdline(p) for p in tree):
            self.server.stop()
            raise RuntimeError("the server started no Ray with CNNVIS_RAY=auto (app/main.py must build a RayPool)")

    def window(self, n: int, seconds: float, warmup: float) -> dict[str, Any]:
        with httpx.Client(base_url=self.server.base, timeout=120) as c:
            ids = [c.post(f"{API}/models", json={"preset": "lenet5", "dataset": "digits", "seed": s}).json()["id"]
                   for s in range(n)]
        rates, memory = asyncio.run(_play(self.server.base, ids, seconds, warmup, self.server.proc.pid))
        return {"rates": rates, "memory_mb": memory, "idle_memory_mb": self.idle_mb}

    def stop(self) -> None:
        self.server.stop()


def run(seconds: float = 8.0, rounds: int = 3, warmup: float = 2.0) -> dict[str, Any]:
    """``rounds`` windows of every mode at 1, 2 and 4 trainings, the modes taking turns window by window
    (so a burst of load from elsewhere hits them alike); each cell is its best window by total: on a
    shared machine other work only ever slows a window down, so the best is the least disturbed."""
    has_ray = importlib.util.find_spec("ray") is not None
    modes = [m for m in MODES if m != "ray" or has_ray]
    results: dict[str, dict[int, list[dict[str, Any]]]] = {m: {n: [] for n in COUNTS} for m in modes}
    loads = []
    with tempfile.TemporaryDirectory() as tmp:
        seed = Path(tmp) / "seed" / "data"
        _digits(seed)
        datas = {}
        for mode in modes:
            datas[mode] = Path(tmp) / mode / "data"
            shutil.copytree(seed, datas[mode])
        servers: dict[str, _Served] = {}
        try:
            for mode in modes[1:]:  # both servers run throughout (an idle one costs next to no CPU)
                servers[mode] = _Served(datas[mode], {"CNNVIS_RAY": "auto"} if mode == "ray" else {})
            for _ in range(rounds):
                for n in COUNTS:
                    for mode in modes:
                        loads.append(os.getloadavg()[0])
                        figures = (_threads(datas[mode], n, seconds, warmup) if mode == "threads"
                                   else servers[mode].window(n, seconds, warmup))
                        results[mode][n].append(figures)
        finally:
            for server in servers.values():
                server.stop()
    report: dict[str, Any] = {"setup": f"LeNet-5 on digits, batch {BATCH}; {seconds:g} s windows after {warmup:g} s; "
                                       f"best of {rounds} window(s); {os.cpu_count()} cores, load average "
                                       f"{min(loads):.1f}-{max(loads):.1f} (1 min)",
                              "rows": [], "notes": []}
    for mode in modes:
        for n in COUNTS:
            runs = sorted(results[mode][n], key=lambda f: sum(f["rates"]))
            best = runs[-1]
            report["rows"].append({
                "mode": mode, "trainings": n, "per_trainer": round(statistics.mean(best["rates"]), 1),
                "slowest": round(min(best["rates"]), 1), "total": round(sum(best["rates"]), 1),
                "totals": [round(sum(f["rates"]), 1) for f in runs],
                "memory_mb": None if best["memory_mb"] is None else round(best["memory_mb"]),
                "idle_memory_mb": None if best.get("idle_memory_mb") is None else round(best["idle_memory_mb"]),
            })  # fmt: skip
    if not has_ray:
        report["notes"].append('ray: skipped, Ray is not installed (pip install "cnn-visualizer[ray]")')
    return report


def table(report: dict[str, Any]) -> str:
    lines = [f"Scale: {report['setup']}",
             f"{'mode':<11}{'trainings':>10}{'steps/s each':>14}{'slowest':>9}{'total':>8}{'memory MB':>11}{'idle MB':>9}  every window's total"]
    for r in report["rows"]:
        mem = "".join(f"{v:>{w}}" if v is not None else f"{'-':>{w}}" for v, w in ((r["memory_mb"], 11), (r["idle_memory_mb"], 9)))
        lines.append(f"{r['mode']:<11}{r['trainings']:>10}{r['per_trainer']:>14.1f}{r['slowest']:>9.1f}{r['total']:>8.1f}{mem}"
                     f"  {' '.join(f'{t:g}' for t in r['totals'])}")
    lines.append("memory: PSS of the server and every process under it while training (idle: before any training)")
    lines += report["notes"]
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    print(table(run()))
