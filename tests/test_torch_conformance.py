"""cdropout.torch against the behaviours PyTorch's own dropout tests check (test_nn.py's
_test_dropout and friends), written independently: values, statistics, p = 0 and 1, in place,
layouts, eval mode, gradients, argument errors, and the drop-in surface (names, signatures,
repr, state_dict)."""
import inspect
import math

import numpy as np
import pytest

import reference

torch = pytest.importorskip("torch")
ct = pytest.importorskip("cdropout.torch")

DTYPES = [torch.float16, torch.bfloat16, torch.float32, torch.float64]


def scale_in(dtype, p):
    """1/(1-p) rounded to the dtype, as a float."""
    return torch.tensor(1.0 / (1.0 - p), dtype=torch.float64).to(dtype).item()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("p", [0.2, 0.5, 0.9])
def test_outputs_are_zero_or_scaled_input(dtype, p):
    x = torch.rand(1000, dtype=torch.float64).add_(0.5).to(dtype)
    y = ct.dropout(x, p, seed=1)
    s = torch.tensor(scale_in(dtype, p), dtype=dtype)
    kept = y != 0
    assert 0 < kept.sum() < x.numel()
    assert torch.equal(y[kept], x[kept] * s)  # x * s in the dtype: one rounding
    assert np.array_equal(kept.numpy(), reference.keep_mask((1000,), p, 1))


@pytest.mark.parametrize("p", [0.1, 0.3, 0.7])
def test_mean_is_preserved(p):
    n = 1 << 20
    y = ct.dropout(torch.ones(n, dtype=torch.float64), p, seed=12345)
    std = math.sqrt(p / (1 - p) / n)  # std of the mean of n values 0 or 1/(1-p)
    assert abs(y.mean().item() - 1.0) < 5 * std
    assert abs((y != 0).double().mean().item() - (1 - p)) < 5 * math.sqrt(p * (1 - p) / n)


def test_p_zero_and_one():
    x = torch.randn(50, requires_grad=True)
    assert ct.dropout(x, 0.0) is x  # as F.dropout on the CPU: the input itself
    y = ct.dropout(x, 1.0, seed=3)
    assert torch.equal(y, torch.zeros(50)) and not torch.signbit(y).any()
    y.sum().backward()
    assert torch.equal(x.grad, torch.zeros(50))
    z = ct.dropout(torch.full((5,), float("nan")), 1.0, seed=0)  # dropped elements are +0 even for NaN
    assert torch.equal(z, torch.zeros(5))
    m = ct.Dropout(1.0)
    assert torch.equal(m(torch.ones(4)), torch.zeros(4))


@pytest.mark.parametrize("dtype", DTYPES)
def test_inplace_equals_out_of_place(dtype):
    x = torch.randn(33, 17, dtype=torch.float64).to(dtype)
    y = ct.dropout(x, 0.4, seed=5, stream=2)
    z = x.clone()
    out = ct.dropout(z, 0.4, True, True, seed=5, stream=2)
    assert out is z
    assert torch.equal(z, y)
    w = x.clone()
    assert ct.Dropout(0.4, inplace=True, generator=torch.Generator().manual_seed(1))(w) is w


def test_discontiguous_inputs_use_logical_indices():
    base = torch.randn(20, 30, dtype=torch.float64)
    for x in (base.t(), base[::2, ::3], base[:, 5:9], base.unsqueeze(0).expand(3, 20, 30)):
        y = ct.dropout(x, 0.5, seed=7)
        assert torch.equal(y, ct.dropout(x.contiguous(), 0.5, seed=7))
        np.testing.assert_array_equal(y.numpy(), reference.dropout(x.numpy(), 0.5, 7))


def test_channels_last_layout_kept():
    x = torch.randn(2, 3, 4, 5).to(memory_format=torch.channels_last)
    y = ct.dropout(x, 0.5, seed=1)
    assert y.is_contiguous(memory_format=torch.channels_last)
    assert y.stride() == torch.nn.functional.dropout(x, 0.5).stride()
    assert torch.equal(y, ct.dropout(x.contiguous(), 0.5, seed=1))
    y2 = ct.Dropout2d(0.5)(x)
    assert y2.is_contiguous(memory_format=torch.channels_last)
    assert bool((y2 == 0).flatten(2).all(2).logical_or((y2 != 0).flatten(2).any(2)).all())
    z = x.clone(memory_format=torch.channels_last)
    ct.dropout(z, 0.5, inplace=True, seed=1)
    assert torch.equal(z, y)


def test_eval_mode_is_identity():
    x = torch.randn(10, requires_grad=True)
    for f in (ct.dropout, ct.alpha_dropout, ct.feature_alpha_dropout):
        assert f(x, 0.5, training=False) is x
    for f, t in ((ct.dropout1d, torch.randn(2, 3, 4)), (ct.dropout2d, torch.randn(2, 3, 4, 4)),
                 (ct.dropout3d, torch.randn(2, 3, 2, 2, 2))):
        assert f(t, 0.5, training=False) is t
    for M in (ct.Dropout, ct.AlphaDropout):
        assert M(0.5).eval()(x) is x


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_gradient_is_mask_times_scale(dtype):
    x = torch.rand(300, dtype=torch.float64).add_(1).to(dtype).requires_grad_()
    y = ct.dropout(x, 0.3, seed=9)
    g = torch.rand(300, dtype=torch.float64).add_(1).to(dtype)
    y.backward(g)
    keep = torch.from_numpy(reference.keep_mask((300,), 0.3, 9).copy())
    s = torch.tensor(scale_in(dtype, 0.3), dtype=dtype)
    assert torch.equal(x.grad, torch.where(keep, g * s, torch.zeros((), dtype=dtype)))
    assert torch.equal(keep, y.detach() != 0)


def test_double_backward():
    x = torch.randn(40, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradgradcheck(lambda t: ct.dropout(t, 0.5, seed=2) ** 2, (x,))


@pytest.mark.parametrize("p", [-0.1, 1.1, float("nan"), float("inf")])
def test_p_outside_unit_interval(p):
    x = torch.ones(3)
    for f in (ct.dropout, ct.dropout1d, ct.dropout2d, ct.dropout3d, ct.alpha_dropout, ct.feature_alpha_dropout):
        with pytest.raises(ValueError, match="between 0 and 1"):
            f(x.view(1, 3, 1, 1, 1) if f is ct.dropout3d else x.view(1, 3, 1), p, True)
    for M in (ct.Dropout, ct.Dropout1d, ct.Dropout2d, ct.Dropout3d, ct.AlphaDropout, ct.FeatureAlphaDropout):
        with pytest.raises(ValueError, match="between 0 and 1"):
            M(p)


def test_names_and_signatures_match_torch():
    F = torch.nn.functional
    for name in ("dropout", "dropout1d", "dropout2d", "dropout3d", "alpha_dropout", "feature_alpha_dropout"):
        theirs = inspect.signature(getattr(F, name)).parameters
        ours = inspect.signature(getattr(ct, name)).parameters
        positional = [p for p in ours.values() if p.kind is p.POSITIONAL_OR_KEYWORD]
        assert [(p.name, p.default) for p in positional] == [(p.name, p.default) for p in theirs.values()], name
    for name in ("Dropout", "Dropout1d", "Dropout2d", "Dropout3d", "AlphaDropout", "FeatureAlphaDropout"):
        theirs, ours = getattr(torch.nn, name), getattr(ct, name)
        assert issubclass(ours, theirs)
        assert repr(ours(0.3, True)) == repr(theirs(0.3, True))
        assert list(ours(0.3).state_dict()) == list(theirs(0.3).state_dict()) == []


def test_channel_masks_follow_pytorch_shapes():
    cases = [(ct.dropout1d, (3, 4, 5), 2), (ct.dropout1d, (4, 5), 1), (ct.dropout2d, (2, 3, 4, 5), 2),
             (ct.dropout2d, (3, 4, 5), 2), (ct.dropout3d, (2, 3, 2, 2, 2), 2), (ct.dropout3d, (3, 2, 2, 2), 1)]
    for f, shape, lead in cases:
        with pytest.warns(UserWarning) if (f is ct.dropout2d and len(shape) == 3) else _nowarn():
            y = f(torch.ones(shape, dtype=torch.float64), 0.5, seed=3)
        flat = y.reshape(int(np.prod(shape[:lead])), -1)
        assert bool((flat == flat[:, :1]).all()), (f.__name__, shape)
        assert 0 < int((flat[:, 0] == 0).sum()) < flat.shape[0] or flat.shape[0] < 4
    with pytest.raises(RuntimeError, match="Expected 2D or 3D input"):
        ct.dropout1d(torch.ones(2, 3, 4, 5), 0.5)


class _nowarn:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_alpha_dropout_mean_and_variance_kept():
    x = torch.randn(1 << 18, dtype=torch.float64)
    y = ct.alpha_dropout(x, 0.2, True, seed=4)
    assert abs(y.mean().item()) < 0.02 and abs(y.std().item() - 1) < 0.02
    z = ct.feature_alpha_dropout(torch.randn(4, 64, 1024, dtype=torch.float64), 0.2, True, seed=4)
    # 256 channels, each dropped (all c = -1.236) or kept (mean ~ b = 0.30): the std of the mean
    # is about sqrt(0.2 * 0.8 * 1.54**2 / 256) = 0.038
    assert abs(z.mean().item()) < 5 * 0.038 and abs(z.std().item() - 1) < 0.1
