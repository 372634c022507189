"""Locks and limits for CPU work: a first-come-first-served model lock and a global job bound.

A plain `threading.Lock` is unfair: a live-training thread that releases and re-takes it after
every step can starve a forward request for as long as it trains. `FairLock` hands the lock to
the longest waiter, so a request waits at most one training step.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager

from app.errors import Busy


class FairLock:
    """A FIFO mutex (not re-entrant). ``acquire(timeout)`` returns False when the wait ran out."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._waiters: deque[threading.Lock] = deque()
        self._locked = False

    def acquire(self, timeout: float | None = None) -> bool:
        with self._mutex:
            if not self._locked and not self._waiters:
                self._locked = True
                return True
            ticket = threading.Lock()
            ticket.acquire()
            self._waiters.append(ticket)
        if ticket.acquire(timeout=-1 if timeout is None else max(timeout, 0)):
            return True  # handed over by release(): we hold the lock
        with self._mutex:
            try:
                self._waiters.remove(ticket)
                return False
            except ValueError:
                return True  # release() handed it to us just as the wait ran out

    def release(self) -> None:
        with self._mutex:
            if not self._locked:
                raise RuntimeError("release of an unlocked FairLock")
            if self._waiters:
                self._waiters.popleft().release()  # stays locked: ownership passes on
            else:
                self._locked = False

    def locked(self) -> bool:
        return self._locked

    @contextmanager
    def hold(self, timeout: float | None = None, what: str = "the model") -> Iterator[None]:
        """Hold the lock, or raise `Busy` (503) when it cannot be had within ``timeout`` seconds."""
        if not self.acquire(timeout):
            raise Busy(f"{what} is busy (training or another request); try again shortly")
        try:
            yield
        finally:
            self.release()


class CpuLimiter:
    """At most ``slots`` CPU-bound jobs at once; a job that cannot start within ``wait_s`` gets 503."""

    def __init__(self, slots: int, wait_s: float):
        self.slots = max(1, slots)
        self.wait_s = wait_s
        self._sem = threading.BoundedSemaphore(self.slots)

    @contextmanager
    def slot(self) -> Iterator[None]:
        if not self._sem.acquire(timeout=self.wait_s):
            raise Busy(f"the server is running {self.slots} computations already; retry in a few seconds")
        try:
            yield
        finally:
            self._sem.release()
