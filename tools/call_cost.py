"""The 1 Ki call cost: ``dropout(x, 0.5, seed=gen, out=x)`` against ``np.multiply(x, c, out=x)``
(the default format, and format 1 for comparison).

Run from the source tree: ``python tools/call_cost.py``. Interleaved rounds, minimum per call of
each; prints the ratio and the load average (the ratio is what the speed target names: <= 2.5).
"""
import sys
import time

import numpy as np

import cdropout


def per_call(fn, n):
    t = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t) / n


def main(rounds=200, n=2000, size=1024):
    x = np.ones(size, np.float32)
    c = np.float32(1.0)
    gen = cdropout.Generator(0)
    gen1 = cdropout.Generator(0, format=1)
    calls = {
        "np.multiply(x, c, out=x)": lambda: np.multiply(x, c, out=x),
        "dropout(x, 0.5, seed=gen, out=x)": lambda: cdropout.dropout(x, 0.5, seed=gen, out=x, num_threads=1),
        "the same, gen of format 1": lambda: cdropout.dropout(x, 0.5, seed=gen1, out=x, num_threads=1),
        "dropout(x, 0.5, seed=0, out=x)": lambda: cdropout.dropout(x, 0.5, seed=0, out=x, num_threads=1),
        "dropout_backward(x, key, out=x)": None,
    }
    _, key = cdropout.dropout(x, 0.5, seed=0, return_mask="key")
    calls["dropout_backward(x, key, out=x)"] = lambda: cdropout.dropout_backward(x, key, out=x, num_threads=1)
    best = {k: float("inf") for k in calls}
    for _ in range(rounds):
        for k, f in calls.items():
            x[...] = 1.0
            best[k] = min(best[k], per_call(f, n))
    base = best["np.multiply(x, c, out=x)"]
    for k, v in best.items():
        print(f"{k:36s} {v * 1e6:7.3f} us  {v / base:5.2f}x")
    with open("/proc/loadavg") as f:
        print("loadavg:", f.read().strip())


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:]))
