"""Classic dropout (scaled at inference) against inverted dropout (scaled at training).

Dropout zeroes each unit with probability p during training. To keep the expected activation of
the training network equal to the activation of the inference network, one side has to be
rescaled:

- inverted dropout (``scale=True``, the default, as in PyTorch): training multiplies the kept
  units by 1/(1-p), inference is the identity;
- classic dropout (``scale=False``, as in the original dropout paper): training keeps the units
  as they are, inference multiplies by (1-p).

Left: for the activations of a hidden layer, the mean over many training-mode masks equals the
inference output, for both. Right: the MLP of ``mlp_digits.py`` trained on scikit-learn's digits
with each. All runs draw exactly the same masks (a mask depends only on seed, stream, element and
p, not on the scaling). With the same learning rate, classic dropout learns more slowly: its
weight gradients are (1-p) times smaller and its weights must grow 1/(1-p) times larger. Starting
from weights scaled by 1/(1-p) and with the learning rate of each weight matrix scaled by
1/(1-p)**2 (for the p of the dropout before it), classic dropout follows the same trajectory as
inverted dropout and ends at the same accuracy, up to rounding.

Usage::

    python examples/classic_vs_inverted.py           # 60 epochs, writes classic_vs_inverted.png
    python examples/classic_vs_inverted.py --epochs 10 --masks 100 --out cmp.png

Needs the `examples` extra (scikit-learn and matplotlib): ``pip install ".[examples]"`` in the
source directory.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Dict, Optional, Sequence

import numpy as np
from threadpoolctl import threadpool_limits  # installed with scikit-learn

import cdropout

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mlp_digits  # noqa: E402  (the network, data and training loop of the digits example)

P = mlp_digits.P_HIDDEN
LABELS = {"inverted": "inverted", "classic": "classic, same learning rate",
          "classic, matched": "classic, weights / (1-p), learning rate / (1-p)²"}


def expected_activations(h: np.ndarray, masks: int, seed: int) -> Dict[str, Dict[str, np.ndarray]]:
    """Mean over `masks` training-mode masks against the inference output, for both scalings.

    The `masks` samples run as one call: `h` is repeated along a new first axis and every copy
    gets its own mask. The same seed gives both scalings the same masks.
    """
    batch = np.broadcast_to(h, (masks, *h.shape))
    out = {}
    for name, scale in (("inverted", True), ("classic", False)):
        train = cdropout.dropout(batch, P, seed=seed, scale=scale)
        infer = cdropout.dropout(h, P, training=False, scale=scale)
        out[name] = {"train_mean": train.mean(axis=0), "inference": infer}
    return out


class MatchedClassicMLP(mlp_digits.MLP):
    """Classic dropout reparametrised to follow inverted dropout's training exactly.

    With W_classic = W_inverted / (1-p) both networks compute the same outputs, in training and
    at inference, and receive the same gradients except (1-p) times smaller ones for the weight
    matrices; momentum SGD on W_classic at lr / (1-p)**2 then moves them as inverted dropout
    moves W_inverted.
    """

    def __init__(self, params, dropout_seed: int):
        params, self.factors = list(params), [1.0] * len(params)
        for i, p in enumerate((mlp_digits.P_INPUT, mlp_digits.P_HIDDEN, mlp_digits.P_HIDDEN)):
            params[2 * i] = params[2 * i] / np.float32(1 - p)  # weight matrix after dropout i
            self.factors[2 * i] = 1.0 / (1 - p) ** 2
        super().__init__(params, dropout_seed, scale=False)

    def step(self, grads):
        super().step([g * np.float32(f) for g, f in zip(grads, self.factors)])


def hidden_activations(data, n: int = 8) -> np.ndarray:
    """First-layer ReLU activations of a few validation images in a freshly initialised MLP."""
    x_va = data[1][:n]
    params = mlp_digits.init_params(np.random.default_rng(0), (64, mlp_digits.HIDDEN, mlp_digits.HIDDEN, 10))
    return np.maximum(x_va @ params[0] + params[1], 0).astype(np.float32)


def plot(act, histories, masks: int, out: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {"inverted": "tab:blue", "classic": "tab:orange", "classic, matched": "tab:green"}
    fig, (ax_e, ax_acc) = plt.subplots(1, 2, figsize=(11, 4.4))
    top = 0.0
    for name, a in act.items():
        ax_e.scatter(a["inference"].ravel(), a["train_mean"].ravel(), s=4, alpha=0.5, color=colors[name],
                     label=f"{name}: inference = x{' * (1-p)' if name == 'classic' else ''}")
        top = max(top, float(a["inference"].max()))
    ax_e.plot([0, top], [0, top], color="k", lw=0.8, ls="--", label="y = x")
    ax_e.set(xlabel="inference output", ylabel=f"mean of {masks} training outputs",
             title=f"Same expected activation (hidden units, p = {P})")
    ax_e.legend(loc="upper left", fontsize=9)
    for name, h in histories.items():
        epochs = np.arange(1, len(h["val"]) + 1)
        style = {"ls": ":", "lw": 2.5} if name == "classic, matched" else {}
        ax_acc.plot(epochs, h["val"], color=colors[name], label=LABELS[name], **style)
    late = [a for h in histories.values() for a in h["val"][len(h["val"]) // 4:]]
    ax_acc.set_ylim(min(late) - 0.02, max(late) + 0.01)
    ax_acc.set(xlabel="epoch", ylabel="validation accuracy", title="Digits MLP, the same masks in every run")
    ax_acc.legend(loc="lower right", fontsize=9)
    fig.suptitle("Classic dropout (scale=False) and inverted dropout (scale=True)")
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


def main(argv: Optional[Sequence[str]] = None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=60, help="training epochs per run (default 60)")
    parser.add_argument("--masks", type=int, default=2000, help="masks averaged on the left (default 2000)")
    parser.add_argument("--out", default="classic_vs_inverted.png", help="PNG file for the plot")
    parser.add_argument("--seed", type=int, default=0, help="seed of weights, batches and masks")
    args = parser.parse_args(argv)
    if args.epochs < 1 or args.masks < 1:
        parser.error("--epochs and --masks must be at least 1")

    t0 = time.perf_counter()
    data = mlp_digits.load_data(seed=args.seed)
    act = expected_activations(hidden_activations(data), args.masks, args.seed)
    for name, a in act.items():
        err = np.abs(a["train_mean"] - a["inference"]).max() / a["inference"].max()
        print(f"{name:>9s}: mean of {args.masks} training outputs vs inference output, "
              f"largest difference {err:.3f} of the largest activation")
    sizes = (64, mlp_digits.HIDDEN, mlp_digits.HIDDEN, 10)
    weights = mlp_digits.init_params(np.random.default_rng(args.seed), sizes)  # the same for all runs
    models = {
        "inverted": mlp_digits.MLP(weights, args.seed, scale=True),
        "classic": mlp_digits.MLP(weights, args.seed, scale=False),
        "classic, matched": MatchedClassicMLP(weights, args.seed),
    }
    with threadpool_limits(1, user_api="blas"):  # small matrices: one BLAS thread is fastest
        histories = {name: mlp_digits.fit(data, args.epochs, args.seed, args.seed, name, model=model)
                     for name, model in models.items()}
    print()
    diff = np.abs(np.subtract(histories["classic, matched"]["val"], histories["inverted"]["val"])).max()
    print(f"largest difference of validation accuracy, matched classic vs inverted: {diff:.4f}")
    for name, h in histories.items():
        print(f"{name:>16s} final: train {h['train'][-1]:.4f}  val {h['val'][-1]:.4f}  "
              f"best val {max(h['val']):.4f}")
    plot(act, histories, args.masks, args.out)
    print(f"plot written to {args.out} ({time.perf_counter() - t0:.1f} s)")
    return act, histories


if __name__ == "__main__":
    main()
