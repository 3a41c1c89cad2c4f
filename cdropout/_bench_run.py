"""Timing and running the benchmark's cases (see :mod:`cdropout.bench`)."""
from __future__ import annotations

import gc
import math
import statistics
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

import numpy as np

from ._bench_cases import Case, TimedCall, Workload, fmt_size

# --------------------------------------------------------------------------------------------
# Timing
# --------------------------------------------------------------------------------------------


def time_call(fn: TimedCall, *, repeat: int = 5, min_time: float = 0.001, max_time: float = 0.2,
              budget: float = 5.0, stat: str = "min") -> float:
    """Seconds per call of ``fn``.

    A round is ``number`` back-to-back calls lasting at least ``min_time`` (1 for slow calls, so
    each call is timed alone; many for fast ones, so the timer's cost vanishes). One warm-up call
    sizes the round; when it takes more than one call a whole warm-up round follows. Timed rounds
    go on until there are ``repeat`` of them and ``max_time`` seconds have passed, or until
    ``budget`` seconds have passed (so a call of seconds is timed only once or twice). Short
    rounds and many of them let the minimum skip the rounds that another process interrupted.
    Returns the minimum or the median of the rounds' per-call times.
    """
    for name, value in (("min_time", min_time), ("max_time", max_time), ("budget", budget)):
        if not (math.isfinite(value) and value >= 0):
            raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    if repeat < 1:
        raise ValueError(f"repeat must be at least 1, got {repeat!r}")

    def one_round(number: int) -> float:
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        return time.perf_counter() - t0

    gc_enabled = gc.isenabled()
    gc.disable()
    try:
        start = time.perf_counter()
        first = one_round(1)
        number = 1
        if first < min_time:
            number = min(10**6, max(2, math.ceil(min_time / max(first, 1e-9))))
            warm = one_round(number)
            if warm < min_time:
                number = min(10**6, math.ceil(number * 1.2 * min_time / max(warm, 1e-9)))
        per_call: list[float] = []
        while True:
            per_call.append(one_round(number) / number)
            elapsed = time.perf_counter() - start
            if (len(per_call) >= repeat and elapsed >= max_time) or elapsed >= budget:
                break
    finally:
        if gc_enabled:
            gc.enable()
    return min(per_call) if stat == "min" else statistics.median(per_call)


# --------------------------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Row:
    size: int
    case: Case
    threads: int
    seconds: float

    @property
    def rate(self) -> float:
        """Gelem/s."""
        return self.size / self.seconds / 1e9


class Results:
    """Measured seconds per call, keyed by (size, case key, threads)."""

    def __init__(self, sizes: Sequence[int], threads: Sequence[int]) -> None:
        self.sizes = list(sizes)
        self.threads = list(threads)
        self.rows: list[Row] = []
        self._t: dict[tuple[int, str, int], float] = {}
        self._threaded: dict[str, bool] = {}

    def add(self, row: Row) -> None:
        self.rows.append(row)
        self._t[(row.size, row.case.key, row.threads)] = row.seconds
        self._threaded[row.case.key] = row.case.threaded

    def get(self, size: int, key: str, threads: int) -> Optional[float]:
        if not self._threaded.get(key, True):
            threads = 1
        return self._t.get((size, key, threads))

    def has_case(self, key: str) -> bool:
        return key in self._threaded

    def floor_ratio(self, row: Row) -> Optional[float]:
        floor = self.get(row.size, "floor", row.threads)
        return None if floor is None else row.seconds / floor

    def for_size(self, size: int) -> list[Row]:
        return [row for row in self.rows if row.size == size]


def run_size(n: int, cases: Sequence[Case], threads: Sequence[int], p: float,
             timing: dict[str, Any], results: Results,
             progress: Optional[Callable[[str], None]] = None) -> None:
    """Time every case at one size, adding rows to ``results``."""
    work = Workload.create(n, p)
    for case in cases:
        with case.entered():
            for t in (threads if case.threaded else [1]):
                work.reset()
                if progress:
                    progress(f"{fmt_size(n)}: {case.label}, {t} thread(s)")
                with np.errstate(over="ignore", invalid="ignore"):
                    seconds = time_call(case.make(work, t), **timing)
                results.add(Row(n, case, t, seconds))
    del work
    gc.collect()
