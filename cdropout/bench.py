"""Benchmark cdropout against NumPy, PyTorch and the memory floor: the ``cdropout-bench`` command.

Run ``cdropout-bench`` (``--quick``, the default, takes under a minute) or ``cdropout-bench --full``
(1 Ki to 128 Mi float32 elements); ``python -m cdropout.bench`` is the same. ``--help`` lists the
options.

For every size the table gives, per case and thread count, the time of one call, the throughput in
Gelem/s (input elements per second) and the time as a multiple of the floor's at the same thread
count. The built-in cases:

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
  ``torch.set_num_threads`` set to the row's thread count (and restored afterwards).

Each case is warmed up, then timed over rounds of back-to-back calls (``time.perf_counter``): a
round lasts at least ``--min-time`` (1 ms), rounds go on for ``--max-time`` (0.2 s) and at least
``--repeat`` (5) rounds, and the reported time per call is the minimum (or ``--stat median``) over
the rounds; see :func:`time_call`. ``--check-targets`` adds the ratios that the project's speed
goals name, each marked PASS or MISS, for the sizes the run includes.

More cases: put them in a new module ``cdropout/_bench_cases_<name>.py`` that defines ``CASES`` (a
sequence of :class:`Case`); the command picks up every such module. The module docstring of
``cdropout._bench_cases`` shows one; ``--list-cases`` shows what a run can include.

The code: ``_bench_cases`` (cases, baselines, registry), ``_bench_run`` (timing),
``_bench_report`` (text, Markdown, targets), ``_bench_plot`` (the plot), this module (the command).
"""
from __future__ import annotations

import argparse
import math
import sys
from typing import Callable, Optional, Sequence

from . import simd_info
from ._checks import MAX_THREADS
from ._bench_cases import (  # noqa: F401  (re-exported: the benchmark's public names)
    CASES,
    DTYPE,
    KI,
    MI,
    SEED,
    Case,
    NumpyFastDropout,
    TimedCall,
    Workload,
    all_cases,
    case_by_key,
    fmt_size,
    numpy_classic_dropout,
    register_case,
    scale_inplace,
    select_cases,
    torch_version,
)
from ._bench_plot import check_plot_path, plot
from ._bench_report import (  # noqa: F401
    TARGETS,
    cpu_model,
    evaluate_targets,
    header_lines,
    render_header_text,
    render_markdown,
    render_size_text,
    render_targets_text,
)
from ._bench_run import Results, Row, run_size, time_call  # noqa: F401

QUICK_SIZES = (1 * KI, 64 * KI, 1 * MI, 4 * MI, 16 * MI)
FULL_SIZES = (1 * KI, 4 * KI, 16 * KI, 64 * KI, 256 * KI, 1 * MI, 4 * MI, 16 * MI, 64 * MI, 128 * MI)
PROG = "cdropout-bench"

# --------------------------------------------------------------------------------------------
# Argument types
# --------------------------------------------------------------------------------------------

_UNITS = {"": 1, "k": KI, "ki": KI, "m": MI, "mi": MI, "g": 1 << 30, "gi": 1 << 30}


def parse_size(text: str) -> int:
    """'1Ki' -> 1024, '16Mi' -> 16777216, '1000' -> 1000 (K/M/G are binary too)."""
    body = text.strip()
    digits = len(body) - len(body.lstrip("0123456789"))
    unit = body[digits:].strip().lower()
    if digits == 0 or unit not in _UNITS:
        raise argparse.ArgumentTypeError(f"bad size {text!r} (use e.g. 1000, 4Ki, 16Mi)")
    n = int(body[:digits]) * _UNITS[unit]
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
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text}")
    return value


def seconds(text: str) -> float:
    """A finite number of seconds >= 0 (NaN, inf and negative values are refused)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a finite number of seconds >= 0, got {text!r}")
    return value


def max_threads() -> int:
    """The most threads a cdropout call runs on (larger num_threads are capped to this)."""
    return MAX_THREADS


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Benchmark cdropout (float32) against NumPy, PyTorch and the memory floor.")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true",
                      help="sizes " + ", ".join(map(fmt_size, QUICK_SIZES)) + " (the default; under a minute)")
    mode.add_argument("--full", action="store_true",
                      help="sizes " + ", ".join(map(fmt_size, FULL_SIZES)))
    mode.add_argument("--sizes", type=parse_list(parse_size),
                      help="comma-separated element counts, e.g. 1Ki,4Ki,1Mi (Ki/K = 1024, Mi/M = 2**20)")
    parser.add_argument("--threads", type=parse_list(positive_int),
                        help="comma-separated thread counts (default: 1 and cdropout's max_threads; "
                             f"at most {max_threads()})")
    parser.add_argument("--cases", type=lambda s: [k.strip() for k in s.split(",") if k.strip()],
                        help="comma-separated case keys to run, in that order (default: every "
                             "default case; see --list-cases)")
    parser.add_argument("--list-cases", action="store_true", help="list the cases and exit")
    parser.add_argument("--repeat", type=positive_int, default=5,
                        help="timed rounds per case, at least (default 5)")
    parser.add_argument("--min-time", type=seconds, default=0.001,
                        help="seconds a timed round lasts at least (default 0.001)")
    parser.add_argument("--max-time", type=seconds, default=0.2,
                        help="seconds a case goes on adding rounds for (default 0.2)")
    parser.add_argument("--budget", type=seconds, default=5.0,
                        help="seconds after which a case stops adding rounds, even below --repeat (default 5)")
    parser.add_argument("--stat", choices=("min", "median"), default="min",
                        help="statistic over the rounds (default min)")
    parser.add_argument("--p", type=float, default=0.5, help="drop probability (default 0.5)")
    parser.add_argument("--no-torch", action="store_true", help="skip the PyTorch rows even if torch imports")
    parser.add_argument("--markdown", action="store_true", help="print Markdown (for BENCHMARKS.md)")
    parser.add_argument("--check-targets", action="store_true",
                        help="also compare the ratios named by the project's speed goals with "
                             "their limits (PASS/MISS)")
    parser.add_argument("--plot", metavar="FILE.png",
                        help="save a plot: throughput and speed-up against size (needs matplotlib)")
    parser.add_argument("--layouts", action="store_true",
                        help="time memory layouts instead (transposes, negative and inner strides, out= of "
                             "another layout) against the contiguous call")
    return parser


def _list_cases(has_torch: bool) -> str:
    lines = ["key          default  label"]
    for case in all_cases():
        note = "" if has_torch or not case.needs_torch else "  (needs torch)"
        lines.append(f"{case.key:<12} {'yes' if case.default else 'no':<8} {case.label}{note}")
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args_in = list(sys.argv[1:] if argv is None else argv)
    if args_in[:1] == ["torch-step"]:  # the PyTorch training-step case (cdropout/_bench_torch.py)
        from ._bench_torch import main as torch_step
        return torch_step(args_in[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.layouts:
        from . import bench_layouts
        return bench_layouts.main(["--threads", *map(str, args.threads or [1, 2])])
    if not 0.0 <= args.p < 1.0:
        parser.error(f"--p must be in [0, 1), got {args.p}")
    cap = max_threads()
    if args.threads and max(args.threads) > cap:
        parser.error(f"--threads: cdropout runs a call on at most {cap} threads on this machine; "
                     f"got {max(args.threads)}")
    torch_ver = None if args.no_torch else torch_version()
    if args.list_cases:
        print(_list_cases(torch_ver is not None))
        return 0
    if args.cases:
        unknown = [k for k in args.cases if k not in {c.key for c in all_cases()}]
        if unknown:
            parser.error(f"--cases: unknown case {', '.join(map(repr, unknown))} (see --list-cases)")
    if args.plot:
        problem = check_plot_path(args.plot)
        if problem:
            parser.error(problem)

    sizes = args.sizes or list(FULL_SIZES if args.full else QUICK_SIZES)
    threads = args.threads or sorted({1, min(cap, int(simd_info().get("max_threads") or 1))})
    cases = select_cases(args.cases, has_torch=torch_ver is not None)
    if not cases:
        parser.error("no case to run (the cases asked for need torch, which is not importable)")
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

    targets = evaluate_targets(results) if args.check_targets else None
    if args.markdown:
        command = PROG + " " + " ".join(argv if argv is not None else sys.argv[1:])
        print(render_markdown(results, header, targets, command.strip()))
    elif targets:
        print("\n" + render_targets_text(targets))
    if args.plot:
        plot(results, args.plot, cpu=cpu_model(), p=args.p)
        print(f"\nplot saved to {args.plot}", file=sys.stderr if args.markdown else sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
