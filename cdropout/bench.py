"""Benchmark cdropout against NumPy, PyTorch and the memory floor.

Run ``python -m cdropout.bench`` (``--quick``, the default, takes under a minute) or
``python -m cdropout.bench --full`` (1 Ki to 128 Mi float32 elements). ``--help`` lists the options.

For every size the table gives, per case and thread count, the time of one call, the throughput in
Gelem/s (input elements per second) and the time as a multiple of the floor's at the same thread
count. The cases:

* floor: ``cdropout.bench.scale_inplace(x, c)``, an in-place ``x *= c`` pass written in the extension
  with the same OpenMP threads and SIMD path: one read and one write of ``x``, nothing less can do
  a dropout.
* ``np.multiply(x, c, out=x)``: the same pass in NumPy (one thread); the yardstick of a 1 Ki call.
* cdropout, forward in place; forward that also returns the bit mask; backward from a MaskKey;
  backward from a bit mask, all in place and with ``num_threads=`` set per row.
* NumPy, the classic recipe as tutorials write it: ``np.random.seed``, ``np.random.binomial``
  mask, multiply, divide.
* NumPy, the fastest correct dropout we could write (:class:`NumpyFastDropout`).
* PyTorch CPU ``torch.nn.functional.dropout(t, p, training=True)`` when torch is importable, with
  ``torch.set_num_threads`` set to the row's thread count.

Each case is warmed up, then timed over rounds of back-to-back calls (``time.perf_counter``): a
round lasts at least ``--min-time`` (1 ms), rounds go on for ``--max-time`` (0.2 s) and at least
``--repeat`` (5) rounds, and the reported time per call is the minimum (or ``--stat median``) over
the rounds; see :func:`time_call`. After the table a "targets" section
computes the ratios that the project's speed targets name, with PASS/MISS, for the sizes the run
includes.
"""
from __future__ import annotations

import argparse
import gc
import math
import os
import platform
import re
import statistics
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

import numpy as np

from . import Generator, __version__, _bench_loop, dropout, dropout_backward, simd_info
from . import _config, _core


def scale_inplace(x: np.ndarray, s: float, *, num_threads: int = 0) -> None:
    """x *= s in place (C-contiguous float array) with the extension's threads and kernel path:
    the benchmark's memory floor. Private to the benchmark (cdropout does not export it)."""
    _core.bench_scale(x, s, num_threads, _config.min_per_thread, _config.isa)

KI = 1 << 10
MI = 1 << 20
QUICK_SIZES = (1 * KI, 64 * KI, 1 * MI, 4 * MI, 16 * MI)
FULL_SIZES = (1 * KI, 4 * KI, 16 * KI, 64 * KI, 256 * KI, 1 * MI, 4 * MI, 16 * MI, 64 * MI, 128 * MI)
SEED = 20240607
DTYPE = np.float32

TimedCall = Callable[[], object]


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


def _floor(w: Workload, t: int) -> TimedCall:
    return lambda: scale_inplace(w.x, float(w.scale), num_threads=t)


def _np_multiply(w: Workload, t: int) -> TimedCall:
    return lambda: np.multiply(w.x, w.scale, out=w.x)


# Forward calls take a fresh stream each time, as in training: a fixed mask would let the
# CPU's branch predictors learn it and flatter any branchy code path.
def _forward(w: Workload, t: int) -> TimedCall:
    gen = Generator(SEED)
    return lambda: dropout(w.x, w.p, seed=gen, out=w.x, num_threads=t)


def _forward_bits(w: Workload, t: int) -> TimedCall:
    gen = Generator(SEED)
    return lambda: dropout(w.x, w.p, seed=gen, out=w.x, return_mask="bits", num_threads=t)


def _backward_from(mask_form: str) -> Callable[[Workload, int], TimedCall]:
    def make(w: Workload, t: int) -> TimedCall:
        _, mask = dropout(w.x, w.p, seed=SEED, out=w.x, return_mask=mask_form)
        return lambda: dropout_backward(w.g, mask, out=w.g, num_threads=t)
    return make


def _np_classic(w: Workload, t: int) -> TimedCall:
    return lambda: numpy_classic_dropout(w.x, w.p, SEED)


def _np_fast(w: Workload, t: int) -> TimedCall:
    drop = NumpyFastDropout(w.p, SEED)
    return lambda: drop(w.x)


def _torch(w: Workload, t: int) -> TimedCall:
    import torch
    import torch.nn.functional as F
    torch.set_num_threads(t)
    tx = torch.from_numpy(w.x)
    return lambda: F.dropout(tx, w.p, training=True)


CASES: tuple[Case, ...] = (
    Case("floor", "floor: scale_inplace (x *= c in C)", _floor),
    Case("fwd", "cdropout forward, in place", _forward),
    Case("fwd_bits", "cdropout forward + bit mask", _forward_bits),
    Case("bwd_key", "cdropout backward from key", _backward_from("key")),
    Case("bwd_bits", "cdropout backward from bit mask", _backward_from("bits")),
    Case("torch", "torch F.dropout", _torch, needs_torch=True),
    Case("np_mul", "numpy np.multiply(x, c, out=x)", _np_multiply, threaded=False),
    Case("np_fast", "numpy fastest dropout", _np_fast, threaded=False),
    Case("np_classic", "numpy classic recipe (binomial)", _np_classic, threaded=False),
)
CASE_BY_KEY = {case.key: case for case in CASES}


def torch_version() -> Optional[str]:
    """torch.__version__, or None when torch is not importable."""
    try:
        import torch
    except ImportError:
        return None
    return str(torch.__version__)


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


class Results:
    """Measured seconds per call, keyed by (size, case key, threads)."""

    def __init__(self, sizes: Sequence[int], threads: Sequence[int]) -> None:
        self.sizes = list(sizes)
        self.threads = list(threads)
        self.rows: list[Row] = []
        self._t: dict[tuple[int, str, int], float] = {}

    def add(self, row: Row) -> None:
        self.rows.append(row)
        self._t[(row.size, row.case.key, row.threads)] = row.seconds

    def get(self, size: int, key: str, threads: int) -> Optional[float]:
        if not CASE_BY_KEY[key].threaded:
            threads = 1
        return self._t.get((size, key, threads))

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
        for t in (threads if case.threaded else [1]):
            work.reset()
            if progress:
                progress(f"{fmt_size(n)}: {case.label}, {t} thread(s)")
            with np.errstate(over="ignore", invalid="ignore"):
                seconds = time_call(case.make(work, t), **timing)
            results.add(Row(n, case, t, seconds))
    del work
    gc.collect()


# --------------------------------------------------------------------------------------------
# Targets (issue 3, "Targets on this machine")
# --------------------------------------------------------------------------------------------

ALL = -1  # thread count placeholder: the largest in the run


@dataclass(frozen=True)
class Target:
    """``time(a) / time(b)`` at ``size`` must be ``<= limit`` (op '<=') or ``>= limit``."""

    label: str
    size: int
    a: tuple[str, int]
    b: tuple[str, int]
    op: str
    limit: float


TARGETS: tuple[Target, ...] = (
    Target("in place / floor, all threads", 128 * MI, ("fwd", ALL), ("floor", ALL), "<=", 1.10),
    Target("fastest NumPy / cdropout, 1 thread", 1 * MI, ("np_fast", 1), ("fwd", 1), ">=", 8.0),
    Target("fastest NumPy / cdropout, all threads", 1 * MI, ("np_fast", 1), ("fwd", ALL), ">=", 14.0),
    Target("torch F.dropout / cdropout, 1 thread", 1 * MI, ("torch", 1), ("fwd", 1), ">=", 50.0),
    Target("torch F.dropout / cdropout, all threads", 1 * MI, ("torch", ALL), ("fwd", ALL), ">=", 50.0),
    Target("in-place call / np.multiply(x, c, out=x), 1 thread", 1 * KI, ("fwd", 1), ("np_mul", 1), "<=", 2.5),
    Target("in-place call / np.multiply(x, c, out=x), all threads", 1 * KI, ("fwd", ALL), ("np_mul", 1), "<=", 2.5),
    Target("backward from key / forward, all threads", 1 * MI, ("bwd_key", ALL), ("fwd", ALL), "<=", 1.05),
    Target("backward from key / forward, all threads", 128 * MI, ("bwd_key", ALL), ("fwd", ALL), "<=", 1.05),
    Target("forward + bit mask / floor, all threads", 128 * MI, ("fwd_bits", ALL), ("floor", ALL), "<=", 1.20),
    Target("backward from bit mask / floor, all threads", 128 * MI, ("bwd_bits", ALL), ("floor", ALL), "<=", 1.20),
    Target("in place, 1 thread / 2 threads", 4 * MI, ("fwd", 1), ("fwd", 2), ">=", 1.80),
)


@dataclass(frozen=True)
class TargetResult:
    target: Target
    ratio: Optional[float]
    verdict: str  # "PASS", "MISS" or "not measured (why)"


def evaluate_targets(results: Results, has_torch: bool) -> list[TargetResult]:
    all_threads = max(results.threads)
    out = []
    for target in TARGETS:
        (ka, ta), (kb, tb) = target.a, target.b
        ta = all_threads if ta == ALL else ta
        tb = all_threads if tb == ALL else tb
        missing = []
        if target.size not in results.sizes:
            missing.append(f"size {fmt_size(target.size)} not in this run")
        for key, t in ((ka, ta), (kb, tb)):
            if CASE_BY_KEY[key].needs_torch and not has_torch:
                missing.append("torch not installed")
            elif CASE_BY_KEY[key].threaded and t not in results.threads:
                missing.append(f"{t} threads not in this run")
        if missing:
            out.append(TargetResult(target, None, "not measured (" + "; ".join(dict.fromkeys(missing)) + ")"))
            continue
        time_a = results.get(target.size, ka, ta)
        time_b = results.get(target.size, kb, tb)
        assert time_a is not None and time_b is not None
        ratio = time_a / time_b
        ok = ratio <= target.limit if target.op == "<=" else ratio >= target.limit
        out.append(TargetResult(target, ratio, "PASS" if ok else "MISS"))
    return out


# --------------------------------------------------------------------------------------------
# Formatting
# --------------------------------------------------------------------------------------------

_SIZE_RE = re.compile(r"^\s*(\d+)\s*(ki|mi|gi|k|m|g)?\s*$", re.IGNORECASE)
_UNITS = {None: 1, "k": KI, "ki": KI, "m": MI, "mi": MI, "g": 1 << 30, "gi": 1 << 30}


def parse_size(text: str) -> int:
    """'1Ki' -> 1024, '16Mi' -> 16777216, '1000' -> 1000 (K/M/G are binary too)."""
    match = _SIZE_RE.match(text)
    if not match:
        raise argparse.ArgumentTypeError(f"bad size {text!r} (use e.g. 1000, 4Ki, 16Mi)")
    n = int(match.group(1)) * _UNITS[match.group(2) and match.group(2).lower()]
    if n < 1:
        raise argparse.ArgumentTypeError(f"size must be at least 1, got {text!r}")
    return n


def parse_list(item: Callable[[str], int]) -> Callable[[str], list[int]]:
    def parse(text: str) -> list[int]:
        values = [item(part) for part in text.split(",") if part.strip()]
        if not values:
            raise argparse.ArgumentTypeError("empty list")
        return values
    return parse


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text}")
    return value


def fmt_size(n: int) -> str:
    for unit, name in ((1 << 30, "Gi"), (MI, "Mi"), (KI, "Ki")):
        if n % unit == 0:
            return f"{n // unit} {name}"
    return str(n)


def fmt_bytes(n: int) -> str:
    return f"{fmt_size(n)}B" if n % KI == 0 else f"{n} B"


def fmt_time(seconds: float) -> str:
    for scale, unit in ((1.0, "s"), (1e-3, "ms"), (1e-6, "us")):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def fmt_rate(row: Row) -> str:
    """Gelem/s of a row."""
    return f"{row.size / row.seconds / 1e9:.3g}"


def fmt_ratio(ratio: Optional[float]) -> str:
    if ratio is None:
        return "-"
    return f"{ratio:.0f}x" if ratio >= 100 else f"{ratio:.3g}x"


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Model", "Hardware", "cpu model"):
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def load_text(cores: int) -> str:
    """The 1-minute load average at start, with a warning when other work is running."""
    if not hasattr(os, "getloadavg"):
        return "unknown"
    load = os.getloadavg()[0]
    text = f"1-min load average {load:.2f} at start on {cores} cores"
    if load > 0.5:
        text += " (other processes are running: multi-thread timings will be noisy)"
    return text


def header_lines(p: float, threads: Sequence[int], timing: dict[str, Any],
                 torch_ver: Optional[str]) -> list[tuple[str, str]]:
    info = simd_info()
    cores = os.cpu_count() or 1
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cores
    available = info.get("available")
    available_text = ", ".join(available) if isinstance(available, (list, tuple)) else str(available)
    omp_env = os.environ.get("OMP_NUM_THREADS")
    return [
        ("machine", f"{platform.platform()} | {cpu_model()} | {cores} cores ({usable} usable)"),
        ("cdropout", f"{__version__} | ISA path {info.get('isa')} (available: {available_text}) | "
                     f"OpenMP {'yes' if info.get('openmp') else 'no'}, max threads {info.get('max_threads')}"
                     + (f" (OMP_NUM_THREADS={omp_env})" if omp_env else "")),
        ("threads", ", ".join(map(str, threads)) + f" (\"all threads\" = {max(threads)})"),
        ("versions", f"Python {platform.python_version()} | numpy {np.__version__} | "
                     f"torch {torch_ver or 'not installed'}"),
        ("load", load_text(usable)),
        ("workload", f"float32, p = {p}, contiguous 1-D arrays"),
        ("timing", f"{timing['stat']} over rounds of >= {timing['min_time'] * 1e3:g} ms after a warm-up; "
                   f">= {timing['repeat']} rounds and >= {timing['max_time']:g} s per case "
                   f"(at most {timing['budget']:g} s); "
                   f"x floor = time / floor time at the same thread count"),
    ]


def render_header_text(header: list[tuple[str, str]]) -> str:
    return "\n".join(["cdropout benchmark"] + [f"  {k:<9}{v}" for k, v in header])


def render_size_text(results: Results, n: int) -> str:
    width = max(len(case.label) for case in CASES)
    lines = [f"{fmt_size(n)} float32 elements ({fmt_bytes(n * 4)})",
             f"  {'case':<{width}}  {'thr':>3}  {'time':>9}  {'Gelem/s':>8}  {'x floor':>8}"]
    for row in results.for_size(n):
        lines.append(f"  {row.case.label:<{width}}  {row.threads:>3}  {fmt_time(row.seconds):>9}  "
                     f"{fmt_rate(row):>8}  {fmt_ratio(results.floor_ratio(row)):>8}")
    return "\n".join(lines)


def render_targets_text(targets: list[TargetResult]) -> str:
    lines = ["targets (each ratio is time of the first named / time of the second, in this run)"]
    width = max(len(t.target.label) for t in targets)
    for r in targets:
        t = r.target
        measured = fmt_ratio(r.ratio) if r.ratio is not None else "-"
        lines.append(f"  {fmt_size(t.size):>6}  {t.label:<{width}}  {measured:>8}  "
                     f"(target {t.op} {t.limit:g}x)  {r.verdict}")
    return "\n".join(lines)


def md_escape(text: str) -> str:
    return text.replace("*", r"\*").replace("|", r"\|")


def render_markdown(results: Results, header: list[tuple[str, str]],
                    targets: list[TargetResult], command: str) -> str:
    lines = ["### cdropout benchmark", "", f"Command: `{command}`", ""]
    lines += [f"- **{k}**: {v}" for k, v in header]
    lines += ["", "| size | case | threads | time | Gelem/s | x floor |",
              "|---:|:---|---:|---:|---:|---:|"]
    for row in results.rows:
        lines.append(f"| {fmt_size(row.size)} | {md_escape(row.case.label)} | {row.threads} | "
                     f"{fmt_time(row.seconds)} | {fmt_rate(row)} | "
                     f"{fmt_ratio(results.floor_ratio(row))} |")
    lines += ["", "| size | target | measured | limit | result |", "|---:|:---|---:|---:|:---|"]
    for r in targets:
        t = r.target
        lines.append(f"| {fmt_size(t.size)} | {t.label} | {fmt_ratio(r.ratio)} | "
                     f"{t.op} {t.limit:g}x | {r.verdict} |")
    return "\n".join(lines)


def plot(results: Results, path: str, header: list[tuple[str, str]]) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(12, 6.5))
    colors = plt.get_cmap("tab10")
    all_threads = max(results.threads)
    for i, case in enumerate(CASES):
        for t in (results.threads if case.threaded else [1]):
            points = [(row.size, row.size / row.seconds / 1e9) for row in results.rows
                      if row.case is case and row.threads == t]
            if not points:
                continue
            xs, ys = zip(*points)
            style = ":" if not case.threaded else ("-" if t == all_threads else "--")
            ax.plot(xs, ys, style, color=colors(i % 10), marker="o", markersize=3,
                    label=f"{case.label} ({t} thr)" if case.threaded else case.label)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks(results.sizes, [fmt_size(n) for n in results.sizes], rotation=45)
    ax.set_xlabel("float32 elements")
    ax.set_ylabel("Gelem/s (higher is better)")
    info = dict(header)
    ax.set_title(f"cdropout throughput vs size\n{info['cdropout']}", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m cdropout.bench",
        description="Benchmark cdropout (float32) against NumPy, PyTorch and the memory floor.")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true",
                      help="sizes " + ", ".join(map(fmt_size, QUICK_SIZES)) + " (the default; under a minute)")
    mode.add_argument("--full", action="store_true",
                      help="sizes " + ", ".join(map(fmt_size, FULL_SIZES)))
    mode.add_argument("--sizes", type=parse_list(parse_size),
                      help="comma-separated element counts, e.g. 1Ki,4Ki,1Mi (Ki/K = 1024, Mi/M = 2**20)")
    parser.add_argument("--threads", type=parse_list(positive_int),
                        help="comma-separated thread counts (default: 1 and cdropout's max_threads)")
    parser.add_argument("--repeat", type=positive_int, default=5,
                        help="timed rounds per case, at least (default 5)")
    parser.add_argument("--min-time", type=float, default=0.001,
                        help="seconds a timed round lasts at least (default 0.001)")
    parser.add_argument("--max-time", type=float, default=0.2,
                        help="seconds a case goes on adding rounds for (default 0.2)")
    parser.add_argument("--budget", type=float, default=5.0,
                        help="seconds after which a case stops adding rounds, even below --repeat (default 5)")
    parser.add_argument("--stat", choices=("min", "median"), default="min",
                        help="statistic over the rounds (default min)")
    parser.add_argument("--p", type=float, default=0.5, help="drop probability (default 0.5)")
    parser.add_argument("--no-torch", action="store_true", help="skip the PyTorch rows even if torch imports")
    parser.add_argument("--markdown", action="store_true", help="print Markdown (for BENCHMARKS.md)")
    parser.add_argument("--plot", metavar="FILE.png", help="save a throughput-vs-size plot (needs matplotlib)")
    parser.add_argument("--layouts", action="store_true",
                        help="time memory layouts instead (transposes, negative and inner strides, out= of "
                             "another layout) against the contiguous call: python -m cdropout.bench_layouts")
    _bench_loop.add_arguments(parser)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.layouts:
        from . import bench_layouts
        return bench_layouts.main(["--threads", *map(str, args.threads or [1, 2])])
    if not 0.0 <= args.p < 1.0:
        parser.error(f"--p must be in [0, 1), got {args.p}")
    if args.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            print("error: --plot needs matplotlib, which is not installed "
                  "(pip install matplotlib, or pip install 'cdropout[plot]')", file=sys.stderr)
            return 2

    sizes = args.sizes or list(FULL_SIZES if args.full else QUICK_SIZES)
    threads = args.threads or sorted({1, int(simd_info().get("max_threads") or 1)})
    torch_ver = None if args.no_torch else torch_version()
    cases = [case for case in CASES if torch_ver or not case.needs_torch]
    timing = {"repeat": args.repeat, "min_time": args.min_time, "max_time": args.max_time,
              "budget": args.budget, "stat": args.stat}
    header = header_lines(args.p, threads, timing, torch_ver)
    results = Results(sizes, threads)
    show_progress = sys.stderr.isatty()

    def progress(message: str) -> None:
        print(f"\r\033[K{message}", end="", file=sys.stderr, flush=True)

    if not args.markdown:
        print(render_header_text(header), flush=True)
    for n in sizes:
        run_size(n, cases, threads, args.p, timing, results, progress if show_progress else None)
        if show_progress:
            progress("")
        if not args.markdown:
            print("\n" + render_size_text(results, n), flush=True)

    targets = evaluate_targets(results, has_torch=torch_ver is not None)
    if args.markdown:
        command = "python -m cdropout.bench " + " ".join(argv if argv is not None else sys.argv[1:])
        print(render_markdown(results, header, targets, command.strip()))
    else:
        print("\n" + render_targets_text(targets))
    if args.plot:
        plot(results, args.plot, header)
        print(f"\nplot saved to {args.plot}", file=sys.stderr if args.markdown else sys.stdout)
    _bench_loop.report(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
