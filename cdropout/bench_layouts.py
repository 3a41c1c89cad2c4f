"""Benchmark of cdropout on memory layouts other than C order, against the contiguous call.

Run ``python -m cdropout.bench_layouts`` (``--help`` for the options). For each layout of a
float32 array (views of a 1024 x 1024 array, a 64 x 64 x 256 array and its transposes, an ``out=`` of
another layout), it times ``cdropout.dropout`` in place (or into ``out``) and
``np.multiply(v, c, out=v)``, and prints the cost per element as a multiple of the contiguous
call's at the same thread count. Timings are the minimum over interleaved rounds: run it on a quiet
machine, and read the load average it prints.
"""
from __future__ import annotations

import argparse
import os
import time
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np

from . import dropout

Layout = Tuple[str, Callable[[np.ndarray, np.ndarray], Tuple[np.ndarray, np.ndarray]]]


def layouts() -> List[Layout]:
    """(name, make(a2, a3) -> (x, out)) over a 2-D and a 3-D float32 array; out is x for in place."""
    def same(f: Callable[[np.ndarray], np.ndarray]) -> Callable[[np.ndarray, np.ndarray], Tuple[np.ndarray, np.ndarray]]:
        def make(a2: np.ndarray, a3: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
            v = f(a3 if f.__name__ == "three_d" else a2)
            return v, v
        return make

    def t3(f: Callable[[np.ndarray], np.ndarray]) -> Callable[[np.ndarray], np.ndarray]:
        def three_d(a: np.ndarray) -> np.ndarray:
            return f(a)
        return three_d

    def another(f: Callable[[np.ndarray], np.ndarray], out_order: str) -> Callable[[np.ndarray, np.ndarray], Tuple[np.ndarray, np.ndarray]]:
        def make(a2: np.ndarray, a3: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
            v = f(a2)
            if out_order == "reversed":
                return v, np.empty_like(a2)[::-1, ::-1]
            return v, np.empty(v.shape, v.dtype, order="F" if out_order == "F" else "C")
        return make

    return [
        ("contiguous", same(lambda a: a)),
        ("x[::2]", same(lambda a: a[::2])),
        ("x[:, :1000]", same(lambda a: a[:, :1000])),
        ("x.T (Fortran-order view)", same(lambda a: a.T)),
        ("x[::-1, ::-1]", same(lambda a: a[::-1, ::-1])),
        ("x[:, ::-1]", same(lambda a: a[:, ::-1])),
        ("x[:, ::2]", same(lambda a: a[:, ::2])),
        ("x[::2, ::3].T", same(lambda a: a[::2, ::3].T)),
        ("3-D x.transpose(2, 0, 1)", same(t3(lambda a: a.transpose(2, 0, 1)))),
        ("3-D x.transpose(1, 2, 0)", same(t3(lambda a: a.transpose(1, 2, 0)))),
        ("3-D x.T", same(t3(lambda a: a.T))),
        ("x C, out x[::-1, ::-1] of another array", another(lambda a: a, "reversed")),
        ("x.T, out C", another(lambda a: a.T, "C")),
        ("x[:, ::-1], out C", another(lambda a: a[:, ::-1], "C")),
        ("x C, out Fortran order", another(lambda a: a, "F")),
    ]


def _best(fn: Callable[[], object], number: int) -> float:
    t0 = time.perf_counter()
    for _ in range(number):
        fn()
    return (time.perf_counter() - t0) / number


def run(threads: Sequence[int], rounds: int, number: int, n: int = 1024) -> List[Tuple[str, int, float, float, float]]:
    """Rows (layout, threads, cdropout us, np.multiply us, per-element ratio to contiguous)."""
    rng = np.random.default_rng(0)
    a2 = rng.standard_normal((n, n), dtype=np.float32)
    a3 = rng.standard_normal((n // 16, 64, 256), dtype=np.float32)
    c = np.float32(2.0)
    rows = []
    for t in threads:
        calls = []
        for name, make in layouts():
            x, out = make(a2, a3)
            calls.append((name, x.size,
                          lambda x=x, out=out: dropout(x, 0.5, seed=1, out=out, num_threads=t),
                          lambda x=x, out=out: np.multiply(x, c, out=out)))
        best = {name: [float("inf"), float("inf")] for name, _, _, _ in calls}
        with np.errstate(all="ignore"):
            for _ in range(rounds):  # interleaved: every layout once per round
                for name, size, f, g in calls:
                    best[name][0] = min(best[name][0], _best(f, number))
                    best[name][1] = min(best[name][1], _best(g, number))
        base = best["contiguous"][0] / calls[0][1]
        for name, size, _, _ in calls:
            rows.append((name, t, best[name][0] * 1e6, best[name][1] * 1e6, best[name][0] / size / base))
    return rows


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cdropout.bench_layouts", description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="thread counts (default 1 2)")
    parser.add_argument("--rounds", type=int, default=15, help="interleaved rounds, minimum taken (default 15)")
    parser.add_argument("--number", type=int, default=5, help="calls per timed round (default 5)")
    args = parser.parse_args(argv)
    load = os.getloadavg()
    rows = run(args.threads, args.rounds, args.number)
    print(f"float32, 1 Mi elements per layout (3-D: 64 x 64 x 256), load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print("| layout | threads | cdropout (us) | `np.multiply(x, c, out=out)` (us) | cdropout per element vs contiguous |")
    print("|---|---:|---:|---:|---:|")
    for name, t, us, np_us, ratio in rows:
        print(f"| `{name}` | {t} | {us:,.0f} | {np_us:,.0f} | {ratio:.2f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
