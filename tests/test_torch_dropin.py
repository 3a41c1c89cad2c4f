"""cdropout.torch as a drop-in for torch.nn.Dropout: one regression test per reported defect
(in-place safety, neg/conj views, overlapping tensors, eval factor, bfloat16, torch.manual_seed,
vmap and TorchScript, strict checkpoints, backward cost, the NumPy API's hint), and the
torch.library operator under torch.compile, torch.export and torch.vmap."""
import io

import numpy as np
import pytest

import cdropout
import reference
from helpers import assert_same_bits

torch = pytest.importorskip("torch")
ct = pytest.importorskip("cdropout.torch")


# 1. In-place: nothing is written when the call fails -------------------------------------------

def _refused(t, match, module=False):
    before = t.detach().clone()
    with pytest.raises(RuntimeError, match=match):
        if module:
            ct.Dropout(0.5, inplace=True)(t)
        else:
            ct.dropout(t, 0.5, inplace=True, seed=1)
    assert torch.equal(t.detach(), before), "a failed in-place call wrote to its input"


def test_inplace_refused_without_writing():
    leaf = torch.randn(8, 6, requires_grad=True)
    _refused(leaf, "leaf Variable")
    _refused(leaf, "leaf Variable", module=True)
    _refused(leaf[:3], "view of a leaf Variable")
    _refused(leaf.view(-1), "view of a leaf Variable")
    h = leaf * 1
    a, _ = h.unbind(0)[:2]
    _refused(a, "multiple views")
    _refused(h.split(2)[0], "multiple views")
    with torch.no_grad():  # allowed without grad mode, as in PyTorch (optimizers do this)
        w = torch.ones(10, requires_grad=True)
        ct.dropout(w, 0.5, inplace=True, seed=0)
        assert_same_bits(w.detach().numpy(), reference.dropout(np.ones(10, np.float32), 0.5, 0))


def test_inplace_on_non_leaf_view_is_differentiated():
    leaf = torch.randn(4, 5, dtype=torch.float64, requires_grad=True)
    h = leaf * 2
    ct.dropout(h[1:3], 0.5, inplace=True, seed=6)
    h.sum().backward()
    keep = reference.keep_mask((2, 5), 0.5, 6)
    expected = np.full((4, 5), 2.0)
    expected[1:3] = np.where(keep, 4.0, 0.0)
    np.testing.assert_array_equal(leaf.grad.numpy(), expected)


def test_inplace_bumps_version_counter():
    a = torch.randn(5, requires_grad=True)
    b = a * 1
    c = b * b  # saves b
    ct.dropout(b, 0.5, inplace=True, seed=1)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        c.sum().backward()
    x = torch.ones(3)
    v = x._version
    with torch.no_grad():
        ct.dropout(x, 0.5, inplace=True, seed=1)
    assert x._version > v


# 2. neg-bit and conj views ------------------------------------------------------------------

def test_neg_view_inplace_and_out_of_place():
    z = torch.ones(6)._neg_view()
    assert z.is_neg()
    y = ct.dropout(z, 0.5, seed=2)
    expected = reference.dropout(-np.ones(6, np.float32), 0.5, 2)
    assert_same_bits(y.numpy(), expected)
    out = ct.dropout(z, 0.5, inplace=True, seed=2)
    assert out is z
    assert_same_bits(z.resolve_neg().numpy(), expected)


def test_conj_views():
    x = torch.randn(4)
    assert ct.dropout(x.conj(), 0.5, seed=1).equal(ct.dropout(x, 0.5, seed=1))  # real: conj is x
    with pytest.raises(TypeError, match="dtype"):
        ct.dropout(torch.randn(4, dtype=torch.complex64).conj(), 0.5, inplace=True, seed=1)


# 3. expanded (self-overlapping) tensors ------------------------------------------------------

def test_expanded_inplace_refused():
    base = torch.ones(1, 5)
    e = base.expand(4, 5)
    with pytest.raises(RuntimeError, match="more than one element of the written-to tensor"):
        ct.dropout(e, 0.5, inplace=True, seed=1)
    with pytest.raises(RuntimeError, match="more than one element of the written-to tensor"):
        torch.nn.functional.dropout(e, 0.5, inplace=True)  # PyTorch's own refusal
    assert torch.equal(base, torch.ones(1, 5))
    y = ct.dropout(e, 0.5, seed=1)  # reading it is fine
    assert_same_bits(y.numpy(), reference.dropout(np.ones((4, 5), np.float32), 0.5, 1))


# 4. eval mode with scale=False: factor rounded to the dtype ----------------------------------

@pytest.mark.parametrize("dtype", ["float16", "float32"])
def test_eval_classic_factor_rounded_to_dtype(dtype):
    bits = np.arange(65536, dtype=np.uint32).astype(np.uint16)
    x = bits.view(np.float16) if dtype == "float16" else np.random.default_rng(0).standard_normal(65536).astype(dtype)
    x = x[np.isfinite(x)]
    yt = ct.dropout(torch.from_numpy(x), 0.3, training=False, scale=False)
    yn = cdropout.dropout(x, 0.3, training=False, scale=False)
    assert_same_bits(yt.numpy(), yn)


def test_eval_classic_factor_bfloat16():
    ml_dtypes = pytest.importorskip("ml_dtypes")
    bits = np.arange(65536, dtype=np.uint32).astype(np.uint16)
    t = torch.from_numpy(bits.astype(np.int16)).view(torch.bfloat16)
    yt = ct.dropout(t, 0.3, training=False, scale=False).view(torch.int16).numpy().view(np.uint16)
    factor = np.float32(ml_dtypes.bfloat16(0.7))  # 1 - 0.3 rounded to bfloat16
    wide = (bits.astype(np.uint32) << 16).view(np.float32)
    with np.errstate(all="ignore"):
        expected = (wide * factor).astype(ml_dtypes.bfloat16).view(np.uint16)
    with np.errstate(all="ignore"):
        finite = np.isfinite(wide * factor)
    np.testing.assert_array_equal(yt[finite], expected[finite])


# 5. bfloat16 ---------------------------------------------------------------------------------

def test_bfloat16_forward_backward():
    x = torch.randn(37, 11).to(torch.bfloat16).requires_grad_()
    y = ct.dropout(x, 0.25, seed=3)
    keep = torch.from_numpy(reference.keep_mask((37, 11), 0.25, 3).copy())
    s = torch.tensor(4 / 3, dtype=torch.bfloat16)
    assert torch.equal(y.detach(), torch.where(keep, x.detach() * s, torch.zeros((), dtype=torch.bfloat16)))
    y.backward(torch.ones_like(y))
    assert torch.equal(x.grad, torch.where(keep, s, torch.zeros((), dtype=torch.bfloat16)).expand(37, 11))


# 6. torch.manual_seed ------------------------------------------------------------------------

def test_manual_seed_makes_runs_reproducible():
    net = torch.nn.Sequential(torch.nn.Linear(8, 32), ct.Dropout(0.5), torch.nn.Linear(32, 1), ct.Dropout(0.2))
    x = torch.randn(16, 8)

    def run(seed):
        torch.manual_seed(seed)
        return [net(x) for _ in range(3)]

    a, b, c = run(0), run(0), run(1)
    assert all(torch.equal(u, v) for u, v in zip(a, b))
    assert not torch.equal(a[0], c[0])
    assert not torch.equal(a[0], a[1])  # each call draws a new key
    g = torch.Generator().manual_seed(3)
    state = torch.get_rng_state()
    y1 = ct.dropout(torch.ones(100), 0.5, generator=g)
    assert torch.equal(torch.get_rng_state(), state)  # an explicit generator leaves the default alone
    assert torch.equal(y1, ct.dropout(torch.ones(100), 0.5, generator=torch.Generator().manual_seed(3)))


def test_failed_call_draws_no_key():
    torch.manual_seed(0)
    state = torch.get_rng_state()
    with pytest.raises(TypeError):
        ct.dropout(torch.ones(3, dtype=torch.int64), 0.5)
    with pytest.raises(RuntimeError):
        ct.dropout(torch.ones(1, 3).expand(2, 3), 0.5, inplace=True)
    assert torch.equal(torch.get_rng_state(), state)


# 7. vmap and TorchScript ---------------------------------------------------------------------

def test_vmap_randomness_semantics():
    X = torch.randn(4, 50)
    f = lambda t: ct.dropout(t, 0.5, seed=3)  # noqa: E731
    same = torch.vmap(f)(X)
    for i in range(4):  # vmap(f)(X)[i] == f(X[i]): an explicit key is deterministic
        assert torch.equal(same[i], f(X[i]))
    assert torch.equal(torch.vmap(f, randomness="same")(X), same)
    diff = torch.vmap(f, randomness="different")(X)
    assert torch.equal(diff, ct.dropout(X, 0.5, seed=3))  # masks over the stacked batch
    torch.manual_seed(0)
    d = torch.vmap(lambda t: ct.dropout(t, 0.5), randomness="different")(torch.ones(3, 200))
    assert not torch.equal(d[0], d[1])
    s = torch.vmap(lambda t: ct.dropout(t, 0.5), randomness="same")(torch.ones(3, 200))
    assert torch.equal(s[0], s[1]) and torch.equal(s[1], s[2])
    with pytest.raises(RuntimeError, match="randomness"):
        torch.vmap(lambda t: ct.dropout(t, 0.5))(X)  # as F.dropout: random op in 'error' mode


def test_vmap_batched_keys_and_func_transforms():
    X = torch.randn(3, 20, dtype=torch.float64)
    keep = reference.keep_mask((20,), 0.5, 5)
    g = torch.func.vmap(torch.func.grad(lambda t: ct.dropout(t, 0.5, seed=5).sum()))(X)
    for i in range(3):
        np.testing.assert_array_equal(g[i].numpy(), np.where(keep, 2.0, 0.0))
    jac = torch.func.jacrev(lambda t: ct.dropout(t, 0.5, seed=5))(X[0])
    np.testing.assert_array_equal(jac.numpy(), np.diag(np.where(keep, 2.0, 0.0)))
    from cdropout.torch._ops import dropout_op, to_key

    keys = torch.stack([to_key(7, k, 0) for k in range(3)])
    out = torch.vmap(lambda t, k: dropout_op(t, k, 0.5, [], True))(X, keys)
    for k in range(3):
        np.testing.assert_array_equal(out[k].numpy(), reference.dropout(X[k].numpy(), 0.5, 7, k))


def test_torchscript_modules():
    for M, shape in ((ct.Dropout, (40,)), (ct.Dropout1d, (3, 4, 5)), (ct.Dropout2d, (2, 3, 4, 4)),
                     (ct.Dropout3d, (2, 3, 2, 2, 2))):
        sm = torch.jit.script(M(0.5))
        x = torch.ones(shape, requires_grad=True)
        torch.manual_seed(4)
        y = sm(x)
        torch.manual_seed(4)
        assert torch.equal(y, M(0.5)(torch.ones(shape)))  # same keys as eager mode
        y.sum().backward()
        assert torch.equal(x.grad, y.detach())
        assert sm.eval()(x) is x
    scripted_alpha = torch.jit.script(ct.AlphaDropout(0.5))
    with pytest.raises(Exception, match="cannot be scripted"):
        scripted_alpha(torch.ones(3))


# 8. strict state_dict loading ----------------------------------------------------------------

def test_nn_dropout_checkpoint_loads_strictly():
    def make(D):
        torch.manual_seed(0)
        return torch.nn.Sequential(torch.nn.Linear(4, 4), D(0.1), torch.nn.Linear(4, 2), D(0.3))

    buf = io.BytesIO()
    torch.save(make(torch.nn.Dropout).state_dict(), buf)
    buf.seek(0)
    ours = make(ct.Dropout)
    result = ours.load_state_dict(torch.load(buf), strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    back = make(torch.nn.Dropout)
    back.load_state_dict(ours.state_dict(), strict=True)
    assert list(ours.state_dict()) == list(back.state_dict())


# 9. forward + backward cost: the backward is one pass of the same op ------------------------

def test_backward_is_one_regeneration_pass(monkeypatch):
    from cdropout.torch import _ops

    calls = []
    real = _ops.apply_
    monkeypatch.setattr(_ops, "apply_", lambda *a: calls.append(a[0].shape) or real(*a))
    x = torch.randn(256, 64, requires_grad=True)
    y = ct.dropout(x, 0.5, seed=1)
    assert len(calls) == 1
    assert [t.numel() for t in y.grad_fn.saved_tensors] == [4]  # nothing saved but the key
    y.backward(torch.ones_like(y))
    assert len(calls) == 2  # one pass in the forward, one in the backward


# 10. the NumPy API points torch users to cdropout.torch ------------------------------------

def test_numpy_api_refuses_tensor_requiring_grad():
    t = torch.ones(4, requires_grad=True)
    with pytest.raises(TypeError, match="cdropout.torch"):
        cdropout.dropout(t, 0.5, seed=0)
    y = cdropout.dropout(t.detach(), 0.5, seed=0)  # a detached tensor is array_like
    assert_same_bits(y, reference.dropout(np.ones(4, np.float32), 0.5, 0))


# torch.library: compile, export --------------------------------------------------------------

def _model():
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), ct.Dropout2d(0.2), torch.nn.Flatten(),
                               torch.nn.Linear(4 * 6 * 6, 16), ct.Dropout(0.5), torch.nn.ReLU(),
                               torch.nn.Linear(16, 2), ct.AlphaDropout(0.1))


def test_compile_fullgraph_forward_backward():
    torch._dynamo.reset()
    net = _model()
    compiled = torch.compile(net, fullgraph=True)  # fullgraph: any graph break raises
    x = torch.randn(5, 3, 8, 8)
    out = compiled(x)
    out.sum().backward()
    assert all(p.grad is not None for p in net.parameters())
    f = torch.compile(lambda t: ct.dropout(t, 0.3, seed=9, stream=1) * 2, fullgraph=True)
    t = torch.randn(100, requires_grad=True)
    y = f(t)
    assert torch.equal(y, ct.dropout(t, 0.3, seed=9, stream=1) * 2)
    y.sum().backward()
    np.testing.assert_array_equal(t.grad.numpy(), np.where(reference.keep_mask((100,), 0.3, 9, 1), np.float32(2) * np.float32(1 / 0.7), np.float32(0)))


def test_compile_inplace_module():
    torch._dynamo.reset()
    net = torch.nn.Sequential(torch.nn.Linear(8, 16), ct.Dropout(0.5, inplace=True), torch.nn.Linear(16, 1))
    torch.compile(net, fullgraph=True)(torch.randn(4, 8)).sum().backward()
    assert net[0].weight.grad is not None and bool(net[0].weight.grad.ne(0).any())


def test_compile_explain_has_no_graph_break():
    torch._dynamo.reset()
    explanation = torch._dynamo.explain(_model())(torch.randn(2, 3, 8, 8))
    assert explanation.graph_break_count == 0
    assert explanation.graph_count == 1


def test_export():
    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(8, 8)
            self.drop = ct.Dropout(0.5)

        def forward(self, x):
            return ct.dropout(self.lin(x), 0.25, seed=3) + self.drop(x)

    net = Net()
    x = torch.randn(4, 8)
    ep = torch.export.export(net, (x,))
    assert "cdropout.dropout" in str(ep.graph)
    torch.manual_seed(1)
    a = ep.module()(x)
    torch.manual_seed(1)
    b = net(x)
    assert torch.equal(a, b)


def test_fake_tensor_propagation():
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode():
        x = torch.empty(2, 3, 4, 5).to(memory_format=torch.channels_last)
        y = ct.dropout(x, 0.5, seed=1)
        assert y.shape == x.shape and y.stride() == x.stride()
    torch.library.opcheck(torch.ops.cdropout.dropout.default,
                          (torch.randn(3, 4), torch.tensor([1, 2, 0]), 0.5, [], True))
    torch.library.opcheck(torch.ops.cdropout.dropout.default,
                          (torch.randn(3, 4), torch.tensor([1, 2, 0]), 0.5, [3, 1], True))


def test_operator_checks_its_arguments():
    op, x, key = torch.ops.cdropout.dropout, torch.randn(5, 4), torch.tensor([1, 2, 0])
    for args, match in (((x, key.float(), 0.5, [], True), "key"), ((x, key[:2], 0.5, [], True), "key"),
                        ((x, key, 1.5, [], True), "p must be"), ((x, key, 0.5, [2, 1], True), "broadcast"),
                        ((x, key, 0.5, [5], True), "broadcast"), ((x.int(), key, 0.5, [], True), "float16")):
        with pytest.raises(RuntimeError, match=match):
            op(*args)


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_alpha_dropout_equals_numpy_path(dtype):
    x = np.random.default_rng(3).standard_normal((6, 5, 7)).astype(dtype)
    t = torch.from_numpy(x.copy())
    assert_same_bits(ct.alpha_dropout(t, 0.2, True, seed=1, stream=4).numpy(),
                     cdropout.alpha_dropout(x, 0.2, seed=1, stream=4))
    assert_same_bits(ct.feature_alpha_dropout(t, 0.3, True, seed=2).numpy(),
                     cdropout.feature_alpha_dropout(x, 0.3, seed=2))
    tg = t.clone().requires_grad_()
    ct.alpha_dropout(tg, 0.2, True, seed=1, stream=4).backward(torch.ones_like(tg))
    _, key = cdropout.alpha_dropout(x, 0.2, seed=1, stream=4, return_mask="key")
    assert_same_bits(tg.grad.numpy(), cdropout.alpha_dropout_backward(np.ones_like(x), key))
