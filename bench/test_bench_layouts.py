"""The memory-layout cases of ``cdropout-bench --layouts`` with pytest-benchmark: ``dropout`` in
place (or into ``out=``) on each view of ``cdropout.bench_layouts.layouts()``, one and two threads.
Each thread count is one pytest-benchmark group, so the summary compares every layout with the
contiguous call (``extra_info`` holds the element count for a per-element comparison).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import cdropout
from cdropout.bench_layouts import layouts

_N = 1024
_LAYOUTS = layouts()


@pytest.fixture(scope="module")
def arrays() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return (rng.standard_normal((_N, _N), dtype=np.float32),
            rng.standard_normal((_N // 16, 64, 256), dtype=np.float32))


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("name,make", _LAYOUTS, ids=[name for name, _ in _LAYOUTS])
def test_layout(benchmark: Any, arrays: tuple[np.ndarray, np.ndarray], name: str, make: Any,
                threads: int) -> None:
    x, out = make(*arrays)
    benchmark.group = f"memory layouts, float32, {threads} thread(s)"
    benchmark.extra_info.update(layout=name, elements=int(x.size), threads=threads)
    with np.errstate(all="ignore"):
        benchmark(lambda: cdropout.dropout(x, 0.5, seed=1, out=out, num_threads=threads))
