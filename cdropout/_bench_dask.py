"""Benchmark of cdropout.dask on a local cluster: dropout against the memory-bound ``a * 2``.

Run ``python -m cdropout._bench_dask`` (needs ``cdropout[dask]``). It starts a LocalCluster of
worker processes (one thread each), makes a float32 array on the workers, and times, interleaved,
``cdropout.dask.dropout(a, 0.5, seed=0).sum().compute()`` and ``(a * 2).sum().compute()``. Both
read every chunk once and write a temporary of its size, so their ratio is the cost of the
integration (mask generation, the graph) over a pass that only moves memory.
"""
from __future__ import annotations

import argparse
import logging
import os
import platform
import time
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np


_MUL = "(a * 2).sum().compute()"
_DROP = "cdropout.dask.dropout(a, p, seed=0).sum().compute()"


def _machine() -> str:
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} logical CPUs, {platform.system()} {platform.release()}"


def _loadavg() -> str:
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "n/a"


def _timed(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def run(size_gib: float = 2.0, chunk_mib: float = 64.0, workers: int = 2, repeat: int = 5,
        source: str = "random", p: float = 0.5) -> Dict[str, Any]:
    """Time both computations; returns the minimum times, their ratio and the conditions."""
    import dask
    import dask.array as da
    import distributed

    import cdropout
    import cdropout.dask as cdd

    side = int(round((chunk_mib * 2**20 / 4) ** 0.5))        # square float32 chunks
    n_chunks = max(1, int(round(size_gib * 1024 / chunk_mib)))
    cols = max(1, int(round(n_chunks ** 0.5 / 2 ** 0.5)))    # a grid about twice as tall as wide
    rows = max(1, n_chunks // cols)
    shape, chunks = (rows * side, cols * side), (side, side)
    with distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                  dashboard_address=":0", silence_logs=logging.ERROR) as cluster, \
            distributed.Client(cluster) as client:
        if source == "ones":  # chunks made inside each task (da.ones: fused with the operation)
            a = da.ones(shape, chunks=chunks, dtype=np.float32)
        else:                 # chunks computed once and kept in the workers' memory
            a = da.random.default_rng(0).random(shape, dtype=np.float32, chunks=chunks).persist()
            distributed.wait(a)
        ops = {
            _MUL: lambda: (a * 2).sum().compute(),
            _DROP: lambda: cdd.dropout(a, p, seed=0).sum().compute(),
        }
        load_before = _loadavg()
        times: Dict[str, List[float]] = {k: [] for k in ops}
        for name, fn in ops.items():  # warm-up: imports, worker caches
            fn()
        for _ in range(repeat):
            for name, fn in ops.items():
                times[name].append(_timed(fn))
        worker_threads = client.run(lambda: cdropout.simd_info()["max_threads"])
        best = {k: min(v) for k, v in times.items()}
        median = {k: sorted(v)[len(v) // 2] for k, v in times.items()}
        return {
            "shape": shape, "chunks": chunks, "nbytes": int(np.prod(shape)) * 4, "n_chunks": rows * cols,
            "workers": workers, "source": source, "p": p, "repeat": repeat, "times": times, "best": best,
            "ratio": best[_DROP] / best[_MUL], "median_ratio": median[_DROP] / median[_MUL],
            "machine": _machine(), "load_before": load_before, "load_after": _loadavg(),
            "dask": dask.__version__, "isa": cdropout.simd_info()["isa"],
            "worker_default_threads": sorted(set(worker_threads.values())),
        }


def report(r: Dict[str, Any], markdown: bool = False) -> str:
    gib = r["nbytes"] / 2**30
    chunk_mib = r["chunks"][0] * r["chunks"][1] * 4 / 2**20
    head = (f"{gib:.2f} GiB float32 {r['shape']} in {r['n_chunks']} chunks of {chunk_mib:.0f} MiB {r['chunks']}, "
            f"source={r['source']}, LocalCluster of {r['workers']} worker processes x 1 thread "
            f"(OpenMP default in workers: {r['worker_default_threads']}), dask {r['dask']}, kernel path {r['isa']}")
    cond = f"{r['machine']}; load average {r['load_before']} before, {r['load_after']} after"
    rows = [(k, min(v), sorted(v)[len(v) // 2]) for k, v in r["times"].items()]
    if markdown:
        lines = [head + "  ", cond, "", "| computation | min (s) | median (s) |", "|---|---:|---:|"]
        lines += [f"| `{k}` | {mn:.3f} | {md:.3f} |" for k, mn, md in rows]
        lines += ["", f"Ratio dropout / (a * 2) of the minimums: **{r['ratio']:.2f}** "
                      f"(of the medians: {r['median_ratio']:.2f})"]
        return "\n".join(lines)
    lines = [head, cond] + [f"  {k:<50} min {mn:.3f} s  median {md:.3f} s" for k, mn, md in rows]
    lines.append(f"  ratio dropout / (a * 2): {r['ratio']:.2f} of the minimums of {r['repeat']} interleaved runs, "
                 f"{r['median_ratio']:.2f} of the medians")
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cdropout._bench_dask", description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=float, default=2.0, help="array size in GiB (default 2)")
    parser.add_argument("--chunk", type=float, default=64.0, help="chunk size in MiB (default 64)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--repeat", type=int, default=5, help="interleaved runs of each (default 5)")
    parser.add_argument("--source", choices=("random", "ones"), action="append",
                        help="random: persisted on the workers (default); ones: da.ones, made in each task")
    parser.add_argument("--p", type=float, default=0.5)
    parser.add_argument("--markdown", action="store_true", help="print Markdown (for BENCHMARKS.md)")
    args = parser.parse_args(argv)
    for source in args.source or ["random"]:
        r = run(args.size, args.chunk, args.workers, args.repeat, source, args.p)
        print(report(r, args.markdown), flush=True)
        print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
