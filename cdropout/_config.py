"""Which kernel path runs, and what this machine and build offer."""
from __future__ import annotations

import contextlib
import os
import warnings
from typing import Any, Iterator

from . import _core

ISA_NAMES = ("portable", "avx2", "avx512")
_BEST: int = _core.best_isa()


def _isa_from_env() -> int:
    name = os.environ.get("CDROPOUT_ISA", "").strip().lower()
    if not name:
        return _BEST
    if name not in ISA_NAMES:
        warnings.warn(
            f"CDROPOUT_ISA={name!r} is not one of {ISA_NAMES}; using {ISA_NAMES[_BEST]!r}",
            RuntimeWarning,
            stacklevel=2,
        )
        return _BEST
    return min(ISA_NAMES.index(name), _BEST)


#: The kernel path every call uses (read per call; lowered by CDROPOUT_ISA at import).
isa: int = _isa_from_env()

#: Fewest elements a thread is given: smaller arrays run on the calling thread without waking
#: the OpenMP pool. Measured (BENCHMARKS.md): 2 threads break even at 16 Ki float32 elements in
#: all and gain 1.19x at 32 Ki. Read per call.
min_per_thread: int = 1 << 14


def simd_info() -> dict[str, Any]:
    """Describe the kernel path in use and what this machine supports.

    Returns
    -------
    dict
        ``isa``: the path calls use now ('portable', 'avx2' or 'avx512');
        ``available``: every path this CPU and build can run, lowest first;
        ``openmp``: whether the extension was built with OpenMP;
        ``max_threads``: the default thread count of a call (OMP_NUM_THREADS and
        threadpoolctl limits are honoured);
        ``format2_isa``: the path format 2 (ARS-7) calls run on now: ``isa``, or a lower one where
        the CPU lacks the AES instructions that path's ARS needs (VAES for 'avx512', AES-NI for
        'avx2'); the results are the same on every path.

    Examples
    --------
    >>> import cdropout
    >>> cdropout.simd_info()["isa"] in cdropout.simd_info()["available"]
    True
    """
    return {
        "isa": ISA_NAMES[isa],
        "available": list(ISA_NAMES[: _BEST + 1]),
        "openmp": _core.have_openmp(),
        "max_threads": _core.default_threads(),
        "format2_isa": ISA_NAMES[_core.isa_for_format(isa, 2)],
    }


@contextlib.contextmanager
def forced_isa(name: str) -> Iterator[None]:
    """Run the block on the kernel path `name` (for tests; not thread-safe)."""
    global isa
    if name not in ISA_NAMES[: _BEST + 1]:
        raise ValueError(f"isa {name!r} is not available here: {list(ISA_NAMES[: _BEST + 1])}")
    saved, isa = isa, ISA_NAMES.index(name)
    try:
        yield
    finally:
        isa = saved


@contextlib.contextmanager
def forced_min_per_thread(n: int) -> Iterator[None]:
    """Let threads take chunks as small as `n` elements (for tests of the thread split)."""
    global min_per_thread
    saved, min_per_thread = min_per_thread, int(n)
    try:
        yield
    finally:
        min_per_thread = saved
