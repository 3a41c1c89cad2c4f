"""The benchmark's plot (``cdropout-bench --plot FILE.png``, see :mod:`cdropout.bench`).

Two panels: (1) throughput against size for a few series: cdropout on one thread and on all
threads, the fastest NumPy dropout, PyTorch and the memory floor; (2) cdropout's speed-up over
that NumPy dropout and over PyTorch, as bars with their values on linear axes (one strip per
competitor, since the two differ by an order of magnitude). The title names the CPU, dtype and p.
"""
from __future__ import annotations

import os
from typing import Optional

from ._bench_cases import fmt_size
from ._bench_run import Results

# matplotlib's Agg backend writes these (checked before the run, so a bad name fails at once).
FORMATS = ("png", "pdf", "svg", "jpg", "jpeg", "webp", "eps", "ps", "tif", "tiff")


def check_plot_path(path: str) -> Optional[str]:
    """Why ``path`` cannot take the plot (None when it can): matplotlib, folder, format."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return "--plot needs matplotlib, which is not installed (pip install matplotlib)"
    folder = os.path.dirname(os.path.abspath(path))
    ext = os.path.splitext(path)[1].lower().lstrip(".")
    if os.path.isdir(path):
        return f"--plot {path!r} is a directory; give a file name such as bench.png"
    if ext not in FORMATS:
        return (f"--plot {path!r}: the file name must end in one of "
                + ", ".join("." + f for f in FORMATS))
    if not os.path.isdir(folder):
        return f"--plot {path!r}: the folder {folder!r} does not exist"
    if not os.access(folder, os.W_OK):
        return f"--plot {path!r}: the folder {folder!r} is not writable"
    if os.path.exists(path) and not os.access(path, os.W_OK):
        return f"--plot {path!r}: the file exists and is not writable"
    return None


def _series(results: Results, key: str, threads: int) -> tuple[list[int], list[float]]:
    """(sizes, seconds) of one case at one thread count, over the sizes measured."""
    xs, ts = [], []
    for n in results.sizes:
        t = results.get(n, key, threads)
        if t is not None:
            xs.append(n)
            ts.append(t)
    return xs, ts


def _speedups(results: Results, key: str, t: int) -> list[Optional[float]]:
    """Per size: time of case ``key`` / time of cdropout's forward on ``t`` threads (NumPy's
    cases run on one thread whatever ``t``)."""
    out: list[Optional[float]] = []
    for n in results.sizes:
        mine, theirs = results.get(n, "fwd", t), results.get(n, key, t)
        out.append(None if mine is None or theirs is None else theirs / mine)
    return out


def _fmt_x(value: float) -> str:
    if value >= 10:
        return f"{value:.0f}x"
    return f"{value:.1f}x" if value >= 1 else f"{value:.2g}x"


def plot(results: Results, path: str, cpu: str, p: float, dtype: str = "float32") -> None:
    """Draw the two panels into ``path``."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    one, every = 1, max(results.threads)
    thread_counts = [one] if every == one else [one, every]
    blue, light, orange, red, grey = "#1f5fbf", "#8fb3e8", "#e08a00", "#c0392b", "#7f7f7f"
    fig = plt.figure(figsize=(13, 6))
    grid = fig.add_gridspec(2, 2, width_ratios=(1.15, 1), hspace=0.55, wspace=0.22)
    ax1 = fig.add_subplot(grid[:, 0])

    # (1) throughput: few series, cdropout in blue (solid = all threads, dashed = one).
    lines: list[tuple[str, int, str, str, str, Optional[str]]] = [
        ("fwd", every, f"cdropout, {every} threads", blue, "-", "o")]
    if every != one:
        lines.append(("fwd", one, "cdropout, 1 thread", blue, "--", "o"))
    lines += [
        ("floor", every, f"memory floor: x *= c ({every} thr.)", grey, ":", None),
        ("np_fast", 1, "fastest NumPy dropout", orange, "-", "s"),
        ("torch", every, f"PyTorch F.dropout ({every} thr.)", red, "-", "^"),
    ]
    for key, t, label, color, style, marker in lines:
        xs, ts = _series(results, key, t)
        if xs:
            ax1.plot(xs, [n / s / 1e9 for n, s in zip(xs, ts)], style, color=color, marker=marker,
                     markersize=4, linewidth=2.2 if key == "fwd" and t == every else 1.5, label=label)
    ax1.set_xscale("log", base=2)
    ax1.set_yscale("log")
    ax1.set_xticks(results.sizes, [fmt_size(n) for n in results.sizes], rotation=45)
    ax1.minorticks_off()
    ax1.set_xlim(min(results.sizes) / 1.5, max(results.sizes) * 1.5)
    ax1.set_xlabel(f"array size ({dtype} elements)")
    ax1.set_ylabel("Gelem/s (higher is better)")
    ax1.set_title("(1) Throughput", fontsize=11, loc="left")
    ax1.grid(True, which="major", alpha=0.3)
    ax1.legend(fontsize=8.5, loc="best")

    # (2) speed-up of cdropout = the other's time / cdropout's, one strip per competitor, each on
    # its own linear scale; a bar per thread count, its value written on it.
    strips = [("np_fast", "over the fastest NumPy dropout (1 thread)")]
    if results.has_case("torch"):
        strips.append(("torch", "over PyTorch F.dropout (same threads)"))
    positions = range(len(results.sizes))
    width = 0.8 / len(thread_counts)
    for i, (key, title) in enumerate(strips):
        ax = fig.add_subplot(grid[i, 1]) if len(strips) == 2 else fig.add_subplot(grid[:, 1])
        for j, t in enumerate(thread_counts):
            values = _speedups(results, key, t)
            centers = [float(k) + (j - (len(thread_counts) - 1) / 2) * width for k in positions]
            heights = [v if v is not None else 0.0 for v in values]
            bars = ax.bar(centers, heights, width * 0.95, color=blue if t == every else light,
                          label=f"cdropout on {t} thread{'s' if t > 1 else ''}")
            ax.bar_label(bars, [_fmt_x(v) if v is not None else "" for v in values],
                         fontsize=7.5, padding=1)
        ax.axhline(1.0, color=grey, linewidth=0.8)
        ax.set_ylim(0, ax.get_ylim()[1] * 1.15)
        ax.set_xticks(list(positions), [fmt_size(n) for n in results.sizes])
        ax.set_ylabel("speed-up (x)")
        ax.set_title(("(2) Speed-up " if i == 0 else "") + title, fontsize=10, loc="left")
        ax.grid(True, axis="y", alpha=0.3)
        if i == 0:
            ax.legend(fontsize=8, loc="upper left")
        if i == len(strips) - 1:
            ax.set_xlabel(f"array size ({dtype} elements)")
    fig.suptitle(f"cdropout: dropout in place, {dtype}, p = {p:g}  |  {cpu}", fontsize=12)
    fig.subplots_adjust(left=0.06, right=0.98, top=0.88, bottom=0.14)
    fig.savefig(path, dpi=110)
    plt.close(fig)
