"""The training-loop case with pytest-benchmark: ``dropout(h, 0.5, out=h)`` right after
``h = x @ W`` (256x4096 by 4096x4096 float32), per thread setting and BLAS limit.

The matmul is pytest-benchmark's untimed ``setup`` of every round, so the timing is the dropout call
as a training step sees it; the matmul's median goes to ``extra_info``. All settings run in one
process (the default's thread policy carries over between them); ``python -m cdropout._bench_loop``
runs each in a fresh process instead.
"""
from __future__ import annotations

import contextlib
import time
from typing import Any, Iterator, Optional

import numpy as np
import pytest

import cdropout
from cdropout import _core


@contextlib.contextmanager
def _blas_limit(one: bool) -> Iterator[None]:
    if not one:
        yield
        return
    threadpoolctl = pytest.importorskip("threadpoolctl")
    with threadpoolctl.threadpool_limits(1, user_api="blas"):
        yield


@pytest.mark.parametrize("blas_one", [False, True], ids=["blas-all", "blas-1"])
@pytest.mark.parametrize("num_threads", [None, 1], ids=["default", "1-thread"])
def test_training_loop_step(benchmark: Any, num_threads: Optional[int], blas_one: bool) -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((256, 4096), dtype=np.float32)
    w = rng.standard_normal((4096, 4096), dtype=np.float32) / np.float32(64)
    h = np.empty((256, 4096), np.float32)
    gen = cdropout.Generator(1)
    matmul: list[float] = []
    used: list[int] = []

    def setup() -> None:
        t0 = time.perf_counter()
        np.matmul(x, w, out=h)
        matmul.append(time.perf_counter() - t0)

    def step() -> None:
        gen.dropout(h, 0.5, out=h, num_threads=num_threads)
        used.append(_core.last_threads())

    benchmark.group = "training loop: dropout after a 256x4096x4096 matmul"
    with _blas_limit(blas_one):
        benchmark.pedantic(step, setup=setup, rounds=15, warmup_rounds=3, iterations=1)
    benchmark.extra_info.update(matmul_median_ms=round(1e3 * float(np.median(matmul)), 2),
                                calls_on_more_than_one_thread=sum(t > 1 for t in used),
                                calls=len(used))
