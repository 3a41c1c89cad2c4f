"""The benchmark's text and Markdown output, and its optional target check (see :mod:`cdropout.bench`)."""
from __future__ import annotations

import os
import platform
import subprocess
import sys
from dataclasses import dataclass
from typing import Any, Optional, Sequence

import numpy as np

from . import __version__, simd_info
from ._bench_cases import KI, MI, case_by_key, fmt_size, format_key
from ._bench_run import Results, Row

# --------------------------------------------------------------------------------------------
# Formatting
# --------------------------------------------------------------------------------------------


def fmt_bytes(n: int) -> str:
    return f"{fmt_size(n)}B" if n % KI == 0 else f"{n} B"


def fmt_time(seconds: float) -> str:
    for scale, unit in ((1.0, "s"), (1e-3, "ms"), (1e-6, "us")):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def fmt_rate(row: Row) -> str:
    """Gelem/s of a row."""
    return f"{row.rate:.3g}"


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
    if sys.platform == "darwin":
        try:
            out = subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True,
                                 text=True, timeout=10).stdout.strip()
            if out:
                return out
        except (OSError, subprocess.SubprocessError):
            pass
    return platform.processor() or platform.machine() or "unknown CPU"


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
    rows = results.for_size(n)
    width = max([len(row.case.label) for row in rows] + [4])
    lines = [f"{fmt_size(n)} float32 elements ({fmt_bytes(n * 4)})",
             f"  {'case':<{width}}  {'thr':>3}  {'time':>9}  {'Gelem/s':>8}  {'x floor':>8}"]
    for row in rows:
        lines.append(f"  {row.case.label:<{width}}  {row.threads:>3}  {fmt_time(row.seconds):>9}  "
                     f"{fmt_rate(row):>8}  {fmt_ratio(results.floor_ratio(row)):>8}")
    return "\n".join(lines)


def md_escape(text: str) -> str:
    return text.replace("*", r"\*").replace("|", r"\|")


# --------------------------------------------------------------------------------------------
# Targets (--check-targets): the ratios the project's speed goals name, for BENCHMARKS.md
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


def _v2(key: str) -> str:
    return format_key(key, 2)


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
    # format v2 (issue: stream format v2)
    Target("v2 in place / floor, 1 thread", 64 * KI, (_v2("fwd"), 1), ("floor", 1), "<=", 2.5),
    Target("fastest NumPy / cdropout v2, 1 thread", 1 * MI, ("np_fast", 1), (_v2("fwd"), 1), ">=", 8.0),
    Target("fastest NumPy / cdropout v2, all threads", 1 * MI, ("np_fast", 1), (_v2("fwd"), ALL), ">=", 14.0),
    Target("v2 in place / floor, all threads", 128 * MI, (_v2("fwd"), ALL), ("floor", ALL), "<=", 1.05),
    Target("v2 forward + bit mask / floor, all threads", 128 * MI, (_v2("fwd_bits"), ALL), ("floor", ALL),
           "<=", 1.15),
    Target("v2 backward from key / forward, all threads", 1 * MI, (_v2("bwd_key"), ALL), (_v2("fwd"), ALL),
           "<=", 1.05),
    Target("v2 backward from key / forward, all threads", 128 * MI, (_v2("bwd_key"), ALL), (_v2("fwd"), ALL),
           "<=", 1.05),
    Target("v2 call / v1 call, 1 thread", 1 * KI, (_v2("fwd"), 1), (format_key("fwd", 1), 1), "<=", 1.05),
)


@dataclass(frozen=True)
class TargetResult:
    target: Target
    ratio: Optional[float]
    verdict: str  # "PASS", "MISS" or "not measured (why)"


def evaluate_targets(results: Results) -> list[TargetResult]:
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
            if not results.has_case(key):
                missing.append(f"case {key} not in this run")
            elif case_by_key(key).threaded and t not in results.threads:
                missing.append(f"{t} threads not in this run")
        time_a = results.get(target.size, ka, ta)
        time_b = results.get(target.size, kb, tb)
        if missing or time_a is None or time_b is None:
            out.append(TargetResult(target, None,
                                    "not measured (" + "; ".join(dict.fromkeys(missing)) + ")"))
            continue
        ratio = time_a / time_b
        ok = ratio <= target.limit if target.op == "<=" else ratio >= target.limit
        out.append(TargetResult(target, ratio, "PASS" if ok else "MISS"))
    return out


def render_targets_text(targets: list[TargetResult]) -> str:
    lines = ["targets (each ratio is time of the first named / time of the second, in this run)"]
    width = max(len(t.target.label) for t in targets)
    for r in targets:
        t = r.target
        lines.append(f"  {fmt_size(t.size):>6}  {t.label:<{width}}  {fmt_ratio(r.ratio):>8}  "
                     f"(target {t.op} {t.limit:g}x)  {r.verdict}")
    return "\n".join(lines)


def render_markdown(results: Results, header: list[tuple[str, str]],
                    targets: Optional[list[TargetResult]], command: str) -> str:
    lines = ["### cdropout benchmark", "", f"Command: `{command}`", ""]
    lines += [f"- **{k}**: {v}" for k, v in header]
    lines += ["", "| size | case | threads | time | Gelem/s | x floor |",
              "|---:|:---|---:|---:|---:|---:|"]
    for row in results.rows:
        lines.append(f"| {fmt_size(row.size)} | {md_escape(row.case.label)} | {row.threads} | "
                     f"{fmt_time(row.seconds)} | {fmt_rate(row)} | "
                     f"{fmt_ratio(results.floor_ratio(row))} |")
    if targets:
        lines += ["", "| size | target | measured | limit | result |", "|---:|:---|---:|---:|:---|"]
        for r in targets:
            t = r.target
            lines.append(f"| {fmt_size(t.size)} | {t.label} | {fmt_ratio(r.ratio)} | "
                         f"{t.op} {t.limit:g}x | {r.verdict} |")
    return "\n".join(lines)
