"""Every case of ``cdropout-bench`` timed with pytest-benchmark (see conftest.py)."""
from __future__ import annotations

import numpy as np

from cdropout.bench import Case, Workload, fmt_size


def test_case(benchmark, work: Workload, case: Case, threads: int) -> None:  # type: ignore[no-untyped-def]
    with case.entered():  # e.g. the torch case restores torch.set_num_threads afterwards
        _run(benchmark, work, case, threads)


def _run(benchmark, work: Workload, case: Case, threads: int) -> None:  # type: ignore[no-untyped-def]
    call = case.make(work, threads)
    benchmark.group = f"{fmt_size(work.n)} float32, p={work.p}"
    benchmark.extra_info.update(elements=work.n, threads=threads, case=case.label)
    with np.errstate(over="ignore", invalid="ignore"):
        call()  # warm-up: first touch, thread pool start
        benchmark(call)
    benchmark.extra_info["Gelem/s"] = round(work.n / benchmark.stats.stats.min / 1e9, 3)
