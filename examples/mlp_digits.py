"""Train a small NumPy MLP on scikit-learn's digits, without and with cdropout.

The digits data set (1797 8x8 images) ships inside scikit-learn: nothing is downloaded. The
network is trained on a small training split so that it overfits: without dropout the training
accuracy reaches 100 % while the validation accuracy stalls; with cdropout.Dropout layers (input
p=0.1, hidden p=0.5) the gap between the two narrows. Both runs start from the same weights and
see the same mini-batches; only the dropout layers differ.

Usage::

    python examples/mlp_digits.py                   # 100 epochs, writes mlp_digits.png
    python examples/mlp_digits.py --epochs 10 --out curves.png

Needs the `examples` extra (scikit-learn and matplotlib): ``pip install ".[examples]"`` in the
source directory.
"""
from __future__ import annotations

import argparse
import time
from typing import Dict, List, Optional, Sequence

import numpy as np
from threadpoolctl import threadpool_limits  # installed with scikit-learn

import cdropout

HIDDEN = 256
BATCH = 32
LR = 0.02
MOMENTUM = 0.9
P_INPUT, P_HIDDEN = 0.1, 0.5


def load_data(n_train: int = 300, seed: int = 0):
    """Digits scaled to [0, 1], split into a small training set and a validation set."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int64)
    return train_test_split(x, y, train_size=n_train, stratify=y, random_state=seed)


def init_params(rng: np.random.Generator, sizes: Sequence[int]) -> List[np.ndarray]:
    """He-initialised weights and zero biases: [W1, b1, W2, b2, ...]."""
    params = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        params.append((rng.standard_normal((n_in, n_out)) * np.sqrt(2.0 / n_in)).astype(np.float32))
        params.append(np.zeros(n_out, np.float32))
    return params


class MLP:
    """x -> [dropout] -> Linear -> ReLU -> [dropout] -> Linear -> ReLU -> [dropout] -> Linear."""

    def __init__(self, params: List[np.ndarray], dropout_seed: Optional[int], scale: bool = True):
        self.params = [p.copy() for p in params]
        self.velocity = [np.zeros_like(p) for p in params]
        if dropout_seed is None:
            self.drops = None
        else:  # one generator, one independent child stream of masks per layer
            g_in, g_h1, g_h2 = cdropout.Generator(dropout_seed).spawn(3)
            self.drops = [cdropout.Dropout(P_INPUT, seed=g_in, scale=scale),
                          cdropout.Dropout(P_HIDDEN, seed=g_h1, scale=scale),
                          cdropout.Dropout(P_HIDDEN, seed=g_h2, scale=scale)]

    def train(self, mode: bool = True) -> None:
        for d in self.drops or ():
            d.train(mode)

    def forward(self, x: np.ndarray) -> np.ndarray:
        W1, b1, W2, b2, W3, b3 = self.params
        self.inputs = []  # what each Linear saw, for the backward
        h = x
        for i, (W, b) in enumerate(((W1, b1), (W2, b2), (W3, b3))):
            if self.drops is not None:
                h = self.drops[i](h)
            self.inputs.append(h)
            h = h @ W + b
            if i < 2:
                h = np.maximum(h, 0)
        return h

    def backward(self, dlogits: np.ndarray) -> List[np.ndarray]:
        W1, b1, W2, b2, W3, b3 = self.params
        grads: List[np.ndarray] = [None] * 6  # type: ignore[list-item]
        d = dlogits
        for i, W in ((2, W3), (1, W2), (0, W1)):
            a = self.inputs[i]
            grads[2 * i], grads[2 * i + 1] = a.T @ d, d.sum(axis=0)
            if i == 0:
                break
            d = d @ W.T
            if self.drops is not None:
                d = self.drops[i].backward(d)  # gradient through the dropout before Linear i
            d = d * (self.inputs[i] > 0)  # ReLU' (dropout keeps signs; dropped entries have 0 grad)
        return grads

    def step(self, grads: List[np.ndarray]) -> None:
        for p, v, g in zip(self.params, self.velocity, grads):
            v *= MOMENTUM
            v -= LR * g
            p += v

    def accuracy(self, x: np.ndarray, y: np.ndarray) -> float:
        self.train(False)
        acc = float(np.mean(self.forward(x).argmax(axis=1) == y))
        self.train(True)
        return acc


def softmax_xent_grad(logits: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Gradient of the mean cross-entropy with respect to the logits."""
    z = logits - logits.max(axis=1, keepdims=True)
    prob = np.exp(z)
    prob /= prob.sum(axis=1, keepdims=True)
    prob[np.arange(len(y)), y] -= 1.0
    return prob / len(y)


def fit(data, epochs: int, dropout_seed: Optional[int], seed: int = 0, label: str = "",
        scale: bool = True, model: Optional[MLP] = None) -> Dict[str, list]:
    """Train from seeded weights (or the given model); scale=False: classic dropout."""
    x_tr, x_va, y_tr, y_va = data
    if model is None:
        model = MLP(init_params(np.random.default_rng(seed), (64, HIDDEN, HIDDEN, 10)), dropout_seed, scale)
    order_rng = np.random.default_rng(seed + 1)  # same mini-batches in both runs
    hist: Dict[str, list] = {"train": [], "val": []}
    for epoch in range(1, epochs + 1):
        perm = order_rng.permutation(len(x_tr))
        for start in range(0, len(perm), BATCH):
            idx = perm[start:start + BATCH]
            logits = model.forward(x_tr[idx])
            model.step(model.backward(softmax_xent_grad(logits, y_tr[idx])))
        hist["train"].append(model.accuracy(x_tr, y_tr))
        hist["val"].append(model.accuracy(x_va, y_va))
        print(f"{label:>12s} epoch {epoch:3d}  train {hist['train'][-1]:.4f}  val {hist['val'][-1]:.4f}"
              f"  gap {hist['train'][-1] - hist['val'][-1]:+.4f}", flush=True)
    return hist


def plot(histories: Dict[str, Dict[str, list]], out: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_acc, ax_gap) = plt.subplots(1, 2, figsize=(11, 4.2))
    colors = {"no dropout": "tab:red", "cdropout": "tab:blue"}
    for name, h in histories.items():
        epochs = np.arange(1, len(h["train"]) + 1)
        ax_acc.plot(epochs, h["train"], color=colors[name], ls="--", label=f"{name}: train")
        ax_acc.plot(epochs, h["val"], color=colors[name], label=f"{name}: validation")
        ax_gap.plot(epochs, np.subtract(h["train"], h["val"]), color=colors[name], label=name)
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="Digits MLP: accuracy")
    ax_acc.set_ylim(0.8, 1.005)
    ax_acc.legend(loc="lower right")
    ax_gap.set(xlabel="epoch", ylabel="train - validation accuracy", title="Overfitting gap")
    ax_gap.axhline(0, color="gray", lw=0.5)
    ax_gap.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Dict[str, list]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=100, help="training epochs per run (default 100)")
    parser.add_argument("--out", default="mlp_digits.png", help="PNG file for the curves")
    parser.add_argument("--seed", type=int, default=0, help="seed of weights, batches and masks")
    args = parser.parse_args(argv)
    if args.epochs < 1:
        parser.error("--epochs must be at least 1")

    data = load_data(seed=args.seed)
    print(f"digits: {len(data[0])} training and {len(data[1])} validation images; "
          f"MLP 64-{HIDDEN}-{HIDDEN}-10, SGD lr={LR} momentum={MOMENTUM}, batch {BATCH}")
    t0 = time.perf_counter()
    # The matrices are small (32 x 256): one BLAS thread is faster than a team, and much faster
    # on a busy machine, where BLAS threads wait for cores.
    with threadpool_limits(1, user_api="blas"):
        histories = {
            "no dropout": fit(data, args.epochs, None, args.seed, "no dropout"),
            "cdropout": fit(data, args.epochs, args.seed, args.seed, "cdropout"),
        }
    print()
    for name, h in histories.items():
        print(f"{name:>12s} final: train {h['train'][-1]:.4f}  val {h['val'][-1]:.4f}  "
              f"gap {h['train'][-1] - h['val'][-1]:+.4f}")
    plot(histories, args.out)
    print(f"curves written to {args.out} ({time.perf_counter() - t0:.1f} s)")
    return histories


if __name__ == "__main__":
    main()
