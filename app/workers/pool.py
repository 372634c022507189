"""Training worker processes seen from the server: start, talk to, reuse and stop them.

`WorkerProcess` wraps one ``python -m app.workers.train_worker`` child: `send` writes a command frame,
a reader thread hands every answer to the ``deliver`` callback of whoever holds the worker (as
``("frame", header, arrays)``) and, when the child's pipe closes, ``("exit", returncode)``.
`WorkerPool` keeps finished workers warm for the next live session or job (a start costs an interpreter
and NumPy), up to one per core, and stops them all with the server. `WorkerPool.run_job` runs one
one-shot job (`app.workers.jobs`) on a worker of its own: an idle one or a new one, never one a live
session holds; it goes back to the pool when the job has answered.
"""

from __future__ import annotations

import logging
import os
import queue
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from app.workers import frames

log = logging.getLogger("cnnvis")
WARM_WAIT_S = 30.0  # how long a job waits for the worker being warmed rather than start a second one
Deliver = Callable[[tuple], None]


class WorkerGone(RuntimeError):
    """The worker process has exited (killed, crashed or stopped)."""


class JobFailed(RuntimeError):
    """A job raised in the worker: ``error`` is the exception's type name, the message its text."""

    def __init__(self, error: str, detail: str):
        super().__init__(detail)
        self.error = error


def _worker_env() -> dict[str, str]:
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])  # where this server's `app` package is, installed or not
    env["PYTHONPATH"] = os.pathsep.join([root, *filter(None, [env.get("PYTHONPATH")])])
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env.setdefault(var, "1")  # a worker is one core's training: N workers for N cores
    return env


class WorkerProcess:
    """One training worker child process."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "app.workers.train_worker"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, env=_worker_env())
        self.pid = self.proc.pid
        self._deliver: Deliver | None = None
        self._send_lock = threading.Lock()
        self._mutex = threading.Lock()
        self.reader = threading.Thread(target=self._read, name=f"cnnvis-worker-{self.pid}", daemon=True)
        self.reader.start()

    def attach(self, deliver: Deliver | None) -> None:
        """Route the worker's answers to ``deliver`` (None: drop them)."""
        with self._mutex:
            self._deliver = deliver

    def alive(self) -> bool:
        return self.proc.poll() is None

    def send(self, header: dict[str, Any], arrays: dict[str, np.ndarray] | None = None) -> None:
        """Send one command; `WorkerGone` when the process has exited."""
        try:
            with self._send_lock:
                frames.write(self.proc.stdin, header, arrays)
        except (BrokenPipeError, OSError, ValueError) as e:  # ValueError: the pipe was closed by `stop`
            raise WorkerGone(f"the training worker (pid {self.pid}) has exited") from e

    def _read(self) -> None:
        try:
            while True:
                item = ("frame", *frames.read(self.proc.stdout))
                with self._mutex:
                    deliver = self._deliver
                if deliver is not None:
                    deliver(item)
        except (EOFError, OSError, ValueError) as e:
            if not isinstance(e, EOFError):
                log.error("training worker %s sent a bad frame (%s); stopping it", self.pid, e)
                self.proc.kill()
        code = self.proc.wait()
        self.proc.stdout.close()
        with self._mutex:
            deliver = self._deliver
        if deliver is not None:
            deliver(("exit", code))

    def stop(self, timeout: float = 5.0) -> None:
        """Ask the worker to quit (it finishes the step it is in), then kill it if it has not."""
        try:
            self.send({"op": "quit"})
            self.proc.stdin.close()
        except (WorkerGone, OSError):
            pass
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self._reap()

    def kill(self) -> None:
        if self.alive():
            self.proc.kill()
        self._reap()

    def _reap(self) -> None:
        """Wait for the exit and for the reader to close the pipes (no file left open)."""
        self.proc.wait()
        if self.proc.stdin and not self.proc.stdin.closed:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
        if threading.current_thread() is not self.reader:
            self.reader.join(5)


class WorkerPool:
    """Idle workers kept for reuse (at most ``max_idle``); `acquire` starts a new one when none is idle."""

    def __init__(self, max_idle: int | None = None):
        self.max_idle = max(0, (os.cpu_count() or 1) if max_idle is None else max_idle)  # also the workers kept warm
        self._idle: list[WorkerProcess] = []
        self._all: set[WorkerProcess] = set()
        self._mutex = threading.Lock()
        self._closed = False
        self._jobs: dict[WorkerProcess, str] = {}  # workers running a job -> its kind
        self.jobs_done = 0  # jobs that answered (a result or the job's own error)
        self._warmed = threading.Event()  # cleared while `warm` starts a worker
        self._warmed.set()

    def acquire(self, deliver: Deliver) -> WorkerProcess:
        """An idle worker, the one `warm` is starting once it is up, or a new one."""
        self.warmed(WARM_WAIT_S)  # at once unless a warm-up is under way
        with self._mutex:
            if self._closed:
                raise WorkerGone("the server is shutting down")
            while self._idle:
                w = self._idle.pop()
                if w.alive():
                    w.attach(deliver)
                    return w
                self._all.discard(w)
        return self._start(deliver)

    def _start(self, deliver: Deliver) -> WorkerProcess:
        """A new worker, attached and counted (a subclass starts its own kind in `_spawn`)."""
        w = self._spawn()
        w.attach(deliver)
        with self._mutex:
            self._all.add(w)
        return w

    def _spawn(self) -> WorkerProcess:
        return WorkerProcess()

    def release(self, w: WorkerProcess) -> None:
        """Take a worker back: kept idle (its model unloaded) if there is room, else stopped."""
        w.attach(None)
        keep = False
        with self._mutex:
            if not self._closed and w.alive() and len(self._idle) < self.max_idle:
                self._idle.append(w)
                keep = True
            elif w in self._all:
                self._all.discard(w)
        if keep:
            try:
                w.send({"op": "unload"})
            except WorkerGone:
                self.discard(w)
        else:
            w.stop()

    def discard(self, w: WorkerProcess) -> None:
        """Forget a worker that died or must not be reused, killing it if it still runs."""
        w.attach(None)
        with self._mutex:
            self._all.discard(w)
            if w in self._idle:
                self._idle.remove(w)
        w.kill()

    def warm(self) -> threading.Thread:
        """Start one worker in the background and keep it idle, so the first job or live session does
        not wait for a new interpreter and NumPy (some 3 s here); its thread is returned."""

        def start() -> None:
            try:
                self.release(self._start(None))
            except Exception:  # noqa: BLE001 (the first job starts one itself and reports what fails)
                log.exception("could not start a worker process ahead of time")
            finally:
                self._warmed.set()

        self._warmed.clear()
        t = threading.Thread(target=start, name="warm-worker", daemon=True)
        t.start()
        return t

    def run_job(self, header: dict[str, Any], arrays: dict[str, np.ndarray] | None = None,
                on_progress: Callable[[dict[str, Any]], None] | None = None) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """Run one job (``header``: ``kind`` and its fields, `app.workers.jobs`) and wait for its
        ``result`` frame ``(header, arrays)``; ``on_progress(header)`` gets each progress frame.
        `JobFailed` when the job raised, `WorkerGone` when the worker died first (it is not reused)."""
        answers: queue.Queue = queue.Queue()
        w = self.acquire(answers.put)
        with self._mutex:
            self._jobs[w] = header["kind"]
        answered = False
        try:
            w.send({**header, "op": "job"}, arrays)
            while True:
                item = answers.get()
                if item[0] == "exit":
                    raise WorkerGone(f"the worker process running this {header['kind']} job exited (code {item[1]})")
                _, head, got = item
                op = head.get("op")
                if op == "progress" and on_progress is not None:
                    on_progress(head)
                elif op in ("result", "job_error", "error"):
                    answered = True
                    if op == "result":
                        return head, got
                    raise JobFailed(head.get("error", "RuntimeError"), head.get("detail", "the job failed"))
        finally:
            with self._mutex:
                self._jobs.pop(w, None)
                self.jobs_done += answered
            if answered:
                self.release(w)
            else:  # dead, or still busy with a job nobody waits for: never handed out again
                self.discard(w)

    def job_workers(self) -> list[WorkerProcess]:
        """The workers running a job now."""
        with self._mutex:
            return list(self._jobs)

    def warmed(self, timeout: float | None = None) -> bool:
        """Wait until no `warm` start is under way (at most ``timeout`` s); whether none is."""
        return self._warmed.wait(timeout)

    def idle(self) -> int:
        """How many workers wait, warm, for a job or a live session."""
        with self._mutex:
            return len(self._idle)

    def pids(self) -> list[int]:
        with self._mutex:
            return sorted(w.pid for w in self._all if w.alive())

    def shutdown(self) -> None:
        with self._mutex:
            self._closed = True
            workers, self._idle, self._all = list(self._all), [], set()
        for w in workers:
            w.stop()
