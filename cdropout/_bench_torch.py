"""PyTorch training-step benchmark: ``torch.nn.Dropout`` against ``cdropout.torch.Dropout``.

Run ``python -m cdropout.bench torch-step`` (or ``python -m cdropout._bench_torch``); ``--help``
lists the options. Needs PyTorch.

The model is an MLP ``Linear(1024, 4096) -> ReLU -> dropout -> Linear(4096, 1024)`` on a batch
of 256 (a 256 x 4096 float32 hidden layer), trained with SGD on a mean-squared error. A step is
``zero_grad``, forward, loss, backward and ``optimizer.step()``. Three models with the same
weights are timed in interleaved rounds (the minimum per model is reported): with
``nn.Dropout``, with ``cdropout.torch.Dropout`` and with ``nn.Identity`` (no dropout). The dropout
layer alone is also timed on the 256 x 4096 hidden tensor, forward and forward + backward. The
share of a step spent in dropout is given two ways: the layer's forward + backward alone over the
step, and ``(step - step without dropout) / step`` (which a loaded machine's noise can swamp).
``torch.set_num_threads`` is set to ``--threads`` for the run and restored afterwards.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any, Callable, Dict, List, Optional, Sequence

BATCH, IN, HIDDEN, OUT = 256, 1024, 4096, 1024


def _best(fn: Callable[[], Any], number: int) -> float:
    """Seconds per call of the fastest of `number` back-to-back calls (after a warm-up call)."""
    fn()
    best = float("inf")
    for _ in range(number):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def measure(threads: int = 1, rounds: int = 5, steps: int = 5, p: float = 0.5) -> Dict[str, float]:
    """Times in seconds: ``step_<model>`` and ``fwd_<layer>`` / ``fwdbwd_<layer>`` (see the module doc)."""
    import torch

    import cdropout.torch as ct

    saved = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        torch.manual_seed(0)
        layers: Dict[str, torch.nn.Module] = {"torch": torch.nn.Dropout(p), "cdropout": ct.Dropout(p),
                                              "none": torch.nn.Identity()}
        proto = torch.nn.Sequential(torch.nn.Linear(IN, HIDDEN), torch.nn.ReLU(), torch.nn.Identity(),
                                    torch.nn.Linear(HIDDEN, OUT))
        x, target = torch.randn(BATCH, IN), torch.randn(BATCH, OUT)
        steps_fn: Dict[str, Callable[[], Any]] = {}
        for name, layer in layers.items():
            model = torch.nn.Sequential(proto[0], proto[1], layer, proto[3]).train()
            opt = torch.optim.SGD(model.parameters(), lr=1e-4)

            def step(model: torch.nn.Module = model, opt: torch.optim.Optimizer = opt) -> None:
                opt.zero_grad(set_to_none=False)
                loss = torch.nn.functional.mse_loss(model(x), target)
                loss.backward()
                opt.step()

            steps_fn[name] = step
        h = torch.randn(BATCH, HIDDEN, requires_grad=True)
        g = torch.randn(BATCH, HIDDEN)
        alone: Dict[str, Callable[[], Any]] = {}
        for name in ("torch", "cdropout"):
            def fwd(layer: torch.nn.Module = layers[name]) -> Any:
                return layer(h)

            def fwdbwd(layer: torch.nn.Module = layers[name]) -> Any:
                return torch.autograd.grad(layer(h), h, g)

            alone[f"fwd_{name}"], alone[f"fwdbwd_{name}"] = fwd, fwdbwd
        # the same two passes for a plain multiply: how much of the fwd+bwd / fwd ratio is memory
        alone["fwd_multiply"] = lambda: h * 2.0
        alone["fwdbwd_multiply"] = lambda: torch.autograd.grad(h * 2.0, h, g)
        out: Dict[str, float] = {}
        for _ in range(rounds):  # interleaved rounds: a burst of load hits every case alike
            for name, fn in steps_fn.items():
                out[f"step_{name}"] = min(out.get(f"step_{name}", float("inf")), _best(fn, steps))
            for name, fn in alone.items():
                out[name] = min(out.get(name, float("inf")), _best(fn, 4 * steps))
        return out
    finally:
        torch.set_num_threads(saved)


def report(t: Dict[str, float], threads: int, markdown: bool = False) -> str:
    import torch

    none = t["step_none"]
    rows: List[Sequence[str]] = [("model", "step", "step / no-dropout step", "dropout share (layer alone)",
                                  "dropout share (difference)")]
    for name, label in (("none", "no dropout (nn.Identity)"), ("torch", "torch.nn.Dropout"),
                        ("cdropout", "cdropout.torch.Dropout")):
        s = t[f"step_{name}"]
        alone = "-" if name == "none" else f"{100 * t[f'fwdbwd_{name}'] / s:.2f} %"
        diff = "-" if name == "none" else f"{100 * max(s - none, 0.0) / s:.1f} %"
        rows.append((label, f"{1e3 * s:.2f} ms", f"{s / none:.3f}", alone, diff))
    rows2: List[Sequence[str]] = [("dropout layer alone, 256 x 4096", "forward", "forward + backward", "ratio")]
    for name, label in (("torch", "torch.nn.Dropout"), ("cdropout", "cdropout.torch.Dropout"),
                        ("multiply", "h * 2 (yardstick: same two passes)")):
        f, fb = t[f"fwd_{name}"], t[f"fwdbwd_{name}"]
        rows2.append((label, f"{1e6 * f:.0f} us", f"{1e6 * fb:.0f} us", f"{fb / f:.2f}"))
    load = open("/proc/loadavg").read().split()[:3] if os.path.exists("/proc/loadavg") else ["?"]
    head = (f"torch {torch.__version__}, {threads} thread(s), float32, p = 0.5, MLP "
            f"{IN}-{HIDDEN}-{OUT}, batch {BATCH}, SGD; load average {' '.join(load)}")

    def table(rows: List[Sequence[str]]) -> str:
        if markdown:
            lines = ["| " + " | ".join(r) + " |" for r in rows]
            lines.insert(1, "|" + "---|" * len(rows[0]))
            return "\n".join(lines)
        w = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        return "\n".join("  ".join(c.ljust(w[i]) for i, c in enumerate(r)) for r in rows)

    return f"{head}\n\n{table(rows)}\n\n{table(rows2)}"


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cdropout.bench torch-step",
                                     description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads for the run (default 1)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per model per round (default 5)")
    parser.add_argument("--markdown", action="store_true", help="print Markdown tables")
    args = parser.parse_args(argv)
    try:
        import torch  # noqa: F401
    except ImportError:
        print("error: the torch-step benchmark needs PyTorch (pip install torch)", file=sys.stderr)
        return 2
    print(report(measure(args.threads, args.rounds, args.steps), args.threads, args.markdown))
    return 0


if __name__ == "__main__":
    sys.exit(main())
