"""pytest-benchmark suite of cdropout's benchmark cases (``pytest bench/``; CI does not run it).

The cases are those of ``cdropout-bench`` (``cdropout.bench.all_cases()``), parametrized over
sizes and thread counts, which two options choose:

    pytest bench/ --bench-sizes 1Ki,1Mi --bench-threads 1,2
    pytest bench/ -k "fwd and 1Mi" --benchmark-columns min,median,ops

Each size is its own pytest-benchmark group, so ``--benchmark-compare`` and the summary table
compare the cases of one size with each other.
"""
from __future__ import annotations

import pytest

from cdropout.bench import Workload, all_cases, fmt_size, parse_size, torch_version

DEFAULT_SIZES = "1Ki,64Ki,1Mi,16Mi"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("cdropout bench")
    group.addoption("--bench-sizes", default=DEFAULT_SIZES,
                    help=f"comma-separated float32 element counts (default {DEFAULT_SIZES})")
    group.addoption("--bench-threads", default=None,
                    help="comma-separated thread counts (default: 1 and cdropout's max_threads)")
    group.addoption("--bench-p", type=float, default=0.5, help="drop probability (default 0.5)")


def _thread_counts(config: pytest.Config) -> list[int]:
    text = config.getoption("--bench-threads")
    if text:
        return [int(t) for t in text.split(",") if t.strip()]
    import cdropout
    return sorted({1, int(cdropout.simd_info().get("max_threads") or 1)})


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if not {"size", "case", "threads"} <= set(metafunc.fixturenames):
        return
    config = metafunc.config
    sizes = [parse_size(s) for s in config.getoption("--bench-sizes").split(",") if s.strip()]
    threads = _thread_counts(config)
    no_torch = pytest.mark.skip(reason="torch is not installed")
    has_torch = torch_version() is not None
    params = []
    for n in sizes:
        for case in all_cases():
            for t in (threads if case.threaded else [1]):
                marks = [no_torch] if case.needs_torch and not has_torch else []
                ident = f"{fmt_size(n).replace(' ', '')}-{case.key}-t{t}"
                params.append(pytest.param(n, case, t, marks=marks, id=ident))
    metafunc.parametrize(("size", "case", "threads"), params)


_cache: dict[tuple[int, float], Workload] = {}


@pytest.fixture
def work(size: int, request: pytest.FixtureRequest) -> Workload:
    """The arrays of ``size`` (kept for the next test of the same size), refilled."""
    key = (size, request.config.getoption("--bench-p"))
    if key not in _cache:
        _cache.clear()  # one size in memory at a time
        _cache[key] = Workload.create(*key)
    w = _cache[key]
    w.reset()
    return w
