"""The examples rnn_dropout.py, mc_dropout.py and classic_vs_inverted.py run end to end with tiny
settings and write their PNG; their models compute what their docstrings claim."""
import importlib.util
import os
import sys

import numpy as np
import pytest

import cdropout

EXAMPLES = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "examples")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def load(name):
    pytest.importorskip("matplotlib")
    pytest.importorskip("sklearn")
    path = os.path.join(EXAMPLES, name + ".py")
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # classic_vs_inverted imports mlp_digits by name
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def assert_png(path):
    with open(path, "rb") as f:
        assert f.read(8) == PNG_MAGIC


# ---------------------------------------------------------------------------------------- RNN


def test_rnn_two_epochs(tmp_path, capsys):
    rnn = load("rnn_dropout")
    out = tmp_path / "rnn.png"
    histories = rnn.main(["--epochs", "2", "--out", str(out)])
    text = capsys.readouterr().out
    assert list(histories) == ["no dropout", "naive", "variational"]
    for name, h in histories.items():
        assert len(h["val_loss"]) == len(h["val_acc"]) == len(h["train_acc"]) == 2
        assert all(np.isfinite(h["val_loss"])) and all(0 <= a <= 1 for a in h["val_acc"])
        assert h["val_acc"][-1] > 0.2, f"{name}: the network should learn something in 2 epochs"
        assert f"{name} final" in text
    assert_png(out)


@pytest.mark.parametrize("mode", ["naive", "variational"])
def test_rnn_hidden_masks(mode):
    """Variational: one hidden-state mask for every step; naive: a new one at every step."""
    rnn = load("rnn_dropout")
    model = rnn.RNN(8, 10, mode, seed=0)
    x = np.random.default_rng(1).random((16, 8, 8), dtype=np.float32)
    model.forward(x)
    keys = {(k.seed, k.stream) for k in model.h_keys}
    assert len(model.h_keys) == 8
    assert len(keys) == (1 if mode == "variational" else 8)
    if mode == "variational":  # the input mask too is shared over time
        kept = model.x != 0
        assert np.array_equal(kept, np.broadcast_to(kept[:, :1], kept.shape))


@pytest.mark.parametrize("mode", ["no dropout", "naive", "variational"])
def test_rnn_backward_matches_finite_differences(mode):
    """The example's backprop through time, masks included, is the gradient of its forward."""
    rnn = load("rnn_dropout")
    model = rnn.RNN(8, 10, mode, seed=0)
    model.params = [p.astype(np.float64) for p in model.params]
    rng = np.random.default_rng(2)
    x = rng.random((4, 8, 8))
    r = rng.standard_normal((4, 10))
    state = model.gen.get_state()

    def loss():
        model.gen.set_state(state)  # the same masks in every forward
        return float(np.sum(model.forward(x) * r))

    loss()
    grads = model.backward(r)
    eps = 1e-6
    for k, param in enumerate(model.params):
        for idx in [tuple(rng.integers(0, n) for n in param.shape) for _ in range(3)]:
            old = param[idx]
            param[idx] = old + eps
            up = loss()
            param[idx] = old - eps
            down = loss()
            param[idx] = old
            assert (up - down) / (2 * eps) == pytest.approx(grads[k][idx], rel=1e-4, abs=1e-7), (k, idx)


# ------------------------------------------------------------------------------ MC dropout


def test_mc_dropout_quick(tmp_path, capsys):
    mc = load("mc_dropout")
    out = tmp_path / "mc.png"
    pred = mc.main(["--steps", "300", "--passes", "20", "--out", str(out)])
    text = capsys.readouterr().out
    assert pred["mean"].shape == pred["std"].shape == pred["deterministic"].shape == (300,)
    assert np.all(pred["std"] > 0)
    # each pass is one function: its mask is shared by all points (smooth samples)
    assert pred["samples"].shape == (20, 300)
    assert pred["std"][~pred["inside"]].mean() > pred["std"][pred["inside"]].mean()
    assert "outside" in text
    assert_png(out)


def test_mc_dropout_passes_share_one_mask_over_points():
    mc = load("mc_dropout")
    net = mc.Net(seed=0)
    x = np.linspace(-1, 1, 5, dtype=np.float32)[:, None]
    net.forward(np.broadcast_to(x, (3, 5, 1)), net.mc_drops)
    kept = net.a1 != 0
    dead = net.h1 == 0  # ReLU zeros are zero whatever the mask
    # within one pass a unit is dropped at every point or at none (where the ReLU lets it through)
    for k in range(3):
        live = ~dead[k]
        dropped_units = np.any(live & ~kept[k], axis=0)
        assert not np.any(kept[k][:, dropped_units] & live[:, dropped_units])
    assert net.mc_drops[0].training is False  # eval mode, yet stochastic (mc=True)


# ------------------------------------------------------------------- classic vs inverted


def test_classic_vs_inverted_quick(tmp_path, capsys):
    cvi = load("classic_vs_inverted")
    out = tmp_path / "cvi.png"
    act, histories = cvi.main(["--epochs", "2", "--masks", "400", "--out", str(out)])
    text = capsys.readouterr().out
    assert list(histories) == ["inverted", "classic", "classic, matched"]
    # matched classic dropout follows inverted dropout's training (up to rounding)
    assert histories["classic, matched"]["val"] == pytest.approx(histories["inverted"]["val"], abs=2e-3)
    for a in act.values():  # mean of 400 masks close to the inference output
        assert np.abs(a["train_mean"] - a["inference"]).max() < 0.25 * a["inference"].max()
    p = cvi.P
    np.testing.assert_allclose(act["classic"]["inference"], act["inverted"]["inference"] * np.float32(1 - p),
                               rtol=1e-6)
    assert "largest difference" in text
    assert_png(out)
