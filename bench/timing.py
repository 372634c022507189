"""Timing helpers: medians of many runs, interleaved so both sides see the same machine load."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def median_ms(fn: Callable[[], object], *, repeat: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def paired_median_ms(a: Callable[[], object], b: Callable[[], object], *, rounds: int, per_round: int = 5) -> tuple[float, float]:
    """Median times of ``a`` and ``b``, alternating blocks of runs so noise from a shared box hits both alike.

    Each block starts with two untimed runs: the other side's idle worker threads (OpenBLAS,
    OpenMP) keep spinning for a while after its last call and would otherwise be billed to this side.
    """
    ta, tb = [], []
    for _ in range(rounds):
        for fn, sink in ((a, ta), (b, tb)):
            fn()
            fn()
            for _ in range(per_round):
                t0 = time.perf_counter()
                fn()
                sink.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(ta), statistics.median(tb)


def percentile(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q / 100 * (len(s) - 1))))]
