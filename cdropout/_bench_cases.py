"""The benchmark's cases, its NumPy baselines and the registry of cases (see :mod:`cdropout.bench`).

Adding a case
-------------
Write a new module ``cdropout/_bench_cases_<name>.py`` that defines ``CASES``, a sequence of
:class:`Case`. ``cdropout-bench`` imports every ``cdropout._bench_cases_*`` module and runs their
cases after the built-in ones (alphabetical by module), so nothing else has to change. Import
optional dependencies (torch, dask) inside ``make``, not at the top of the module::

    # cdropout/_bench_cases_layouts.py
    from ._bench_cases import Case, TimedCall, Workload

    def _transposed(w: Workload, t: int) -> TimedCall:
        x2 = w.x.reshape(-1, 64).T          # views of the workload's arrays; no copy per call
        return lambda: dropout(x2, w.p, seed=1, out=x2, num_threads=t)

    CASES = (Case("fwd_T", "cdropout forward, transposed", _transposed),)

A case's ``make(work, threads)`` does all the setup and returns the zero-argument call that is
timed; ``work`` holds ``work.n`` float32 elements (``work.x``, ``work.g``, refilled before each
case) and ``work.p``. ``threaded=False`` runs a case once, on one thread. ``default=False`` keeps a
slow or specialised case out of a plain run (``--cases KEY,...`` selects it; ``--list-cases``
shows them all). ``scope`` is entered around the case's setup and timing, e.g. to restore global
state the case changes. :func:`register_case` adds a case from anywhere else.
"""
from __future__ import annotations

import contextlib
import importlib
import pkgutil
from dataclasses import dataclass
from typing import Callable, ContextManager, Iterator, Optional, Sequence

import numpy as np

from . import FORMAT_VERSION, Generator, _config, _core, dropout, dropout_backward

KI = 1 << 10
MI = 1 << 20
SEED = 20240607
DTYPE = np.float32

TimedCall = Callable[[], object]


def fmt_size(n: int) -> str:
    """1024 -> '1 Ki', 128 * 2**20 -> '128 Mi', 1000 -> '1000'."""
    for unit, name in ((1 << 30, "Gi"), (MI, "Mi"), (KI, "Ki")):
        if n % unit == 0:
            return f"{n // unit} {name}"
    return str(n)


# --------------------------------------------------------------------------------------------
# The NumPy baselines
# --------------------------------------------------------------------------------------------

def numpy_classic_dropout(x: np.ndarray, p: float, seed: int) -> np.ndarray:
    """Dropout the way most tutorials write it (returns float64, as the recipe does)."""
    np.random.seed(seed)
    mask = np.random.binomial(1, 1 - p, size=x.shape)
    return x * mask / (1 - p)


class NumpyFastDropout:
    """The fastest correct pure-NumPy dropout we found: in place on a contiguous float32 array.

    - Randomness: raw 64-bit words of SFC64 (the fastest NumPy bit generator here), each split
      into two uint32 draws; an element is kept iff its draw is below ``T = round((1 - p) * 2**32)``.
      That is a 32-bit threshold, the resolution cdropout uses (Generator.random(dtype=float32)
      has 24 bits and is about 1.7x slower). Nothing is special-cased for p = 0.5.
    - Apply: ``x *= keep`` (bool cast to 0.0/1.0) then ``x *= scale``; each kept element is
      ``x * scale`` rounded once, each dropped one is 0.0, as a dropout must give.
    - Cache blocking: the array is processed in chunks of 64 Ki elements so that the draws, the
      mask and the chunk of ``x`` stay in L2 (about 1.2x faster than whole-array passes at 1 Mi
      and beyond; chunk sizes from 8 Ki to 256 Ki were tried).
    The bit generator is created once and advances on every call, like a training loop's would.
    """

    CHUNK = 64 * KI

    def __init__(self, p: float, seed: int, chunk: int = CHUNK) -> None:
        if not 0.0 <= p < 1.0:
            raise ValueError(f"p must be in [0, 1), got {p}")
        threshold = round((1.0 - p) * 2.0**32)
        self.keep_all = threshold >= 2**32
        self.threshold = np.uint32(min(threshold, 2**32 - 1))
        self.scale = DTYPE(1.0 / (1.0 - p))
        self.bitgen = np.random.SFC64(seed)
        self.chunk = chunk
        self._keep = np.empty(chunk, dtype=bool)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if x.dtype != DTYPE or x.ndim != 1 or not x.flags.c_contiguous:
            raise ValueError("NumpyFastDropout takes a contiguous 1-D float32 array")
        if self.keep_all:
            return x
        for start in range(0, x.shape[0], self.chunk):
            xs = x[start:start + self.chunk]
            k = xs.shape[0]
            draws = self.bitgen.random_raw((k + 1) // 2).view(np.uint32)[:k]
            keep = self._keep[:k]
            np.less(draws, self.threshold, out=keep)
            np.multiply(xs, keep, out=xs)
            np.multiply(xs, self.scale, out=xs)
        return x


# --------------------------------------------------------------------------------------------
# Cases
# --------------------------------------------------------------------------------------------

@dataclass
class Workload:
    """The arrays of one size; ``reset`` refills them before every case.

    In-place cases run again and again on the same array, so its values drift to 0 and inf
    (every scale is >= 1, so never to subnormals). No timed operation's speed depends on the
    values; the overflow warnings this gives NumPy are silenced.
    """

    n: int
    p: float
    base: np.ndarray
    x: np.ndarray
    g: np.ndarray

    @classmethod
    def create(cls, n: int, p: float) -> "Workload":
        base = np.random.default_rng(SEED).standard_normal(n, dtype=DTYPE)
        return cls(n, p, base, base.copy(), base.copy())

    def reset(self) -> None:
        np.copyto(self.x, self.base)
        np.copyto(self.g, self.base)

    @property
    def scale(self) -> np.floating:
        return DTYPE(1.0 / (1.0 - self.p))


@dataclass(frozen=True)
class Case:
    """One benchmarked operation. ``make(work, threads)`` does the setup and returns the call."""

    key: str
    label: str
    make: Callable[[Workload, int], TimedCall]
    threaded: bool = True        # run once per thread count; else once, on one thread
    needs_torch: bool = False
    default: bool = True         # part of a run without --cases
    scope: Optional[Callable[[], ContextManager[object]]] = None  # entered around setup + timing

    def entered(self) -> ContextManager[object]:
        """The case's ``scope``, or a context that does nothing."""
        return self.scope() if self.scope is not None else contextlib.nullcontext()


def scale_inplace(x: np.ndarray, s: float, *, num_threads: int = 0) -> None:
    """x *= s in place (C-contiguous float array) with the extension's threads and kernel path:
    the benchmark's memory floor. Private to the benchmark (cdropout does not export it)."""
    _core.bench_scale(x, s, num_threads, _config.min_per_thread, _config.isa)


def _floor(w: Workload, t: int) -> TimedCall:
    return lambda: scale_inplace(w.x, float(w.scale), num_threads=t)


def _np_multiply(w: Workload, t: int) -> TimedCall:
    return lambda: np.multiply(w.x, w.scale, out=w.x)


#: The stream format the plain cases (fwd, fwd_bits, bwd_key, bwd_bits) use: the default one.
#: The cases ending in ``_v1`` or ``_v2`` run the other format, in the same run.
OTHER_FORMAT = 1 if FORMAT_VERSION == 2 else 2


def format_key(key: str, fmt: int) -> str:
    """The case key of `key` ('fwd', 'fwd_bits', 'bwd_key') run in stream format `fmt`."""
    return key if fmt == FORMAT_VERSION else f"{key}_v{fmt}"


# Forward calls take a fresh stream each time, as in training: a fixed mask would let the
# CPU's branch predictors learn it and flatter any branchy code path.
def _forward_in(fmt: int) -> Callable[[Workload, int], TimedCall]:
    def make(w: Workload, t: int) -> TimedCall:
        gen = Generator(SEED, format=fmt)
        return lambda: dropout(w.x, w.p, seed=gen, out=w.x, num_threads=t)
    return make


def _forward_bits_in(fmt: int) -> Callable[[Workload, int], TimedCall]:
    def make(w: Workload, t: int) -> TimedCall:
        gen = Generator(SEED, format=fmt)
        return lambda: dropout(w.x, w.p, seed=gen, out=w.x, return_mask="bits", num_threads=t)
    return make


def _backward_from(mask_form: str, fmt: int = FORMAT_VERSION) -> Callable[[Workload, int], TimedCall]:
    def make(w: Workload, t: int) -> TimedCall:
        _, mask = dropout(w.x, w.p, seed=SEED, out=w.x, return_mask=mask_form, format=fmt)
        return lambda: dropout_backward(w.g, mask, out=w.g, num_threads=t)
    return make


def _np_classic(w: Workload, t: int) -> TimedCall:
    return lambda: numpy_classic_dropout(w.x, w.p, SEED)


def _np_fast(w: Workload, t: int) -> TimedCall:
    drop = NumpyFastDropout(w.p, SEED)
    return lambda: drop(w.x)


@contextlib.contextmanager
def torch_threads_kept() -> Iterator[None]:
    """Restore ``torch.set_num_threads`` afterwards. PyTorch and cdropout may share one OpenMP
    runtime, so torch's setting would otherwise become cdropout's default too."""
    import torch
    before = torch.get_num_threads()
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _torch(w: Workload, t: int) -> TimedCall:
    import torch
    import torch.nn.functional as F
    torch.set_num_threads(t)
    tx = torch.from_numpy(w.x)
    return lambda: F.dropout(tx, w.p, training=True)


CASES: tuple[Case, ...] = (
    Case("floor", "floor: scale_inplace (x *= c in C)", _floor),
    Case("fwd", f"cdropout forward, in place (format v{FORMAT_VERSION})", _forward_in(FORMAT_VERSION)),
    Case("fwd_bits", f"cdropout forward + bit mask (format v{FORMAT_VERSION})", _forward_bits_in(FORMAT_VERSION)),
    Case("bwd_key", f"cdropout backward from key (format v{FORMAT_VERSION})", _backward_from("key")),
    Case("bwd_bits", "cdropout backward from bit mask", _backward_from("bits")),
    Case(format_key("fwd", OTHER_FORMAT), f"cdropout forward, in place (format v{OTHER_FORMAT})",
         _forward_in(OTHER_FORMAT)),
    Case(format_key("fwd_bits", OTHER_FORMAT), f"cdropout forward + bit mask (format v{OTHER_FORMAT})",
         _forward_bits_in(OTHER_FORMAT)),
    Case(format_key("bwd_key", OTHER_FORMAT), f"cdropout backward from key (format v{OTHER_FORMAT})",
         _backward_from("key", OTHER_FORMAT)),
    Case("torch", "torch F.dropout", _torch, needs_torch=True, scope=torch_threads_kept),
    Case("np_mul", "numpy np.multiply(x, c, out=x)", _np_multiply, threaded=False),
    Case("np_fast", "numpy fastest dropout", _np_fast, threaded=False),
    Case("np_classic", "numpy classic recipe (binomial)", _np_classic, threaded=False),
)


# --------------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------------

_registered: list[Case] = []
_discovered: Optional[list[Case]] = None


def register_case(case: Case) -> None:
    """Add a case to every later run (its key must be new)."""
    if any(c.key == case.key for c in all_cases()):
        raise ValueError(f"a benchmark case with key {case.key!r} exists already")
    _registered.append(case)


CASE_MODULE_PREFIX = "_bench_cases_"


def _discover() -> list[Case]:
    """The ``CASES`` of every ``cdropout._bench_cases_*`` module."""
    global _discovered
    if _discovered is None:
        found: list[Case] = []
        package = importlib.import_module(__package__ or "cdropout")
        names = sorted(m.name for m in pkgutil.iter_modules(package.__path__)
                       if m.name.startswith(CASE_MODULE_PREFIX))
        for name in names:
            module = importlib.import_module(f"{package.__name__}.{name}")
            cases = getattr(module, "CASES", None)
            if cases is None or not all(isinstance(c, Case) for c in cases):
                raise TypeError(f"{module.__name__} must define CASES, a sequence of Case")
            found.extend(cases)
        _discovered = found
    return _discovered


def all_cases() -> list[Case]:
    """Built-in cases, then those of ``_bench_cases_*`` modules, then registered ones."""
    cases = [*CASES, *_discover(), *_registered]
    keys = [c.key for c in cases]
    duplicates = sorted({k for k in keys if keys.count(k) > 1})
    if duplicates:
        raise RuntimeError(f"benchmark case keys defined twice: {', '.join(duplicates)}")
    return cases


def case_by_key(key: str) -> Case:
    for case in all_cases():
        if case.key == key:
            return case
    raise KeyError(key)


def select_cases(keys: Optional[Sequence[str]], has_torch: bool) -> list[Case]:
    """The cases of a run: ``keys`` in that order, or every default case; torch ones need torch."""
    cases = all_cases() if keys is None else [case_by_key(k) for k in keys]
    if keys is None:
        cases = [c for c in cases if c.default]
    return [c for c in cases if has_torch or not c.needs_torch]


def torch_version() -> Optional[str]:
    """torch.__version__, or None when torch is not importable."""
    try:
        import torch
    except ImportError:
        return None
    return str(torch.__version__)
