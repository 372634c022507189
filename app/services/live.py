"""Live training: one session thread per WebSocket, one WebSocket per model, the steps in a worker process.

The steps run in a training worker process (`app.workers`), not in the server: a trainer then has a
core to itself instead of sharing the server's interpreter lock with every request. The session thread
is event-driven: it takes, in order, the client's messages and the worker's answers from one queue.
The worker reports every step at most ``PROGRESS_EVERY_S`` apart and sends its weights every
``weights_every_s`` (often enough for the pinned image's activations), at every evaluation step and
whenever it stops; the session copies them into the model under its lock together with the history of
those steps, so a request always sees weights, step and history that agree. Weights, history and
optimizer state are saved every ``save_every_s`` seconds (a sync that brings the optimizer state back)
and whenever training pauses or stops. A change of hyperparameters pauses the worker first, so it
is recorded at the exact step it takes effect.

The thread never touches the socket: it hands finished JSON strings (and, for a client that asked for
binary frames, activations as bytes in app.encoding's binary form) to ``emit``, which the route wires
to ``loop.call_soon_threadsafe`` and an asyncio queue.

A worker that dies while training loses the steps since the weights last came back; the session says
so, starts another worker from the model's current state and goes on (at most ``MAX_RESTARTS`` times
a minute, then it pauses).

Deleting the model ends its session (`app.services.live_registry.LiveRegistry.deleting`): the thread stops without saving,
the model is deleted, then the socket is closed with ``CLOSE_MODEL_DELETED``, so a client that hears
of it finds the model gone. A save already under way holds the model's lock, which the deletion also
takes, and a save after it finds no folder and writes nothing.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np

from app.deps import AppState
from app.encoding import pack, to_json
from app.errors import AppError, Busy, Invalid
from app.schemas import LiveMessage
from app.services import inference
from app.services.jobs import training_state
from app.services.training import apply_changes, check_batch, evaluate, finite, record_steps, take_optimizer, trainer_for
from app.stores import ModelRecord
from app.workers.pool import WorkerGone, WorkerPool, WorkerProcess
from app.workers.jobs import record_from_json
from engine.train import StepRecord

log = logging.getLogger("cnnvis")
PROGRESS_EVERY_S = 0.1
WEIGHTS_EVERY_S = 1.0  # the longest the server's copy of a training model's weights lags the worker's
MAX_BACKLOG = 64  # unsent progress/activation messages before the thread stops adding more
MAX_RESTARTS = 3  # worker restarts a minute before a session gives up and pauses
CLOSE_MODEL_DELETED, REASON_MODEL_DELETED = 4410, "model deleted"  # 4000 + HTTP 410 Gone
_STOP = object()
_REFRESH = object()  # the model changed elsewhere (a PATCH): send the new settings to the worker
STOPPED = ("paused", "done", "diverged")  # answers after which the worker is idle


class LiveSession:
    """``emit(text)`` queues a message for the socket; ``close(code, reason)`` asks the route to close it."""

    def __init__(self, state: AppState, rec: ModelRecord, emit: Callable[[str | bytes], None], close: Callable[[int, str], None],
                 binary: bool = False, pool: WorkerPool | None = None):
        self.state, self.rec, self._emit, self._close = state, rec, emit, close
        self.binary = binary  # activations as binary frames (app.encoding's binary form) instead of JSON text
        self.pool = pool or WorkerPool(0)
        self.commands: queue.Queue = queue.Queue()  # client messages, worker answers, _REFRESH and _STOP, in order
        self._deferred: deque = deque()  # client messages that arrived while waiting for the worker
        self._playing = False
        self.eval_every = 0
        self.eval_examples: int | None = 1000
        self.pin: Any = None
        self.act_every_s = 1.0
        self.dtype, self.layers = "float32", None
        self.backlog = 0
        self._lock = threading.Lock()
        self._pending: list[dict[str, Any]] = []  # steps not yet reported to the client
        self._unsynced: list[StepRecord] = []  # steps the worker took whose weights have not come back yet
        self._last = {"progress": 0.0, "save": time.monotonic(), "activations": 0.0}
        self._window = (time.monotonic(), rec.step)
        self._ended = threading.Event()  # the model is being deleted: no more steps, saves or messages
        self.worker: WorkerProcess | None = None
        self._loaded = False  # the worker holds this model's training state (from play until it stops)
        self._loaded_dataset: str | None = None  # the dataset it trains on
        self._syncing = False  # a save's sync is under way
        self._restarts: deque[float] = deque()
        self.thread = threading.Thread(target=self._run, name=f"cnnvis-live-{rec.id}", daemon=True)

    @property
    def playing(self) -> bool:
        return self._playing

    @playing.setter
    def playing(self, value: bool) -> None:
        """Set by the thread only; the CPU limiter hears of each change (it leaves a playing trainer a core)."""
        if value != self._playing:
            self._playing = value
            self.state.cpu.training(value)

    # ---- called from the event loop and other threads -------------------------------------
    def start(self) -> None:
        self.thread.start()

    def submit(self, msg: LiveMessage) -> None:
        self.commands.put(msg)

    def refresh(self) -> None:
        self.commands.put(_REFRESH)

    def sent(self) -> None:
        with self._lock:
            self.backlog = max(0, self.backlog - 1)

    def stop(self, timeout: float = 30.0) -> None:
        self.commands.put(_STOP)
        self.thread.join(timeout)

    def halt(self, timeout: float) -> None:
        """Stop the thread without saving and stop sending; waits for the thread at most ``timeout``
        seconds. The socket stays open until `close`."""
        self._ended.set()
        self.commands.put(_STOP)
        self.thread.join(timeout)

    def close(self, code: int, reason: str) -> None:
        self._close(code, reason)

    # ---- the thread ----------------------------------------------------------------------
    def emit(self, msg: dict[str, Any] | bytes, droppable: bool = False) -> None:
        if self._ended.is_set():
            return
        with self._lock:
            if droppable and self.backlog >= MAX_BACKLOG:
                return
            self.backlog += 1
        self._emit(msg if isinstance(msg, bytes) else json.dumps(msg, allow_nan=False))

    def state_message(self) -> dict[str, Any]:
        rec = self.rec
        return {"type": "state", "playing": self.playing, "step": rec.step, "epoch": rec.epoch,
                "examples_seen": rec.examples_seen, "hyperparameters": rec.hp.to_dict(), "eval_every": self.eval_every,
                "pinned": self.pin is not None, "activations_every_ms": round(self.act_every_s * 1000),
                "read_only": rec.read_only}

    def _next(self) -> Any:
        return self._deferred.popleft() if self._deferred else self.commands.get()

    def _run(self) -> None:
        try:
            while not self._ended.is_set():
                item = self._next()
                if item is _STOP:
                    break
                if item is _REFRESH:
                    self._guard(self._refresh, pause=False)
                elif isinstance(item, tuple):
                    self._guard(lambda: self._worker_event(item))
                else:
                    self._command(item)
            if not self._ended.is_set():
                self._guard(self._finish, pause=False)
        finally:
            self.playing = False
            self._drop_worker(reuse=not self._ended.is_set())

    def _guard(self, fn: Callable[[], Any], pause: bool = True) -> bool:
        """Run ``fn``; on failure tell the client (the socket stays open) and pause. True if it succeeded."""
        try:
            fn()
            return True
        except AppError as e:
            self.emit({"type": "error", "detail": e.detail, "status": e.status})
        except Exception:  # noqa: BLE001  a bug must not leave a silent, dead session behind
            log.exception("live training of %s failed", self.rec.id)
            self.emit({"type": "error", "detail": "internal error; training paused (the server log has the details)", "status": 500})
        if pause and self.playing:
            self.playing = False
            try:
                self.worker.send({"op": "pause"})  # its answer comes back through the queue like any other
            except (WorkerGone, AttributeError):
                pass
        self.emit(self.state_message())
        return False

    def _command(self, msg: LiveMessage) -> None:
        if self._guard(lambda: self._apply(msg), pause=False):  # a bad message changes nothing, playing included
            self.emit(self.state_message())

    def _apply(self, msg: LiveMessage) -> None:
        """Check everything in the message first, then apply it all: a bad message changes nothing."""
        s, rec, fields = self.state, self.rec, msg.model_fields_set
        layers = inference.parse_layers(msg.layers, len(rec.model.layers)) if msg.layers is not None else None
        if msg.pin is not None:
            inference.resolve_input(s, rec, msg.pin)
        changes, go = msg.changes(), msg.action in ("play", "step")
        if changes or go:
            with rec.lock.hold(s.settings.lock_wait_s):
                if go or rec.read_only:
                    trainer_for(s, rec)  # 409 for read-only or dataset-less models, before any step
                if changes:  # 422 before the worker is paused
                    try:
                        check_batch(s, rec, rec.hp.replace(**changes))
                    except (TypeError, ValueError) as e:
                        raise Invalid(str(e)) from None
            was_playing = self.playing
            if changes and was_playing:
                self._pause()  # the change then takes effect, and is recorded, at the exact step
            with rec.lock.hold(s.settings.lock_wait_s):
                apply_changes(rec, changes, s)
            if changes and was_playing and not go:
                self._play(keep=True)
        if msg.eval_every is not None:
            self.eval_every = msg.eval_every
        if msg.activations_every_ms is not None:
            self.act_every_s = msg.activations_every_ms / 1000
        if msg.dtype is not None:
            self.dtype = msg.dtype
        if "layers" in fields:
            self.layers = layers
        if "pin" in fields:
            self.pin = msg.pin
            self._activations(force=True)
        if go:
            self._play((msg.steps or 1) if msg.action == "step" else None)
        elif msg.action == "pause" and self.playing:
            self._pause()
            self._save()
        elif self.playing and ({"eval_every", "activations_every_ms", "pin"} & fields):
            self._play(keep=True)  # the worker's timing follows the new rates

    # ---- the worker ----------------------------------------------------------------------
    def _deliver(self, item: tuple) -> None:
        self.commands.put(item)

    def _load(self) -> None:
        """Give the worker (started or taken from the pool if need be) the model's current state."""
        s, rec = self.state, self.rec
        with rec.lock.hold(s.settings.lock_wait_s):
            fields, arrays = training_state(s, rec, trainer_for(s, rec))
            # From here the worker holds the training state; what the server keeps is the last copy back.
            opt = {k[2:]: v for k, v in arrays.items() if k.startswith("o/")}
            rec.trainer, rec.optimizer_state, self._loaded_dataset = None, opt, rec.dataset
            self._loaded = True
        if self.worker is None:
            self.worker = self.pool.acquire(self._deliver)
        self.worker.send({"op": "load", **fields}, arrays)

    def _play(self, steps: int | None = None, keep: bool = False) -> None:
        """Start (or go on) training in the worker: ``steps`` steps, None until paused, or (``keep``) as before."""
        if self.worker is None or not self._loaded:
            self._load()  # from the model as it is now: whatever changed it while the worker was idle counts
        weights_s = min(WEIGHTS_EVERY_S, self.act_every_s) if self.pin is not None else WEIGHTS_EVERY_S
        header = {"op": "play", "report_s": PROGRESS_EVERY_S, "weights_s": weights_s, "eval_every": self.eval_every}
        self._send(header if keep else header | {"steps": steps})
        if not self.playing:
            self._window = (time.monotonic(), self.rec.step)
        self.playing = True

    def _send(self, header: dict[str, Any], arrays: dict[str, np.ndarray] | None = None) -> None:
        try:
            self.worker.send(header, arrays)
        except WorkerGone:
            raise Busy("the training worker stopped; press play again") from None

    def _pause(self) -> None:
        """Stop the worker and wait for its full state (every step, the weights, the optimizer)."""
        self.playing = False  # first: a worker that dies meanwhile is not restarted
        if self.worker is None or not self._loaded:
            return
        self._send({"op": "pause"})
        self._await(lambda h: h.get("reason") == "paused")

    def _await(self, done: Callable[[dict[str, Any]], bool]) -> None:
        """Handle the worker's answers until one satisfies ``done``; client messages wait their turn."""
        deadline = time.monotonic() + self.state.settings.lock_wait_s
        while True:
            try:
                item = self.commands.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise Busy("the training worker did not answer; training paused") from None
            if item is _STOP:
                self._deferred.appendleft(_STOP)
                return
            if not isinstance(item, tuple):
                self._deferred.append(item)
                continue
            self._worker_event(item)
            if item[0] == "exit" or (item[0] == "frame" and item[1].get("op") == "state" and done(item[1])):
                return

    def _worker_event(self, item: tuple) -> None:
        if item[0] == "exit":
            self._worker_died(item[1])
            return
        _, header, arrays = item
        if header.get("op") == "error":
            log.error("training worker for %s: %s", self.rec.id, header.get("detail"))
            self.playing = False
            raise RuntimeError(f"the training worker failed: {header.get('detail')}")
        if header.get("op") == "state":
            self._take_state(header, arrays)

    def _take_state(self, header: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        """An answer from the worker: report its steps; with weights, copy them in and record the steps."""
        s, rec, reason = self.state, self.rec, header["reason"]
        records = [record_from_json(d) for d in header["records"]]
        self._unsynced += records
        self._pending += [{"step": r.step, "loss": finite(r.loss), "accuracy": finite(r.accuracy), "epoch": r.epoch,
                           "examples_seen": r.examples_seen, "learning_rate": r.learning_rate} for r in records]
        weights = {k[2:]: v for k, v in arrays.items() if k.startswith("w/")}
        stopped = reason in STOPPED
        if weights:
            with rec.lock.hold(s.settings.lock_wait_s):
                rec.model.load_state(weights)
                if self._unsynced:
                    record_steps(s, rec, self._unsynced)
                    self._unsynced = []
                if stopped or reason == "sync":
                    take_optimizer(s, rec, header, arrays)
                diverged = rec.diverged()
        else:
            diverged = False
        if stopped:
            self.playing, self._loaded = False, False  # the next play reloads from the model
        if diverged:
            self.playing = False
            self.emit({"type": "error", "status": 422, "detail": "training diverged (the loss is not a number); lower the "
                       "learning rate and reset the model; the last finite weights stay saved"})
        if weights and self.eval_every and records and records[-1].step % self.eval_every == 0:
            self.emit(evaluate(s, rec, "test", self.eval_examples))
        self._progress(force=stopped or diverged)
        if weights:
            self._activations(force=stopped)
        if reason == "sync":
            self._syncing = False
            self._save()
        elif reason in ("done", "diverged"):
            self._save()
            self.emit(self.state_message())
        elif self.playing and weights and not self._syncing and time.monotonic() - self._last["save"] >= s.settings.save_every_s:
            self._syncing = True
            self._send({"op": "sync", "optimizer": True})

    def _worker_died(self, code: int) -> None:
        """The worker exited under us: lose the steps since the last weights, and go on with a new one."""
        lost, was_playing = len(self._unsynced), self.playing
        if self.worker is not None:
            self.pool.discard(self.worker)
        self.worker, self._loaded, self._unsynced, self._syncing = None, False, [], False
        self._pending = [p for p in self._pending if p["step"] <= self.rec.step]
        log.error("training worker for %s exited with code %s; %d steps lost", self.rec.id, code, lost)
        now = time.monotonic()
        while self._restarts and now - self._restarts[0] > 60:
            self._restarts.popleft()
        if not was_playing:
            return
        if len(self._restarts) >= MAX_RESTARTS:
            self.playing = False
            self.emit({"type": "error", "status": 503, "detail": f"the training worker stopped {MAX_RESTARTS + 1} times in a "
                       f"minute; training paused at step {self.rec.step} (press play to try again)"})
            self.emit(self.state_message())
            return
        self._restarts.append(now)
        self.emit({"type": "error", "status": 503, "detail": f"the training worker stopped; {lost} unsaved steps were lost "
                   f"and training goes on from step {self.rec.step} in a new worker"})
        self.playing = False
        self._play(None)

    def _refresh(self) -> None:
        """The model was changed elsewhere (PATCH): the worker trains with its new settings from the next step."""
        self.emit(self.state_message())
        if not self.playing:
            return
        if self.rec.dataset != self._loaded_dataset:
            self._pause()
            self._play(keep=True)  # reloads, on the new dataset
            return
        with self.rec.lock.hold(self.state.settings.lock_wait_s):
            header = {"op": "set", "hp": self.rec.hp.to_dict(), "frozen": sorted(self.rec.model.frozen)}
        self._send(header)

    def _drop_worker(self, reuse: bool) -> None:
        w, self.worker, self._loaded = self.worker, None, False
        if w is None:
            return
        if reuse:
            self.pool.release(w)
        else:
            self.pool.discard(w)

    # ---- messages and saves ----------------------------------------------------------------
    def _progress(self, force: bool = False) -> None:
        now = time.monotonic()
        if not self._pending or (not force and now - self._last["progress"] < PROGRESS_EVERY_S):
            return
        t0, step0 = self._window
        last = self._pending[-1]
        rate = (last["step"] - step0) / (now - t0) if now > t0 else 0.0
        msg = {"type": "progress", "step": last["step"], "epoch": last["epoch"], "examples_seen": last["examples_seen"],
               "loss": last["loss"], "accuracy": last["accuracy"], "learning_rate": last["learning_rate"],
               "steps_per_second": round(rate, 3), "steps": [{k: p[k] for k in ("step", "loss", "accuracy")} for p in self._pending]}
        self._pending, self._window, self._last["progress"] = [], (now, last["step"]), now
        self.emit(msg, droppable=not force)

    def _activations(self, force: bool = False) -> None:
        now = time.monotonic()
        if self.pin is None or (not force and now - self._last["activations"] < self.act_every_s):
            return
        self._last["activations"] = now
        try:
            x, label = inference.resolve_input(self.state, self.rec, self.pin)
            body = {"type": "activations", **inference.forward_arrays(self.state, self.rec, x, layers=self.layers, label=label)}
        except AppError as e:
            self.pin = None
            self.emit({"type": "error", "detail": f"unpinned the image: {e.detail}", "status": e.status})
            return
        self.emit(pack(body, self.dtype) if self.binary else to_json(body, self.dtype), droppable=not force)

    def _save(self) -> None:
        rec = self.rec
        if rec.read_only or self._ended.is_set():
            return
        with rec.lock.hold(self.state.settings.lock_wait_s):
            self.state.models.save(rec)
        self._last["save"] = time.monotonic()

    def _finish(self) -> None:
        """The socket closed: bring the worker's state back and save it."""
        if self.worker is not None and self._loaded:
            self._pause()
        self.playing = False
        self._save()
