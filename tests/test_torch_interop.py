"""cdropout.torch: zero-copy autograd Function and nn.Module (skipped when torch is absent)."""
import importlib
import io
import sys

import numpy as np
import pytest

import cdropout
import reference
from helpers import assert_same_bits, random_data


def test_import_error_without_torch(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now fails
    monkeypatch.delitem(sys.modules, "cdropout.torch", raising=False)
    with pytest.raises(ImportError, match="cdropout.torch needs PyTorch"):
        importlib.import_module("cdropout.torch")


@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch")


@pytest.fixture(scope="module")
def ct(torch):
    return importlib.import_module("cdropout.torch")


TORCH_DTYPES = ("float16", "float32", "float64")


@pytest.mark.parametrize("dtype", TORCH_DTYPES)
def test_forward_backward_match_numpy(torch, ct, dtype):
    x_np = random_data((9, 13), np.dtype(dtype), seed=1)
    x = torch.from_numpy(x_np.copy()).requires_grad_()
    y = ct.dropout(x, 0.3, seed=5, stream=2)
    assert y.dtype == x.dtype
    assert_same_bits(y.detach().numpy(), reference.dropout(x_np, 0.3, 5, 2))
    g = random_data(x_np.shape, np.dtype(dtype), seed=2)
    y.backward(torch.from_numpy(g))
    keep = reference.keep_mask(x_np.shape, 0.3, 5, 2)
    assert_same_bits(x.grad.numpy(), reference.apply_mask(g, keep, 0.3))


def test_only_the_key_is_saved(torch, ct):
    x = torch.ones(100, dtype=torch.float64, requires_grad=True)
    y = ct.dropout(x, 0.5, seed=1, stream=3, offset=5)
    saved = y.grad_fn.saved_tensors
    assert len(saved) == 1 and saved[0].dtype == torch.int64
    # (seed, stream, offset, format): 32 bytes, no mask, no input
    assert saved[0].tolist() == [1, 3, 5, cdropout.FORMAT_VERSION]


def test_outputs_own_fresh_memory(torch, ct):
    x = torch.randn(6, 8, dtype=torch.float32)
    y = ct.dropout(x, 0.5, seed=0)
    assert y.data_ptr() != x.data_ptr()
    assert y.stride() == x.stride()
    z = x.clone()
    ptr = z.data_ptr()
    out = ct.dropout(z, 0.5, seed=0, inplace=True)
    assert out is z and z.data_ptr() == ptr
    assert_same_bits(z.numpy(), reference.dropout(x.numpy(), 0.5, 0))
    for t in (x.t(), x[:, ::2]):  # strided views are read in place, results as the reference
        assert_same_bits(ct.dropout(t, 0.5, seed=4).numpy(), reference.dropout(t.numpy(), 0.5, 4))


def test_inplace_autograd(torch, ct):
    leaf = torch.randn(20, dtype=torch.float64, requires_grad=True)
    h = leaf * 2
    y = ct.dropout(h, 0.4, seed=3, inplace=True)
    assert y is h
    y.sum().backward()
    keep = reference.keep_mask((20,), 0.4, 3)
    assert_same_bits(leaf.grad.numpy(), reference.apply_mask(np.full(20, 2.0), keep, 0.4))
    before = leaf.detach().clone()
    with pytest.raises(RuntimeError, match="leaf Variable"):  # as in PyTorch, and nothing written
        ct.dropout(leaf, 0.4, seed=3, inplace=True)
    assert torch.equal(leaf.detach(), before)


def test_gradcheck_float64(torch, ct):
    x = torch.randn(7, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: ct.dropout(t, 0.3, seed=11, stream=1), (x,))
    assert torch.autograd.gradgradcheck(lambda t: ct.dropout(t, 0.3, seed=11, stream=1), (x,))
    xt = torch.randn(5, 7, dtype=torch.float64).t().requires_grad_()  # non-contiguous
    assert torch.autograd.gradcheck(lambda t: ct.dropout(t, 0.5, seed=2, noise_shape=(7, 1)), (xt,))
    assert torch.autograd.gradcheck(lambda t: ct.dropout(t, 0.5, seed=2, scale=False), (x,))


def test_noise_shape_and_expanded_grad(torch, ct):
    x = torch.randn(4, 6, dtype=torch.float32, requires_grad=True)
    y = ct.dropout(x, 0.5, seed=4, noise_shape=(4, 1))
    assert_same_bits(y.detach().numpy(), reference.dropout(x.detach().numpy(), 0.5, 4, noise_shape=(4, 1)))
    y.sum().backward()  # the incoming gradient is an expanded (stride 0) tensor
    keep = reference.keep_mask((4, 1), 0.5, 4)
    assert_same_bits(x.grad.numpy(), reference.apply_mask(np.ones((4, 6), np.float32), keep, 0.5))


def test_module_train_eval_and_generators(torch, ct):
    m = ct.Dropout(0.25, generator=cdropout.Generator(7))
    assert repr(m) == "Dropout(p=0.25, inplace=False)"
    x = torch.randn(30, 3)
    for stream in range(2):  # a cdropout.Generator: each forward takes its next stream
        assert_same_bits(m(x).numpy(), reference.dropout(x.numpy(), 0.25, 7, stream))
    m.eval()
    assert m(x) is x
    assert m.generator.next_stream == 2
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    a, b = ct.Dropout(0.5, generator=g1), ct.Dropout(0.5, generator=g2)
    assert torch.equal(a(x), b(x)) and torch.equal(a(x), b(x))
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), ct.Dropout(0.5), torch.nn.Linear(4, 1))
    net(x).sum().backward()
    assert net[0].weight.grad is not None


def test_module_inplace(torch, ct):
    m = ct.Dropout(0.5, inplace=True, generator=cdropout.Generator(2))
    h = torch.randn(10, dtype=torch.float64, requires_grad=True) * 1
    expected = reference.dropout(h.detach().numpy().copy(), 0.5, 2, 0)
    y = m(h)
    assert y is h
    assert_same_bits(y.detach().numpy(), expected)


def test_bad_inputs(torch, ct):
    with pytest.raises(TypeError, match="dtype"):
        ct.dropout(torch.ones(3, dtype=torch.int64), 0.5, seed=0)
    with pytest.raises(TypeError, match="dtype"):
        ct.dropout(torch.ones(3, dtype=torch.complex64), 0.5, seed=0)
    with pytest.raises(TypeError, match="torch.Tensor"):
        ct.dropout(np.ones(3), 0.5, seed=0)
    with pytest.raises(ValueError, match="between 0 and 1"):
        ct.Dropout(-0.1)
    with pytest.raises(ValueError, match="does not broadcast"):
        ct.dropout(torch.ones(3, 2), 0.5, seed=0, noise_shape=(2, 1))
    gen = cdropout.Generator(0)
    with pytest.raises(TypeError):
        ct.dropout(torch.ones(3, dtype=torch.int32), 0.5, generator=gen)
    assert gen.next_stream == 0, "a rejected call must not use a stream"


@pytest.mark.parametrize("p", [0.3, 0.05, 0.9])
def test_alpha_dropout_agrees_with_pytorch(torch, p):
    """cdropout.alpha_dropout and its backward against PyTorch's own alpha dropout.

    PyTorch's mask is recovered from a probe (kept zeros become b > 0, dropped ones c < 0). The
    forwards must agree wherever both libraries kept, or both dropped, an element; the backward
    with PyTorch's mask must equal PyTorch's autograd gradient."""
    F = torch.nn.functional
    x = torch.randn(4000, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    g = torch.randn(4000, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    torch.manual_seed(0)
    probe = F.alpha_dropout(torch.zeros_like(x), p, True)
    torch.manual_seed(0)
    xg = x.clone().requires_grad_()
    y_torch = F.alpha_dropout(xg, p, True)
    y_torch.backward(g)
    keep_torch = (probe > 0).numpy()
    assert 0 < keep_torch.mean() < 1

    y, keep = cdropout.alpha_dropout(x.numpy(), p, seed=3, return_mask="bool")
    both = keep == keep_torch
    assert np.any(both & keep) and np.any(both & ~keep)
    np.testing.assert_allclose(y[both], y_torch.detach().numpy()[both], rtol=1e-13, atol=1e-15)

    grad = cdropout.alpha_dropout_backward(g.numpy(), keep_torch, p=p)
    np.testing.assert_allclose(grad, xg.grad.numpy(), rtol=1e-13, atol=0)
    assert np.all(grad[~keep_torch] == 0)


def test_channel_dropout_shapes_agree_with_pytorch(torch):
    """Dropout1d/2d/3d zero whole channels in PyTorch and here, batched and unbatched."""
    F = torch.nn.functional
    cases = [  # (torch function, ours, shape, number of leading axes with a mask entry)
        (F.dropout1d, cdropout.dropout1d, (3, 4, 5), 2), (F.dropout1d, cdropout.dropout1d, (4, 5), 1),
        (F.dropout2d, cdropout.dropout2d, (2, 3, 4, 5), 2),
        (F.dropout3d, cdropout.dropout3d, (2, 3, 2, 2, 2), 2), (F.dropout3d, cdropout.dropout3d, (3, 2, 2, 2), 1),
    ]
    for tf, cf, shape, lead in cases:
        t = tf(torch.ones(shape, dtype=torch.float64), 0.5, True).numpy()
        c = cf(np.ones(shape), 0.5, seed=1)
        for arr in (t, c):
            flat = arr.reshape(int(np.prod(shape[:lead])), -1)
            assert np.all(flat == flat[:, :1]), (tf.__name__, shape)


def test_docstring_examples(ct):
    import doctest

    for mod in (ct, ct._functional, ct._modules):
        result = doctest.testmod(mod, optionflags=doctest.ELLIPSIS)
        assert result.attempted > 0 and result.failed == 0, mod.__name__
