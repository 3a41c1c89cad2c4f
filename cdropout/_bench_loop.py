"""Benchmark case: dropout inside a training loop, for each thread setting.

One step is ``h = x @ W`` (float32, 256x4096 by 4096x4096 by default) then
``gen.dropout(h, 0.5, out=h)``. Between two dropout calls the BLAS library has the cores, so
OpenMP's helper threads have gone to sleep and the other core may still be busy: the situation
back-to-back timings never show. Each setting runs in a fresh Python process (its own thread pools,
environment and thread record), for a few warm-up steps and then ``steps`` timed ones; a default
row and its ``num_threads=1`` row alternate step by step in one process, so they share the load:

* ``default``: cdropout's default thread count; ``num_threads=1``: the calling thread only;
* each with the BLAS library on all cores, and limited to one thread (threadpoolctl when
  installed, and ``OPENBLAS_NUM_THREADS=1`` / ``MKL_NUM_THREADS=1``), which leaves a core free;
* with ``busy=True``: another process spinning on one core, and back-to-back calls (no matmul).

Run it alone with ``python -m cdropout._bench_loop [--steps N] [--busy] [--markdown]``;
``cdropout-bench`` shows it after its table.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Any, Optional, Sequence

import numpy as np

KI = 1 << 10
MI = 1 << 20


@dataclass(frozen=True)
class Setting:
    """One row of the loop table."""

    label: str
    num_threads: Optional[int]  # None: the default
    blas_one: bool  # BLAS limited to one thread
    matmul: bool = True  # False: back-to-back dropout calls only
    busy: bool = False  # another process spins on one core meanwhile


# Settings of one tuple run in one process, alternating step by step (back to back: in blocks of
# 10 calls), so that they share the machine's load; an explicit num_threads never changes the
# default's record, so the default learns as it would alone.
GROUPS = (
    (Setting("default", None, False), Setting("num_threads=1", 1, False)),
    (Setting("default, BLAS 1 thread", None, True), Setting("num_threads=1, BLAS 1 thread", 1, True)),
    (Setting("back to back 4 Mi, default", None, False, matmul=False),
     Setting("back to back 4 Mi, num_threads=1", 1, False, matmul=False)),
    (Setting("back to back 4 Mi, num_threads=2", 2, False, matmul=False),),
)
BUSY_GROUPS = (
    (Setting("default, core busy", None, False, busy=True),
     Setting("num_threads=1, core busy", 1, False, busy=True)),
    (Setting("back to back 4 Mi, default, core busy", None, False, matmul=False, busy=True),
     Setting("back to back 4 Mi, num_threads=1, core busy", 1, False, matmul=False, busy=True)),
    (Setting("back to back 4 Mi, num_threads=2, core busy", 2, False, matmul=False, busy=True),),
)


def _spin(stop: Any) -> None:
    while not stop.is_set():
        pass


def _child(group: Sequence[Setting], steps: int, warmup: int, rows: int,
           width: int) -> list[dict[str, Any]]:
    """Run the settings of one group in this process, alternating; per setting, the times (s) of
    its timed steps and the threads its calls ran on."""
    import cdropout
    from cdropout import _core

    first = group[0]
    limiter: Any = None
    if first.blas_one:
        try:
            import threadpoolctl  # type: ignore[import-untyped]

            limiter = threadpoolctl.threadpool_limits(1, user_api="blas")
        except ImportError:
            pass
    rng = np.random.default_rng(0)
    gen = cdropout.Generator(1)
    out: list[dict[str, Any]] = [{"dropout": [], "matmul": [], "threads": []} for _ in group]
    if first.matmul:
        x = rng.standard_normal((rows, width), dtype=np.float32)
        w = (rng.standard_normal((width, width), dtype=np.float32) / np.float32(np.sqrt(width)))
        h = np.empty((rows, width), np.float32)
        for i in range(warmup + steps):
            for s, r in zip(group, out):
                t0 = time.perf_counter()
                np.matmul(x, w, out=h)
                t1 = time.perf_counter()
                gen.dropout(h, 0.5, out=h, num_threads=s.num_threads)
                t2 = time.perf_counter()
                if i >= warmup:
                    r["matmul"].append(t1 - t0)
                    r["dropout"].append(t2 - t1)
                    r["threads"].append(_core.last_threads())
    else:
        h = rng.standard_normal(4 * MI, dtype=np.float32)
        for i in range(warmup + steps):
            for s, r in zip(group, out):
                for _ in range(10):
                    t0 = time.perf_counter()
                    gen.dropout(h, 0.5, out=h, num_threads=s.num_threads)
                    t1 = time.perf_counter()
                    if i >= warmup:
                        r["dropout"].append(t1 - t0)
                        r["threads"].append(_core.last_threads())
    if limiter is not None:
        limiter.restore_original_limits()
    return out


def run_group(group: Sequence[Setting], steps: int = 10, warmup: int = 3, rows: int = 256,
              width: int = 4096) -> list[dict[str, Any]]:
    """Run a group of settings in a fresh Python process (and a spinning one beside it when busy)."""
    first = group[0]
    # The child imports the very cdropout this process runs (installed or built in place), from a
    # folder outside any source tree, which Python would otherwise search first.
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [os.path.dirname(os.path.dirname(os.path.abspath(__file__))), os.environ.get("PYTHONPATH", "")]))
    if first.blas_one:
        env.update(OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    code = (f"import json, sys; from cdropout._bench_loop import Setting, _child; "
            f"print(json.dumps(_child([Setting(*a) for a in json.loads(sys.argv[1])], {steps}, "
            f"{warmup}, {rows}, {width})))")
    args = json.dumps([[s.label, s.num_threads, s.blas_one, s.matmul, s.busy] for s in group])
    spinner = stop = None
    if first.busy:
        ctx = mp.get_context("spawn")
        stop = ctx.Event()
        spinner = ctx.Process(target=_spin, args=(stop,), daemon=True)
        spinner.start()
    try:
        with tempfile.TemporaryDirectory() as cwd:
            done = subprocess.run([sys.executable, "-c", code, args], env=env, capture_output=True,
                                  text=True, check=True, cwd=cwd)
    finally:
        if spinner is not None and stop is not None:
            stop.set()
            spinner.join(5)
    result: list[dict[str, Any]] = json.loads(done.stdout)
    return result


def _stats(ts: Sequence[float]) -> tuple[float, float]:
    a = np.asarray(ts)
    return float(np.median(a)), float(np.percentile(a, 95))


def _fmt_us(s: float) -> str:
    return f"{s * 1e6:,.0f} us" if s < 0.1 else f"{s * 1e3:,.1f} ms"


def run(steps: int = 10, busy: bool = False, warmup: int = 3) -> list[tuple[Setting, dict[str, Any]]]:
    """Every setting (and the busy ones when asked), in order."""
    rows: list[tuple[Setting, dict[str, Any]]] = []
    for group in GROUPS + (BUSY_GROUPS if busy else ()):
        rows += list(zip(group, run_group(group, steps=steps, warmup=warmup)))
    return rows


def render(results: list[tuple[Setting, dict[str, Any]]], markdown: bool = False) -> str:
    """The loop table: dropout median and p95, matmul median, ratios to num_threads=1 with the same
    BLAS setting and load, and how many threads the calls ran on."""
    one = {}
    for s, r in results:
        if s.num_threads == 1:
            one[(s.blas_one, s.matmul, s.busy)] = r
    head = ["setting", "dropout median", "dropout p95", "x one thread (median / p95)",
            "matmul median", "matmul x one thread", "calls on >1 thread"]
    rows = []
    for s, r in results:
        dm, dp = _stats(r["dropout"])
        ref = one.get((s.blas_one, s.matmul, s.busy))
        rm, rp = _stats(ref["dropout"]) if ref else (float("nan"), float("nan"))
        ratio = f"{dm / rm:.2f}x / {dp / rp:.2f}x" if ref else "-"
        if r["matmul"]:
            mm = float(np.median(r["matmul"]))
            mmr = f"{mm / float(np.median(ref['matmul'])):.3f}x" if ref and ref["matmul"] else "-"
            mms = _fmt_us(mm)
        else:
            mms, mmr = "-", "-"
        multi = sum(1 for t in r["threads"] if t > 1)
        rows.append([s.label, _fmt_us(dm), _fmt_us(dp), ratio, mms, mmr, f"{multi}/{len(r['threads'])}"])
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|:---|" + "---:|" * (len(head) - 1)]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(lines)
    widths = [max(len(str(x[i])) for x in [head] + rows) for i in range(len(head))]
    fmt = lambda r: "  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w)  # noqa: E731
                              for i, (c, w) in enumerate(zip(r, widths)))
    return "\n".join([fmt(head)] + [fmt(r) for r in rows])


def section(steps: int = 10, busy: bool = False, markdown: bool = False) -> str:
    """The titled loop section that ``cdropout-bench`` prints."""
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    title = (f"Training loop: h = x @ W (256x4096 by 4096x4096 float32), then dropout(h, 0.5, out=h); "
             f"{steps} steps after 3 warm-up steps, a setting and its num_threads=1 row alternating in one "
             f"fresh process; back to back: {10 * steps} calls in blocks of 10; 1-min load average "
             f"{load:.2f}")
    table = render(run(steps=steps, busy=busy), markdown=markdown)
    return f"## {title}\n\n{table}" if markdown else f"{title}\n{table}"


def dram(n: int = 128 * MI, reps: int = 7, threads: Sequence[int] = (1, 2)) -> list[tuple[str, int, float, float]]:
    """Out of cache, float32: the in-place floor ``x *= c``, dropout in place, in place returning
    the bit mask, and out of place into a preallocated array; rounds interleaved, minimum kept.
    Returns (case, threads, seconds, seconds / floor at the same thread count)."""
    import cdropout
    from cdropout.bench import scale_inplace

    x = np.ones(n, np.float32)
    y = np.empty(n, np.float32)
    gen = cdropout.Generator(5)
    cases = {
        "floor: x *= c in place": lambda t: scale_inplace(x, 1.0, num_threads=t),
        "dropout in place": lambda t: gen.dropout(x, 0.5, out=x, num_threads=t),
        "dropout in place + bit mask": lambda t: gen.dropout(x, 0.5, out=x, return_mask="bits", num_threads=t),
        "dropout out of place (out= given)": lambda t: gen.dropout(x, 0.5, out=y, num_threads=t),
    }
    best = {(c, t): float("inf") for c in cases for t in threads}
    for _ in range(reps):
        for t in threads:
            for c, f in cases.items():
                t0 = time.perf_counter()
                f(t)
                best[(c, t)] = min(best[(c, t)], time.perf_counter() - t0)
                x.fill(1.0)  # keep the values finite: dropout scales the kept ones by 2
    return [(c, t, best[(c, t)], best[(c, t)] / best[("floor: x *= c in place", t)])
            for t in threads for c in cases]


def render_dram(rows: list[tuple[str, int, float, float]], markdown: bool = False) -> str:
    head = ["case (128 Mi float32)", "threads", "time", "x floor"]
    body = [[c, str(t), _fmt_us(s), f"{r:.3f}x"] for c, t, s, r in rows]
    if markdown:
        return "\n".join(["| " + " | ".join(head) + " |", "|:---|---:|---:|---:|"] +
                         ["| " + " | ".join(r) + " |" for r in body])
    return "\n".join("  ".join(str(c).ljust(36) if i == 0 else str(c).rjust(10) for i, c in enumerate(r))
                     for r in [head] + body)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of the loop section, for ``cdropout-bench``'s parser."""
    group = parser.add_argument_group("training loop (shown after the table)")
    group.add_argument("--no-loop", action="store_true", help="skip the training-loop section")
    group.add_argument("--loop-steps", type=int, default=10, help="timed steps per setting (default 10)")
    group.add_argument("--loop-busy", action="store_true",
                       help="also run the loop with another process busy on one core (on with --full)")


def report(args: argparse.Namespace) -> None:
    """Print the loop section as ``cdropout-bench``'s options ask."""
    if getattr(args, "no_loop", False):
        return
    busy = bool(getattr(args, "loop_busy", False) or getattr(args, "full", False))
    markdown = bool(getattr(args, "markdown", False))
    print("\n" + section(steps=getattr(args, "loop_steps", 10), busy=busy, markdown=markdown), flush=True)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cdropout._bench_loop", description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=10, help="timed steps per setting (default 10)")
    parser.add_argument("--busy", action="store_true", help="also run with another process busy on one core")
    parser.add_argument("--markdown", action="store_true", help="print Markdown")
    parser.add_argument("--dram", action="store_true",
                        help="instead: 128 Mi float32 out of cache against the x *= c floor")
    args = parser.parse_args(argv)
    if args.dram:
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        print(f"1-min load average {load:.2f}; minimum of 7 interleaved rounds")
        print(render_dram(dram(), markdown=args.markdown))
        return 0
    print(section(steps=args.steps, busy=args.busy, markdown=args.markdown))
    return 0


if __name__ == "__main__":
    sys.exit(main())
