"""Locks and limits for CPU work: a first-come-first-served model lock and a global job bound.

A plain `threading.Lock` is unfair: a live-training thread that releases and re-takes it after
every step can starve a forward request for as long as it trains. `FairLock` hands the lock to
the longest waiter, so a request waits at most one training step.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager

from starlette.types import ASGIApp, Receive, Scope, Send

from app.errors import Busy
from app.security import send_json


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
    """Admission for CPU-bound requests: a few run at once, a short queue waits, the rest get 503 at once.

    Why shed rather than queue: a request that waits seconds for a slot still costs its client those
    seconds and holds a server thread meanwhile (the thread pool then starves even cheap requests), so
    under a burst every answer gets slow (50 clients with a 5 s queue: p99 3.8 s, `python -m bench load`). So a
    job starts at once when a slot is free and nobody waits; it queues when fewer than ``slots`` jobs wait
    and the expected wait (jobs ahead / slots x the recent mean job time) is at most ``max_queue_s``; it
    waits at most ``wait_s``. Otherwise it gets `Busy` (503) now, with ``Retry-After`` the expected wait
    rounded up, so a client backs off instead of piling up.

    Why fewer slots while models train live: a training step and a request compete for the same cores
    and the same GIL; with four request jobs on two cores, two live trainers slowed 4.5x. So
    ``slots = max(1, min(max_slots, cores - live trainers))``: each playing trainer keeps a core, and
    one request can always run. `training` is told when a live trainer starts and stops.
    """

    def __init__(self, slots: int, wait_s: float, *, cores: int | None = None, max_queue_s: float = 0.5):
        self.max_slots = max(1, slots)
        self.cores = max(1, cores or os.cpu_count() or 1)
        self.wait_s, self.max_queue_s = wait_s, max_queue_s
        self.running = self.waiting = self.trainers = 0
        self.counts = {"admitted": 0, "queued": 0, "shed": 0, "timed_out": 0}  # since start, for tests and benchmarks
        self._mean_s = 0.0  # exponential moving mean of job times (0 until a job has finished)
        self._cond = threading.Condition()

    @property
    def slots(self) -> int:
        return max(1, min(self.max_slots, self.cores - self.trainers))

    def training(self, playing: bool) -> None:
        """A live trainer started (True) or stopped (False) playing."""
        with self._cond:
            self.trainers = max(0, self.trainers + (1 if playing else -1))
            self._cond.notify_all()  # a stop may have freed a slot

    def _busy(self, detail: str, wait: float) -> Busy:
        return Busy(f"the server is busy ({self.running} computations running, {self.waiting} waiting); {detail}",
                    retry_after=max(1, math.ceil(wait)))

    def _admit(self) -> None:
        with self._cond:
            if self.running < self.slots and not self.waiting:
                self.running += 1
                self.counts["admitted"] += 1
                return
            expected = (self.waiting + 1) / self.slots * self._mean_s
            if self.waiting >= self.slots or expected > self.max_queue_s:
                self.counts["shed"] += 1
                raise self._busy("retry after the time in Retry-After", expected)
            self.waiting += 1
            self.counts["queued"] += 1
            try:
                if not self._cond.wait_for(lambda: self.running < self.slots, timeout=self.wait_s):
                    self.counts["timed_out"] += 1
                    raise self._busy("retry in a few seconds", self.wait_s)
            finally:
                self.waiting -= 1
            self.running += 1
            self.counts["admitted"] += 1

    def _done(self, seconds: float) -> None:
        with self._cond:
            self.running -= 1
            self._mean_s = seconds if not self._mean_s else 0.8 * self._mean_s + 0.2 * seconds
            self._cond.notify_all()  # waiters re-check; one whose wait just ran out must not swallow the wake-up

    @contextmanager
    def slot(self) -> Iterator[None]:
        """Run the block in a slot, or raise `Busy` (503 with ``Retry-After``) as the class docstring says."""
        self._admit()
        t0 = time.monotonic()
        try:
            yield
        finally:
            self._done(time.monotonic() - t0)


class AdmissionLimit:
    """ASGI middleware: at most ``limit`` API requests in the server at once; one more gets 503 at once.

    Why: past the CPU slots, requests still cost the event loop, the thread pool and the GIL that
    live trainers share; letting fifty in makes every admitted answer slow (`python -m bench load`).
    Turning the surplus away before its body is read keeps the admitted ones fast, and
    ``Retry-After`` tells the client when to come back. WebSockets, the page and static files are
    not counted (a browser loads them once).
    """

    def __init__(self, app: ASGIApp, limit: int, prefix: str = "/api/"):
        self.app, self.limit, self.prefix = app, max(1, limit), prefix
        self.in_flight = 0
        self.shed = 0  # since start, for tests and benchmarks

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope.get("path", "").startswith(self.prefix):
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.limit:  # one event loop: no lock needed between the check and the count
            self.shed += 1
            busy = Busy(f"the server is answering {self.in_flight} requests already; retry after the time in Retry-After")
            await _send_busy(send, busy)
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1


async def _send_busy(send: Send, busy: Busy) -> None:
    await send_json(send, busy.status, busy.detail, [(k.lower().encode(), v.encode()) for k, v in busy.headers.items()])
