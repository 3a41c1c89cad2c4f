"""A recurrent network in NumPy with no dropout, naive per-step dropout and variational dropout.

A vanilla (Elman) RNN reads each 8x8 image of scikit-learn's digits one row at a time, 8 steps of
8 pixels, and classifies the digit from its last hidden state. Nothing is downloaded. The
training split is small (150 images), so without dropout the network overfits. Three runs start from the same
weights and see the same mini-batches; only the dropout differs:

- no dropout;
- naive dropout: a fresh mask at every time step, on the input row and on the hidden state fed
  back into the recurrence (``cdropout.dropout`` with a new stream per call);
- variational dropout (Gal and Ghahramani, 2016): one mask per sequence, the same at every time
  step, on the inputs (``cdropout.variational_dropout``) and on the recurrent hidden state (the
  same key, i.e. the same seed and stream, at every step gives the same mask).

Both dropout runs also drop the last hidden state before the classifier. The backward pass
regenerates every mask from its key (``cdropout.dropout_backward``); no mask is stored.

Usage::

    python examples/rnn_dropout.py                  # 100 epochs, writes rnn_dropout.png
    python examples/rnn_dropout.py --epochs 5 --out curves.png

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

HIDDEN = 128
BATCH = 32
LR = 2e-3
P_INPUT, P_HIDDEN = 0.1, 0.25
MODES = ("no dropout", "naive", "variational")


def load_data(n_train: int = 150, seed: int = 0):
    """Digits as sequences: (N, 8 steps, 8 pixels) in [0, 1], split into train and validation."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)  # (1797, 8, 8): rows are the time steps
    y = digits.target.astype(np.int64)
    return train_test_split(x, y, train_size=n_train, stratify=y, random_state=seed)


class RNN:
    """h_t = tanh(x_t Wx + h_{t-1} Wh + b), logits = h_T Wo + bo, trained by backprop through time."""

    def __init__(self, n_in: int, n_out: int, mode: str, seed: int):
        rng = np.random.default_rng(seed)
        self.params = [
            (rng.standard_normal((n_in, HIDDEN)) / np.sqrt(n_in)).astype(np.float32),  # Wx
            (np.linalg.qr(rng.standard_normal((HIDDEN, HIDDEN)))[0]).astype(np.float32),  # Wh
            np.zeros(HIDDEN, np.float32),  # b
            (rng.standard_normal((HIDDEN, n_out)) / np.sqrt(HIDDEN)).astype(np.float32),  # Wo
            np.zeros(n_out, np.float32),  # bo
        ]
        self.adam = Adam(self.params)
        self.mode = mode
        self.gen = cdropout.Generator(seed + 1)  # the masks: one stream per dropout call
        self.training = True

    def forward(self, x: np.ndarray) -> np.ndarray:
        Wx, Wh, b, Wo, bo = self.params
        n, steps, _ = x.shape
        drop = self.training and self.mode != "no dropout"
        if drop and self.mode == "variational":
            x = cdropout.variational_dropout(x, P_INPUT, time_axis=1, seed=self.gen)  # one mask over time
            h_stream = self.gen.reserve_stream()  # one key for the hidden state at every step
        elif drop:
            x = cdropout.dropout(x, P_INPUT, seed=self.gen)  # a fresh mask for every step
        self.x, self.hs, self.h_in, self.h_keys = x, [np.zeros((n, HIDDEN), np.float32)], [], []
        for t in range(steps):
            h = self.hs[-1]
            if drop and self.mode == "variational":
                h, key = cdropout.dropout(h, P_HIDDEN, seed=self.gen.seed, stream=h_stream,
                                          return_mask="key")
                self.h_keys.append(key)
            elif drop:
                h, key = self.gen.dropout(h, P_HIDDEN, return_mask="key")
                self.h_keys.append(key)
            self.h_in.append(h)  # what the recurrence saw, for the backward
            self.hs.append(np.tanh(x[:, t] @ Wx + h @ Wh + b))
        h_last = self.hs[-1]
        if drop:
            h_last, self.out_key = self.gen.dropout(h_last, P_HIDDEN, return_mask="key")
        self.h_last = h_last
        return h_last @ Wo + bo

    def backward(self, dlogits: np.ndarray) -> List[np.ndarray]:
        Wx, Wh, b, Wo, bo = self.params
        drop = self.training and self.mode != "no dropout"
        grads = [np.zeros_like(p) for p in self.params]
        grads[3], grads[4] = self.h_last.T @ dlogits, dlogits.sum(axis=0)
        dh = dlogits @ Wo.T
        if drop:
            dh = cdropout.dropout_backward(dh, self.out_key)
        for t in reversed(range(self.x.shape[1])):
            da = dh * (1.0 - self.hs[t + 1] ** 2)  # through tanh
            grads[0] += self.x[:, t].T @ da
            grads[1] += self.h_in[t].T @ da
            grads[2] += da.sum(axis=0)
            dh = da @ Wh.T
            if drop:
                dh = cdropout.dropout_backward(dh, self.h_keys[t])
        return grads

    def evaluate(self, x: np.ndarray, y: np.ndarray) -> tuple:
        """(mean cross-entropy, accuracy) in inference mode."""
        self.training = False
        logits = self.forward(x)
        self.training = True
        z = logits - logits.max(axis=1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        return float(-logp[np.arange(len(y)), y].mean()), float(np.mean(logits.argmax(axis=1) == y))


class Adam:
    def __init__(self, params: List[np.ndarray], b1: float = 0.9, b2: float = 0.999):
        self.m = [np.zeros_like(p) for p in params]
        self.v = [np.zeros_like(p) for p in params]
        self.b1, self.b2, self.t = b1, b2, 0

    def step(self, params: List[np.ndarray], grads: List[np.ndarray], lr: float) -> None:
        self.t += 1
        c1, c2 = 1 - self.b1 ** self.t, 1 - self.b2 ** self.t
        for p, m, v, g in zip(params, self.m, self.v, grads):
            np.clip(g, -1.0, 1.0, out=g)  # keep BPTT stable
            m *= self.b1
            m += (1 - self.b1) * g
            v *= self.b2
            v += (1 - self.b2) * g * g
            p -= lr * (m / c1) / (np.sqrt(v / c2) + 1e-8)


def softmax_xent_grad(logits: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Gradient of the mean cross-entropy with respect to the logits."""
    z = logits - logits.max(axis=1, keepdims=True)
    prob = np.exp(z)
    prob /= prob.sum(axis=1, keepdims=True)
    prob[np.arange(len(y)), y] -= 1.0
    return prob / len(y)


def fit(data, epochs: int, mode: str, seed: int = 0) -> Dict[str, list]:
    x_tr, x_va, y_tr, y_va = data
    model = RNN(x_tr.shape[2], 10, mode, seed)
    order_rng = np.random.default_rng(seed + 2)  # the same mini-batches in every run
    hist: Dict[str, list] = {"train_acc": [], "val_loss": [], "val_acc": []}
    for epoch in range(1, epochs + 1):
        perm = order_rng.permutation(len(x_tr))
        for start in range(0, len(perm), BATCH):
            idx = perm[start:start + BATCH]
            logits = model.forward(x_tr[idx])
            model.adam.step(model.params, model.backward(softmax_xent_grad(logits, y_tr[idx])), LR)
        hist["train_acc"].append(model.evaluate(x_tr, y_tr)[1])
        loss, acc = model.evaluate(x_va, y_va)
        hist["val_loss"].append(loss)
        hist["val_acc"].append(acc)
        if epoch % 10 == 0 or epoch == epochs:
            print(f"{mode:>12s} epoch {epoch:3d}  train acc {hist['train_acc'][-1]:.4f}  "
                  f"val loss {loss:.4f}  val acc {acc:.4f}", flush=True)
    return hist


def plot(histories: Dict[str, Dict[str, list]], out: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {"no dropout": "tab:red", "naive": "tab:orange", "variational": "tab:blue"}
    labels = {"no dropout": "no dropout", "naive": "naive (new mask every step)",
              "variational": "variational (one mask over time)"}
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4.2))
    for name, h in histories.items():
        epochs = np.arange(1, len(h["val_loss"]) + 1)
        ax_loss.plot(epochs, h["val_loss"], color=colors[name], label=labels[name])
        ax_acc.plot(epochs, h["val_acc"], color=colors[name], label=labels[name])
    lowest = min(min(h["val_loss"]) for h in histories.values())
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy", title="Validation loss (lower is better)")
    ax_loss.set_ylim(0.8 * lowest, 2.5 * lowest)  # the interesting part: after the first epochs
    ax_loss.legend(loc="upper right")
    late = [a for h in histories.values() for a in h["val_acc"][len(h["val_acc"]) // 4:]]
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="Validation accuracy")
    ax_acc.set_ylim(min(late) - 0.02, min(1.0, max(late) + 0.01))
    ax_acc.legend(loc="lower right")
    fig.suptitle(f"RNN reading digits row by row ({HIDDEN} tanh units): dropout on inputs and recurrence")
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Dict[str, list]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=100, help="training epochs per run (default 100)")
    parser.add_argument("--out", default="rnn_dropout.png", help="PNG file for the curves")
    parser.add_argument("--seed", type=int, default=0, help="seed of weights, batches and masks")
    args = parser.parse_args(argv)
    if args.epochs < 1:
        parser.error("--epochs must be at least 1")

    data = load_data(seed=args.seed)
    print(f"digits as 8-step sequences: {len(data[0])} training and {len(data[1])} validation images; "
          f"RNN 8-{HIDDEN}-10, Adam lr={LR}, batch {BATCH}, p_input={P_INPUT}, p_hidden={P_HIDDEN}")
    t0 = time.perf_counter()
    # The matrices are tiny (32 x 128): one BLAS thread is faster than a team, and much faster
    # on a busy machine, where BLAS threads wait for cores.
    with threadpool_limits(1, user_api="blas"):
        histories = {mode: fit(data, args.epochs, mode, args.seed) for mode in MODES}
    print()
    for name, h in histories.items():
        best = int(np.argmin(h["val_loss"]))
        print(f"{name:>12s} final: train acc {h['train_acc'][-1]:.4f}  val acc {h['val_acc'][-1]:.4f}  "
              f"val loss {h['val_loss'][-1]:.4f} (lowest {h['val_loss'][best]:.4f} at epoch {best + 1})")
    plot(histories, args.out)
    print(f"curves written to {args.out} ({time.perf_counter() - t0:.1f} s)")
    return histories


if __name__ == "__main__":
    main()
