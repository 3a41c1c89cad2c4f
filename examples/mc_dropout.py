"""Monte Carlo dropout: predictive uncertainty of a small NumPy regression network.

A 1-128-128-1 ReLU network with dropout after each hidden layer is fitted to noisy samples of a
1-D function on [-2.5, 2.5]. At inference the dropout layers stay stochastic
(``cdropout.Dropout(p, mc=True)``: eval mode still draws masks), so every forward pass is one
sample of a random sub-network. The mean of many passes is the prediction and their spread is
the model's uncertainty (Gal and Ghahramani, 2016): small where there was training data and
growing away from it. All passes run as one batch of shape (passes, points, units); the
inference layers share each pass's mask over the points (``noise_shape=(None, 1, None)``), so
every pass is one whole function, drawn as a thin line in the plot.

Usage::

    python examples/mc_dropout.py                   # 2000 steps, 200 passes, writes mc_dropout.png
    python examples/mc_dropout.py --steps 500 --passes 100 --out mc.png

Needs matplotlib (the `examples` extra: ``pip install ".[examples]"`` in the source directory).
"""
from __future__ import annotations

import argparse
import contextlib
import time
from typing import Dict, List, Optional, Sequence

import numpy as np

import cdropout

HIDDEN = 128
P = 0.1
LR = 3e-3
NOISE = 0.1
TRAIN_RANGE = (-2.5, 2.5)


def target(x: np.ndarray) -> np.ndarray:
    return np.sin(2.0 * x) + 0.3 * x


def make_data(n: int = 200, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(*TRAIN_RANGE, size=(n, 1)).astype(np.float32)
    y = (target(x) + NOISE * rng.standard_normal((n, 1))).astype(np.float32)
    return x, y


class Net:
    """x -> Linear -> ReLU -> Dropout -> Linear -> ReLU -> Dropout -> Linear."""

    def __init__(self, seed: int):
        rng = np.random.default_rng(seed)
        self.params: List[np.ndarray] = []
        for n_in, n_out in ((1, HIDDEN), (HIDDEN, HIDDEN), (HIDDEN, 1)):
            self.params.append((rng.standard_normal((n_in, n_out)) * np.sqrt(2.0 / n_in)).astype(np.float32))
            self.params.append(np.zeros(n_out, np.float32))
        g1, g2, g3, g4 = cdropout.Generator(seed + 1).spawn(4)
        self.drops = [cdropout.Dropout(P, seed=g1), cdropout.Dropout(P, seed=g2)]  # training
        # Inference: mc=True keeps the layers dropping in eval mode, which is what MC dropout
        # needs; the input is (passes, points, units) and one mask per pass is shared by all points.
        self.mc_drops = [cdropout.Dropout(P, seed=g, mc=True, noise_shape=(None, 1, None)).eval()
                         for g in (g3, g4)]
        self.m = [np.zeros_like(p) for p in self.params]
        self.v = [np.zeros_like(p) for p in self.params]
        self.t = 0

    def forward(self, x: np.ndarray, drops: Optional[List[cdropout.Dropout]] = None) -> np.ndarray:
        """Through the given dropout layers (default: the training ones); ``[]`` skips dropout,
        the usual deterministic inference of inverted dropout."""
        W1, b1, W2, b2, W3, b3 = self.params
        drops = self.drops if drops is None else drops
        self.a0 = x
        self.h1 = np.maximum(x @ W1 + b1, 0)
        self.a1 = drops[0](self.h1) if drops else self.h1
        self.h2 = np.maximum(self.a1 @ W2 + b2, 0)
        self.a2 = drops[1](self.h2) if drops else self.h2
        return self.a2 @ W3 + b3

    def backward(self, dy: np.ndarray) -> List[np.ndarray]:
        W1, b1, W2, b2, W3, b3 = self.params
        g3 = [self.a2.T @ dy, dy.sum(axis=0)]
        d = self.drops[1].backward(dy @ W3.T) * (self.h2 > 0)
        g2 = [self.a1.T @ d, d.sum(axis=0)]
        d = self.drops[0].backward(d @ W2.T) * (self.h1 > 0)
        g1 = [self.a0.T @ d, d.sum(axis=0)]
        return g1 + g2 + g3

    def adam_step(self, grads: List[np.ndarray], lr: float, b1: float = 0.9, b2: float = 0.999) -> None:
        self.t += 1
        c1, c2 = 1 - b1 ** self.t, 1 - b2 ** self.t
        for p, m, v, g in zip(self.params, self.m, self.v, grads):
            m *= b1
            m += (1 - b1) * g
            v *= b2
            v += (1 - b2) * g * g
            p -= lr * (m / c1) / (np.sqrt(v / c2) + 1e-8)


def train(x: np.ndarray, y: np.ndarray, steps: int, seed: int) -> Net:
    net = Net(seed)
    for step in range(1, steps + 1):
        pred = net.forward(x)
        net.adam_step(net.backward(2.0 * (pred - y) / len(x)), LR)
        if step % 500 == 0 or step == steps:
            print(f"step {step:5d}  training MSE {float(np.mean((pred - y) ** 2)):.4f}", flush=True)
    return net


def mc_predict(net: Net, x: np.ndarray, passes: int) -> Dict[str, np.ndarray]:
    """Mean and standard deviation over `passes` stochastic forwards, run as one batch."""
    samples = net.forward(np.broadcast_to(x, (passes, *x.shape)), net.mc_drops)[..., 0]  # (passes, points)
    deterministic = net.forward(x, [])[:, 0]
    return {"mean": samples.mean(axis=0), "std": samples.std(axis=0), "samples": samples[:20],
            "deterministic": deterministic}


def plot(x_tr, y_tr, x, pred: Dict[str, np.ndarray], passes: int, out: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = x[:, 0]
    fig, (ax, ax_std) = plt.subplots(1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [1.6, 1]})
    for a in (ax, ax_std):
        a.axvspan(*TRAIN_RANGE, color="0.93", zorder=0)
    ax.fill_between(xs, pred["mean"] - 2 * pred["std"], pred["mean"] + 2 * pred["std"],
                    color="tab:blue", alpha=0.25, lw=0, label="mean ± 2 std of the passes")
    for k, sample in enumerate(pred["samples"]):
        ax.plot(xs, sample, color="tab:blue", lw=0.5, alpha=0.4, label="single passes" if k == 0 else None)
    ax.plot(xs, target(xs), color="k", lw=1, ls=":", label="true function")
    ax.plot(xs, pred["mean"], color="tab:blue", lw=2, label=f"MC dropout mean ({passes} passes)")
    ax.plot(xs, pred["deterministic"], color="tab:orange", lw=1, ls="--",
            label="deterministic (dropout off)")
    ax.scatter(x_tr[:, 0], y_tr[:, 0], s=6, color="k", alpha=0.5, label="training data")
    ax.set(xlabel="x", ylabel="y", title="Prediction (grey: where the training data is)")
    lo = min(target(xs).min(), (pred["mean"] - 2 * pred["std"]).min())
    hi = max(target(xs).max(), (pred["mean"] + 2 * pred["std"]).max())
    ax.set_ylim(lo - 0.2, hi + 0.55 * (hi - lo))  # room for the legend at the top
    ax.legend(loc="upper center", fontsize=8, ncols=2)
    ax_std.plot(xs, pred["std"], color="tab:blue")
    ax_std.set(xlabel="x", ylabel="std of the passes", title="Uncertainty grows away from the data")
    ax_std.set_ylim(0, None)
    fig.suptitle(f"Monte Carlo dropout: a 1-{HIDDEN}-{HIDDEN}-1 ReLU network, p = {P}, "
                 "cdropout.Dropout(mc=True)")
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


def blas_threads(n: int):
    """Limit BLAS to n threads where threadpoolctl (installed with scikit-learn) is available."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(n, user_api="blas")


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, np.ndarray]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000, help="full-batch Adam steps (default 2000)")
    parser.add_argument("--passes", type=int, default=200,
                        help="stochastic passes at inference (default 200)")
    parser.add_argument("--out", default="mc_dropout.png", help="PNG file for the plot")
    parser.add_argument("--seed", type=int, default=0, help="seed of data, weights and masks")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.passes < 2:
        parser.error("--steps must be at least 1 and --passes at least 2")

    t0 = time.perf_counter()
    x_tr, y_tr = make_data(seed=args.seed)
    print(f"{len(x_tr)} noisy samples on {TRAIN_RANGE}; network 1-{HIDDEN}-{HIDDEN}-1, dropout p={P}")
    # The matrices of the training are small (200 x 128): one BLAS thread is faster than a team,
    # and much faster on a busy machine, where BLAS threads wait for cores.
    with blas_threads(1):
        net = train(x_tr, y_tr, args.steps, args.seed)
    x = np.linspace(-6.0, 6.0, 300, dtype=np.float32)[:, None]
    pred = mc_predict(net, x, args.passes)
    inside = (x[:, 0] >= TRAIN_RANGE[0]) & (x[:, 0] <= TRAIN_RANGE[1])
    print(f"mean std of the passes: {pred['std'][inside].mean():.3f} inside the training range, "
          f"{pred['std'][~inside].mean():.3f} outside")
    plot(x_tr, y_tr, x, pred, args.passes, args.out)
    print(f"plot written to {args.out} ({time.perf_counter() - t0:.1f} s)")
    pred["x"] = x[:, 0]
    pred["inside"] = inside
    return pred


if __name__ == "__main__":
    main()
