"""A training worker process: ``python -m app.workers.train_worker``, driven over stdin/stdout frames.

Why a process: live training in a server thread shares one interpreter lock with every request, so
under load the trainers slowed several-fold (`python -m bench load`); in its own process a trainer
has a core to itself while the server only routes, stores and streams. The worker writes nothing to
disk: it sends steps, weights and optimizer state back, and the server stays the only writer.

Commands (header ``op``; arrays in `app.workers.frames` form):

- ``load``: the model (``model`` + arrays ``m/*``: `app.workers.jobs.model_of`) +
  ``o/{param}/{buffer}`` optimizer state,
  with ``hp``, ``seed``, ``step``, ``examples_seen``, ``dataset_folder``. Builds the trainer.
- ``play``: ``steps`` (None: until paused), ``report_s``, ``weights_s``, ``eval_every``.
- ``set``: ``hp`` changes and/or ``frozen`` layers, applied between two steps.
- ``sync`` (``optimizer``: bool): a ``state`` answer now; training goes on.
- ``pause``: stop after the current step and answer a full ``state``.
- ``unload``; ``quit``.
- ``job`` with ``kind``: one explanation, evaluation or run of training steps, answered with
  ``progress`` frames and one ``result`` or ``job_error`` (`app.workers.jobs`); the trainer is untouched.

Answers: ``state`` with ``reason`` (report, eval, sync, paused, done, diverged), ``records`` (every
step since the last answer), ``step``, ``examples_seen``, ``epoch``, ``playing``, and arrays ``w/*``
(weights and buffers, on every answer but plain reports between two weight times), ``o/*`` and
``u/*`` (optimizer state, the last update) on full answers; ``error`` with ``detail``. The worker
exits when its stdin closes (the server is gone).
"""

from __future__ import annotations

import math
import os
import queue
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, BinaryIO

import numpy as np

from app.workers import frames, jobs
from app.workers.jobs import record_json
from engine.data.dataset import Dataset, open_dataset
from engine.runtime import keep_freed_memory
from engine.train import Trainer


class Worker:
    """One trainer at a time; `handle` takes a command, `step` trains one step and answers when due."""

    def __init__(self, out: BinaryIO):
        self.out = out
        self.trainer: Trainer | None = None
        self.datasets: dict[str, Dataset] = {}  # opened (memory-mapped) once per folder
        self.playing = False
        self.remaining: int | None = None
        self.report_s, self.weights_s, self.eval_every = 0.1, 1.0, 0
        self.pending: list[dict[str, Any]] = []
        self.last = {"report": 0.0, "weights": 0.0}

    def send(self, header: dict[str, Any], arrays: dict[str, np.ndarray] | None = None) -> None:
        frames.write(self.out, header, arrays)

    def answer(self, reason: str, *, weights: bool = True, full: bool = False) -> None:
        t = self.trainer
        arrays: dict[str, np.ndarray] = {}
        header = {"op": "state", "reason": reason, "records": self.pending, "playing": self.playing}
        if t is not None:
            header |= {"step": t.step, "examples_seen": t.examples_seen, "epoch": t.epoch}
            if weights:
                arrays |= {f"w/{k}": v for k, v in t.model.state().items()}
            if full:
                arrays |= {f"o/{k}": v for k, v in t.optimizer_state().items()}
                arrays |= {f"u/{k}": v for k, v in t.last_update.items()}
                header["last_update_step"] = t.last_update_step
        self.send(header, arrays)
        self.pending = []
        now = time.monotonic()
        self.last["report"] = now
        if weights:
            self.last["weights"] = now

    def handle(self, header: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        op = header["op"]
        if op == "quit":
            raise SystemExit(0)
        if op == "job":
            jobs.run(header, arrays, self.dataset, self.send)
        elif op == "load":
            self.load(header, arrays)
        elif op == "unload":
            self.trainer, self.playing = None, False
        elif self.trainer is None:
            self.send({"op": "error", "detail": f"{op!r} before any load"})
        elif op == "play":
            self.playing = True
            if "steps" in header:  # absent: a change of rates, the step count goes on
                self.remaining = header["steps"]
            self.report_s, self.weights_s = header.get("report_s", 0.1), header.get("weights_s", 1.0)
            self.eval_every = header.get("eval_every") or 0
            self.last = {"report": time.monotonic(), "weights": time.monotonic()}
        elif op == "set":
            if header.get("hp"):
                self.trainer.set_hyperparameters(**header["hp"])
            if header.get("frozen") is not None:
                self.trainer.model.set_frozen(header["frozen"])
        elif op == "sync":
            self.answer("sync", full=bool(header.get("optimizer")))
        elif op == "pause":
            self.playing = False
            self.answer("paused", full=True)

    def dataset(self, folder: str) -> Dataset:
        if folder not in self.datasets:
            self.datasets[folder] = open_dataset(folder)
        return self.datasets[folder]

    def load(self, header: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        trainer = jobs.trainer_of(header, arrays, self.dataset(header["dataset_folder"]))
        self.trainer, self.playing, self.pending = trainer, False, []

    def step(self) -> None:
        r = self.trainer.train_step()
        self.pending.append(record_json(r))
        if self.remaining is not None:
            self.remaining -= 1
        diverged = not math.isfinite(r.loss)
        now = time.monotonic()
        if diverged or self.remaining == 0:
            self.playing = False
            self.answer("diverged" if diverged else "done", full=True)
        elif self.eval_every and r.step % self.eval_every == 0:
            self.answer("eval")
        elif now - self.last["weights"] >= self.weights_s:
            self.answer("report")
        elif now - self.last["report"] >= self.report_s:
            self.answer("report", weights=False)


def _read_commands(stream: BinaryIO, commands: queue.Queue) -> None:
    try:
        while True:
            commands.put(frames.read(stream))
    except (EOFError, OSError, frames.FrameError):
        os._exit(0)  # the server closed the pipe or died: nothing of ours is left to save


def serve(worker: Worker, next_command: Callable[[bool], tuple[dict, dict] | None]) -> None:
    """The worker's loop: take the next command (``next_command(block)``, blocking only while idle; None
    when there is none), handle it, take a step while playing; returns on ``quit``. A failure stops
    playing and is reported; the worker stays up for the server to decide."""
    while True:
        try:
            item = next_command(not worker.playing)
            if item is not None:
                worker.handle(*item)
            if worker.playing:
                worker.step()
        except SystemExit:
            return
        except Exception as e:  # noqa: BLE001
            worker.playing = False
            worker.send({"op": "error", "detail": f"{type(e).__name__}: {e}"})


def main() -> None:
    out = os.fdopen(os.dup(1), "wb")  # the frames go here; anything printed goes to stderr instead
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    keep_freed_memory()  # as `cnnvis serve` does: steps reuse freed memory instead of faulting it in again
    commands: queue.Queue = queue.Queue()
    threading.Thread(target=_read_commands, args=(sys.stdin.buffer, commands), daemon=True).start()

    def next_command(block: bool) -> tuple[dict, dict] | None:
        try:
            return commands.get(block=block)
        except queue.Empty:
            return None

    serve(Worker(out), next_command)
    out.flush()
    os._exit(0)  # not a normal exit: the reader thread is blocked on stdin


if __name__ == "__main__":
    main()
