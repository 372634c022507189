"""Live training: one background thread per WebSocket, one WebSocket per model.

The thread takes the model's (fair) lock for each step only, so forward passes and other requests
slip in between steps. It never touches the socket: it hands finished JSON strings (and, for a client
that asked for binary frames, activations as bytes in app.encoding's binary form) to ``emit``,
which the route wires to ``loop.call_soon_threadsafe`` and an asyncio queue. Progress goes out at
most ``PROGRESS_EVERY_S`` apart (carrying every step since the last one), evaluations every
``eval_every`` steps, activations of a pinned image at the client's rate. Weights, history and
optimizer state are saved every ``save_every_s`` seconds and whenever training pauses or stops.

Deleting the model ends its session (`LiveRegistry.deleting`): the thread stops without saving,
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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from app.deps import AppState
from app.encoding import pack, to_json
from app.errors import AppError, Conflict
from app.schemas import LiveMessage
from app.services import inference
from app.services.training import apply_changes, evaluate, record_steps, trainer_for
from app.stores import ModelRecord

log = logging.getLogger("cnnvis")
PROGRESS_EVERY_S = 0.1
MAX_BACKLOG = 64  # unsent progress/activation messages before the thread stops adding more
CLOSE_MODEL_DELETED, REASON_MODEL_DELETED = 4410, "model deleted"  # 4000 + HTTP 410 Gone
_STOP = object()


class LiveSession:
    """``emit(text)`` queues a message for the socket; ``close(code, reason)`` asks the route to close it."""

    def __init__(self, state: AppState, rec: ModelRecord, emit: Callable[[str | bytes], None], close: Callable[[int, str], None],
                 binary: bool = False):
        self.state, self.rec, self._emit, self._close = state, rec, emit, close
        self.binary = binary  # activations as binary frames (app.encoding's binary form) instead of JSON text
        self.commands: queue.Queue = queue.Queue()
        self._playing = False
        self.remaining: int | None = None  # steps left of a "step" action; None while playing freely
        self.eval_every = 0
        self.eval_examples: int | None = 1000
        self.pin: Any = None
        self.act_every_s = 1.0
        self.dtype, self.layers = "float32", None
        self.backlog = 0
        self._lock = threading.Lock()
        self._pending: list[dict[str, Any]] = []
        self._last = {"progress": 0.0, "save": time.monotonic(), "activations": 0.0}
        self._window = (time.monotonic(), rec.step)
        self._ended = threading.Event()  # the model is being deleted: no more steps, saves or messages
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

    # ---- called from the event loop ------------------------------------------------------
    def start(self) -> None:
        self.thread.start()

    def submit(self, msg: LiveMessage) -> None:
        self.commands.put(msg)

    def sent(self) -> None:
        with self._lock:
            self.backlog = max(0, self.backlog - 1)

    def stop(self, timeout: float = 30.0) -> None:
        self.commands.put(_STOP)
        self.thread.join(timeout)

    def halt(self, timeout: float) -> None:
        """Stop the thread without saving and stop sending; waits for the thread at most ``timeout``
        seconds (it finishes the step it is in). The socket stays open until `close`."""
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

    def _run(self) -> None:
        while not self._ended.is_set():
            try:
                cmd = self.commands.get(block=not self.playing)
            except queue.Empty:
                cmd = None
            if cmd is _STOP:
                break
            if cmd is not None:
                self._command(cmd)
            if self.playing:
                self._guard(self._step)
        self.playing = False
        if not self._ended.is_set():
            self._guard(self._save)

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
        if pause:
            self.playing = False
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
                apply_changes(rec, changes, s)
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
            self.playing, self.remaining = True, (msg.steps or 1) if msg.action == "step" else None
            self._window = (time.monotonic(), rec.step)
        elif msg.action == "pause" and self.playing:
            self.playing = False
            self._progress(force=True)
            self._save()

    def _step(self) -> None:
        s, rec = self.state, self.rec
        with rec.lock.hold(s.settings.lock_wait_s):
            record = trainer_for(s, rec).train_step()
            record_steps(s, rec, [record])
            diverged = rec.diverged()
        self._pending.append({"step": record.step, "loss": rec.history["steps"][-1]["loss"], "accuracy": record.accuracy})
        if self.remaining is not None:
            self.remaining -= 1
            if self.remaining <= 0:
                self.playing = False
        if diverged:
            self.playing = False
            self.emit({"type": "error", "status": 422, "detail": "training diverged (the loss is not a number); lower the "
                       "learning rate and reset the model; the last finite weights stay saved"})
        if self.eval_every and record.step % self.eval_every == 0:
            self.emit(evaluate(s, rec, "test", self.eval_examples))
        self._progress(force=not self.playing)
        self._activations(force=not self.playing)
        if not self.playing:
            self._save()
            self.emit(self.state_message())
        elif time.monotonic() - self._last["save"] >= s.settings.save_every_s:
            self._save()

    def _progress(self, force: bool = False) -> None:
        now = time.monotonic()
        if not self._pending or (not force and now - self._last["progress"] < PROGRESS_EVERY_S):
            return
        t0, step0 = self._window
        rec, last = self.rec, self._pending[-1]
        rate = (rec.step - step0) / (now - t0) if now > t0 else 0.0
        msg = {"type": "progress", "step": rec.step, "epoch": rec.epoch, "examples_seen": rec.examples_seen,
               "loss": last["loss"], "accuracy": last["accuracy"], "learning_rate": rec.hp.learning_rate,
               "steps_per_second": round(rate, 3), "steps": self._pending}
        self._pending, self._window, self._last["progress"] = [], (now, rec.step), now
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


class LiveRegistry:
    """Which model has a live socket; a second one on the same model is refused."""

    def __init__(self, state: AppState):
        self.state = state
        self._sessions: dict[str, LiveSession] = {}
        self._mutex = threading.Lock()

    def open(self, rec: ModelRecord, emit: Callable[[str | bytes], None], close: Callable[[int, str], None],
             binary: bool = False) -> LiveSession:
        with self._mutex:
            if rec.id in self._sessions:
                raise Conflict(f"model {rec.id!r} already has a live-training connection; close it first or copy the model")
            session = self._sessions[rec.id] = LiveSession(self.state, rec, emit, close, binary)
        session.start()
        return session

    def close(self, session: LiveSession) -> None:
        session.stop()
        with self._mutex:
            if self._sessions.get(session.rec.id) is session:
                del self._sessions[session.rec.id]

    def count(self) -> int:
        with self._mutex:
            return len(self._sessions)

    def is_playing(self, model_id: str) -> bool:
        with self._mutex:
            s = self._sessions.get(model_id)
        return s is not None and s.playing

    def notify(self, model_id: str) -> None:
        """Tell a live socket on this model that something changed it (a PATCH): it gets a fresh state."""
        with self._mutex:
            s = self._sessions.get(model_id)
        if s is not None:
            s.emit(s.state_message())

    def refuse_if_playing(self, model_id: str, doing: str) -> None:
        if self.is_playing(model_id):
            raise Conflict(f"model {model_id!r} is training live; pause it before you {doing}")

    def _halt(self, model_id: str) -> LiveSession | None:
        with self._mutex:
            session = self._sessions.pop(model_id, None)
        if session is not None:
            session.halt(self.state.settings.lock_wait_s)
        return session

    @contextmanager
    def deleting(self, model_id: str) -> Iterator[None]:
        """Around a model's deletion: its live session, if any, leaves the registry and its thread stops
        unsaved; once the model is gone its socket is closed with 4410 "model deleted", as is any that
        opened meanwhile. If the deletion fails, the socket is closed with 4000 + the error's status
        instead (the model is still there to reconnect to)."""
        session = self._halt(model_id)
        try:
            yield
        except BaseException as e:
            if session is not None:
                session.close(4000 + (e.status if isinstance(e, AppError) else 500), "the model was not deleted")
            raise
        for s in (session, self._halt(model_id)):
            if s is not None:
                s.close(CLOSE_MODEL_DELETED, REASON_MODEL_DELETED)

    def shutdown(self) -> None:
        with self._mutex:
            sessions = list(self._sessions.values())
        for s in sessions:
            self.close(s)
