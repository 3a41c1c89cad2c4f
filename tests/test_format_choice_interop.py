"""format= in cdropout.torch (functional forms, modules, the torch.library op and its key) and in
cdropout.dask: the same masks as the NumPy API and the reference of the format named."""
import pickle

import numpy as np
import pytest

import cdropout
import reference
from helpers import assert_same_bits, random_data

BAD_FORMATS = [(2.0, TypeError), ("2", TypeError), (True, TypeError), (0, ValueError), (3, ValueError)]


@pytest.fixture(params=[1, 2], ids=["v1", "v2"])
def fmt(request):
    return request.param


# -- torch ----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch")


@pytest.fixture(scope="module")
def ct(torch):
    import cdropout.torch as ct

    return ct


def test_torch_functional_follows_the_format(torch, ct, fmt):
    x_np = random_data((6, 5, 7), np.float32, 1)
    x = torch.from_numpy(x_np.copy()).requires_grad_()
    y = ct.dropout(x, 0.3, seed=5, stream=2, offset=4, format=fmt)
    keep = reference.keep_mask(x_np.shape, 0.3, 5, 2, 4, fmt)
    assert_same_bits(y.detach().numpy(), reference.apply_mask(x_np, keep, 0.3))
    assert y.grad_fn.saved_tensors[0].tolist() == [5, 2, 4, fmt]
    g = random_data(x_np.shape, np.float32, 2)
    y.backward(torch.from_numpy(g))
    assert_same_bits(x.grad.numpy(), reference.apply_mask(g, keep, 0.3))  # backward: the key's format
    ns = ct.dropout(torch.from_numpy(x_np), 0.3, seed=5, noise_shape=(6, 1, 7), format=fmt)
    assert_same_bits(ns.numpy(), cdropout.dropout(x_np, 0.3, seed=5, noise_shape=(6, 1, 7), format=fmt))
    for f_ct, f_np in ((ct.dropout1d, cdropout.dropout1d), (ct.dropout2d, cdropout.dropout2d),
                       (ct.dropout3d, cdropout.dropout3d)):
        x4 = x_np.reshape(2, 3, 5, 7) if f_ct is ct.dropout2d else x_np
        if f_ct is ct.dropout3d:
            x4 = x_np.reshape(2, 3, 5, 7, 1)
        got = f_ct(torch.from_numpy(x4), 0.5, seed=3, format=fmt).numpy()
        assert_same_bits(got, f_np(x4, 0.5, seed=3, format=fmt))
    for f_ct, f_np in ((ct.alpha_dropout, cdropout.alpha_dropout), (ct.feature_alpha_dropout,
                                                                    cdropout.feature_alpha_dropout)):
        got = f_ct(torch.from_numpy(x_np), 0.2, True, seed=1, stream=4, format=fmt).numpy()
        assert_same_bits(got, f_np(x_np, 0.2, seed=1, stream=4, format=fmt))


def test_torch_generators_and_formats(torch, ct, fmt):
    x = torch.ones(500, dtype=torch.float64)
    g = cdropout.Generator(9, format=fmt)
    y = ct.dropout(x, 0.5, generator=g)  # the cdropout Generator's format and next stream
    assert_same_bits(y.numpy(), reference.dropout(np.ones(500), 0.5, 9, 0, fmt=fmt))
    y = ct.dropout(x, 0.5, generator=g, format=3 - fmt)  # the call's format wins
    assert_same_bits(y.numpy(), reference.dropout(np.ones(500), 0.5, 9, 1, fmt=3 - fmt))
    tg = torch.Generator().manual_seed(0)
    y = ct.dropout(x.clone().requires_grad_(), 0.5, generator=tg, format=fmt)
    key = y.grad_fn.saved_tensors[0].tolist()
    assert key[3] == fmt
    seed, stream = (v % 2**64 for v in key[:2])
    assert_same_bits(y.detach().numpy(), reference.dropout(np.ones(500), 0.5, seed, stream, fmt=fmt))


@pytest.mark.parametrize("name", ["Dropout", "Dropout1d", "Dropout2d", "Dropout3d", "AlphaDropout",
                                  "FeatureAlphaDropout"])
def test_torch_modules_take_a_format(torch, ct, fmt, name):
    shape = {"Dropout": (40,), "Dropout1d": (2, 3, 5), "Dropout2d": (2, 3, 4, 4),
             "Dropout3d": (2, 3, 2, 2, 2), "AlphaDropout": (40,), "FeatureAlphaDropout": (2, 3, 5)}[name]
    m = getattr(ct, name)(0.5, format=fmt)
    assert m.format == fmt
    assert not m.state_dict()  # no extra state: torch.nn checkpoints still load strictly
    x = torch.ones(shape)
    torch.manual_seed(4)
    y = m(x)
    torch.manual_seed(4)
    fn = {"Dropout": ct.dropout, "Dropout1d": ct.dropout1d, "Dropout2d": ct.dropout2d, "Dropout3d": ct.dropout3d,
          "AlphaDropout": ct.alpha_dropout, "FeatureAlphaDropout": ct.feature_alpha_dropout}[name]
    assert torch.equal(y, fn(x, 0.5, True, format=fmt))
    torch.manual_seed(4)
    assert not torch.equal(y, fn(x, 0.5, True, format=3 - fmt))
    if name in ("Dropout", "Dropout1d", "Dropout2d", "Dropout3d"):
        sm = torch.jit.script(m)
        torch.manual_seed(4)
        assert torch.equal(sm(x), y)  # the scripted forward draws the same key, with the format
    m2 = pickle.loads(pickle.dumps(m))
    assert m2.format == fmt


@pytest.mark.parametrize("name", ["Dropout", "Dropout1d", "Dropout2d", "Dropout3d", "AlphaDropout",
                                  "FeatureAlphaDropout"])
def test_torch_modules_pickled_by_the_previous_release(torch, ct, name):
    """A whole model saved by the release before format v2 (torch.save / pickle) holds modules
    without 'format': they load drawing format 1's masks, as they did, eager and scripted (they
    used to fail with AttributeError, and torch.jit.script with "no attribute '_script_format'")."""
    import io

    shape = {"Dropout": (40,), "Dropout1d": (2, 3, 5), "Dropout2d": (2, 3, 4, 4),
             "Dropout3d": (2, 3, 2, 2, 2), "AlphaDropout": (40,), "FeatureAlphaDropout": (2, 3, 5)}[name]
    m = getattr(ct, name)(0.5)
    del m.__dict__["format"], m.__dict__["_script_format"]  # the attributes of the previous release
    buf = io.BytesIO()
    torch.save(m, buf)
    buf.seek(0)
    old = torch.load(buf, weights_only=False)
    assert old.format == 1
    x = torch.ones(shape)
    torch.manual_seed(4)
    want = getattr(ct, name)(0.5, format=1)(x)
    torch.manual_seed(4)
    assert torch.equal(old(x), want)
    if "Alpha" not in name:
        torch.manual_seed(4)
        assert torch.equal(torch.jit.script(old)(x), want)
    for fmt in (None, 2):  # this release's modules keep their own format through pickling
        twin = pickle.loads(pickle.dumps(getattr(ct, name)(0.5, format=fmt)))
        assert twin.format == fmt and twin._script_format == (fmt or cdropout.FORMAT_VERSION)


def test_torch_op_keys(torch, ct):
    """The op's key is [seed, stream, offset, format]; three elements mean format 1."""
    from cdropout.torch._ops import dropout_op, to_key

    x = torch.from_numpy(random_data((33,), np.float64, 3))
    x_np = x.numpy()
    assert torch.equal(dropout_op(x, torch.tensor([7, 1, 2]), 0.5, [], True), dropout_op(x, to_key(7, 1, 2, 1), 0.5, [],
                                                                                        True))
    for fmt in (1, 2):
        assert to_key(7, 1, 2, fmt).tolist() == [7, 1, 2, fmt]
        y = dropout_op(x, torch.tensor([7, 1, 2, fmt]), 0.5, [], True)
        assert_same_bits(y.numpy(), reference.dropout(x_np, 0.5, 7, 1, 2, fmt=fmt))
    for bad, exc in ((3, ValueError), (0, ValueError)):
        with pytest.raises(exc, match="format"):
            dropout_op(x, torch.tensor([7, 1, 2, bad]), 0.5, [], True)
    with pytest.raises(RuntimeError, match="key"):
        dropout_op(x, torch.tensor([7, 1, 2, 2, 0]), 0.5, [], True)
    keys = torch.stack([to_key(7, 0, 0, 1), to_key(7, 0, 0, 2)])  # vmap over keys of both formats
    out = torch.vmap(lambda t, k: dropout_op(t, k, 0.5, [], True))(torch.stack([x, x]), keys)
    for i, fmt in enumerate((1, 2)):
        assert_same_bits(out[i].numpy(), reference.dropout(x_np, 0.5, 7, fmt=fmt))


@pytest.mark.parametrize("value,exc", BAD_FORMATS, ids=repr)
def test_torch_bad_formats(torch, ct, value, exc):
    x = torch.ones(8)
    before = torch.get_rng_state()
    for call in (lambda: ct.dropout(x, 0.5, inplace=True, format=value),
                 lambda: ct.dropout1d(torch.ones(2, 4), 0.5, format=value),
                 lambda: ct.alpha_dropout(x, 0.5, True, format=value),
                 lambda: ct.Dropout(0.5, format=value)):
        with pytest.raises(exc, match="format"):
            call()
    assert torch.equal(x, torch.ones(8)) and torch.equal(torch.get_rng_state(), before)
    g = cdropout.Generator(3)  # a cdropout Generator's stream is not taken either
    for call in (lambda: ct.dropout(x, 0.5, generator=g, format=value),
                 lambda: ct.dropout2d(torch.ones(2, 3, 4, 4), 0.5, generator=g, format=value),
                 lambda: ct.feature_alpha_dropout(torch.ones(2, 3, 4), 0.5, True, generator=g, format=value),
                 lambda: ct.Dropout(0.5, generator=g, format=value)):
        with pytest.raises(exc, match="format"):
            call()
    assert g.next_stream == 0


def test_torch_compile_with_format_2(torch, ct):
    torch._dynamo.reset()
    f = torch.compile(lambda t: ct.dropout(t, 0.3, seed=9, stream=1, format=2) * 2, fullgraph=True)
    t = torch.randn(100, dtype=torch.float64)
    assert_same_bits(f(t).numpy(), reference.dropout(t.numpy(), 0.3, 9, 1, fmt=2) * 2)


# -- dask -----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def cdd():
    pytest.importorskip("dask.array")
    pytest.importorskip("distributed")
    import cdropout.dask as cdd

    return cdd


@pytest.mark.parametrize("form", ["key", "bits", "bool"])
def test_dask_follows_the_format(cdd, fmt, form):
    import dask.array as da

    x = random_data((12, 10), np.float32, 4)
    g = random_data((12, 10), np.float32, 5)
    a = da.from_array(x, chunks=((5, 7), (4, 6)))
    y, mask = cdd.dropout(a, 0.45, seed=3, stream=2, return_mask=form, format=fmt)
    keep = reference.keep_mask(x.shape, 0.45, 3, 2, fmt=fmt)
    assert_same_bits(y.compute(scheduler="threads"), reference.apply_mask(x, keep, 0.45))
    if form == "key":
        assert mask.version == fmt
    elif form == "bits":
        assert mask.version == fmt
        np.testing.assert_array_equal(mask.to_bool().compute(scheduler="threads"), keep)
    back = cdd.dropout_backward(da.from_array(g, chunks=a.chunks), mask, p=0.45 if form == "bool" else None)
    assert_same_bits(back.compute(scheduler="threads"), reference.apply_mask(g, keep, 0.45))
    ns = cdd.variational_dropout(a, 0.45, seed=3, format=fmt).compute(scheduler="threads")
    assert_same_bits(ns, cdropout.variational_dropout(x, 0.45, seed=3, format=fmt))


def test_dask_bit_masks_pickled_by_the_previous_release_are_version_1(cdd):
    """A BlockBits of the release before format v2 has no 'version' field: it loads as version 1
    (its bits were format 1's), not as the class default, cdropout.FORMAT_VERSION."""
    import dask.array as da

    x = random_data((8, 12), np.float64, 6)
    y, bits = cdd.dropout(da.from_array(x, chunks=(4, 5)), 0.5, seed=2, return_mask="bits", format=1)
    del bits.__dict__["version"]  # the fields of the previous release
    old = pickle.loads(pickle.dumps(bits))
    assert old.version == 1
    keep = reference.keep_mask(x.shape, 0.5, 2, fmt=1)
    assert_same_bits(cdd.dropout_backward(da.from_array(x, chunks=(4, 5)), old).compute(scheduler="sync"),
                     reference.apply_mask(x, keep, 0.5))
    for fmt in (1, 2):  # this release's masks keep their version through pickling
        _, b = cdd.dropout(da.from_array(x, chunks=4), 0.5, seed=2, return_mask="bits", format=fmt)
        assert pickle.loads(pickle.dumps(b)).version == fmt


def test_dask_task_names_differ_by_format(cdd):
    import dask.array as da

    a = da.ones((8, 8), chunks=4)
    assert cdd.dropout(a, 0.5, seed=1, format=1).name != cdd.dropout(a, 0.5, seed=1, format=2).name
    assert cdd.dropout(a, 0.5, seed=1, format=2).name == cdd.dropout(a, 0.5, seed=1, format=2).name
    with pytest.raises(ValueError, match="format"):
        cdd.dropout(a, 0.5, seed=1, format=5)
    g = cdropout.Generator(1)
    for value, exc in BAD_FORMATS:  # nothing built, no stream taken
        for call in (lambda: cdd.dropout(a, 0.5, seed=g, return_mask="bits", format=value),
                     lambda: cdd.variational_dropout(a, 0.5, seed=g, format=value)):
            with pytest.raises(exc, match="format"):
                call()
    assert g.next_stream == 0
    with pytest.raises(ValueError, match="version"):
        cdd.BlockBits(da.zeros((8, 1), dtype=np.uint8, chunks=(4, 1)), (8, 8), ((4, 4), (8,)), 0.5, version=4)
