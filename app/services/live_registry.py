"""Which model has a live-training session: one WebSocket per model (a second is refused), the pool
of training workers the sessions share, and ending a session when its model is deleted."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from app.deps import AppState
from app.errors import AppError, Conflict
from app.services.live import CLOSE_MODEL_DELETED, REASON_MODEL_DELETED, LiveSession
from app.stores import ModelRecord
from app.workers.pool import WorkerPool


class LiveRegistry:
    """Which model has a live socket (a second one on the same model is refused), and the pool of
    training worker processes the sessions share."""

    def __init__(self, state: AppState, pool: WorkerPool | None = None):
        self.state = state
        self.pool = pool or WorkerPool()
        self._sessions: dict[str, LiveSession] = {}
        self._mutex = threading.Lock()

    def open(self, rec: ModelRecord, emit: Callable[[str | bytes], None], close: Callable[[int, str], None],
             binary: bool = False) -> LiveSession:
        with self._mutex:
            if rec.id in self._sessions:
                raise Conflict(f"model {rec.id!r} already has a live-training connection; close it first or copy the model")
            session = self._sessions[rec.id] = LiveSession(self.state, rec, emit, close, binary, self.pool)
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
            s.refresh()

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
        self.pool.shutdown()
