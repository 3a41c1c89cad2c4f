"""Structured masks (channels, time steps, samples) against the NumPy reference of format v1.

Every structured form is format v1's mask drawn over a noise shape and broadcast; the expected
values come from tests/reference.py (pure NumPy Philox), not from cdropout.
"""
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import cdropout
import reference
from helpers import FLOAT_DTYPES, assert_same_bits, assert_same_mask, random_data

P_VALUES = (0.0, 0.1, 0.3, 0.5, 0.9, 1.0)

# (function, input shape, expected noise shape)
CHANNEL_CASES = [
    (cdropout.dropout1d, (3, 5, 7), (3, 5, 1)),
    (cdropout.dropout1d, (5, 7), (5, 1)),
    (cdropout.dropout2d, (2, 6, 4, 3), (2, 6, 1, 1)),
    (cdropout.dropout2d, (6, 4, 3), (6, 1, 1)),
    (cdropout.dropout3d, (2, 3, 2, 4, 3), (2, 3, 1, 1, 1)),
    (cdropout.dropout3d, (3, 2, 4, 3), (3, 1, 1, 1)),
    (cdropout.dropout2d, (0, 4, 2, 2), (0, 4, 1, 1)),
]


def _id(case):
    f, shape, _ = case
    return f"{f.__name__}-{'x'.join(map(str, shape))}"


@pytest.mark.parametrize("case", CHANNEL_CASES, ids=_id)
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_channel_dropout_matches_reference(case, dtype):
    f, shape, ns = case
    x = random_data(shape, dtype, seed=1)
    for i, p in enumerate(P_VALUES):
        seed, stream, offset = 1000 + i, 3 * i, 5 * i
        y, keep = f(x, p, seed=seed, stream=stream, offset=offset, return_mask="bool")
        expected_keep = reference.keep_mask(ns, p, seed, stream, offset)
        assert_same_mask(keep, expected_keep, f"{f.__name__} mask p={p}")
        assert_same_bits(y, reference.apply_mask(x, expected_keep, p), f"{f.__name__} p={p}")
        # the same thing as the core's noise_shape path
        assert_same_bits(y, cdropout.dropout(x, p, seed=seed, stream=stream, offset=offset, noise_shape=ns))


@pytest.mark.parametrize("case", CHANNEL_CASES[:6], ids=_id)
def test_channel_dropout_zeroes_whole_channels(case):
    f, shape, ns = case
    y = f(np.ones(shape), 0.5, seed=7)
    chans = y.reshape(math.prod(s for s, n in zip(shape, ns) if n != 1), -1)
    assert np.all(chans == chans[:, :1]), "every channel must be all kept or all dropped"
    assert set(np.unique(chans)) <= {0.0, 2.0}


@pytest.mark.parametrize("form", ["bool", "bits", "key"])
def test_channel_masks_all_forms_and_backward(form):
    x = random_data((4, 8, 5, 5), np.float32, seed=2)
    g = random_data(x.shape, np.float32, seed=3)
    p, seed, stream = 0.3, 11, 2
    y, mask = cdropout.dropout2d(x, p, seed=seed, stream=stream, return_mask=form)
    keep = reference.keep_mask((4, 8, 1, 1), p, seed, stream)
    as_bool = mask if form == "bool" else mask.to_bool()
    assert_same_mask(as_bool, keep)
    if form == "key":
        assert (mask.seed, mask.stream, mask.offset, mask.p, mask.shape) == (seed, stream, 0, p, (4, 8, 1, 1))
    grad_in = cdropout.dropout_backward(g, mask, p=p if form == "bool" else None)
    assert_same_bits(grad_in, reference.apply_mask(g, keep, p), "backward")


def test_channel_dropout_generator_streams_and_in_place():
    x = random_data((2, 3, 4, 4), np.float64, seed=4)
    gen = cdropout.Generator(99)
    a = cdropout.dropout2d(x, 0.5, seed=gen)
    b = cdropout.dropout2d(x, 0.5, seed=gen)
    assert_same_bits(a, reference.dropout(x, 0.5, 99, 0, noise_shape=(2, 3, 1, 1)))
    assert_same_bits(b, reference.dropout(x, 0.5, 99, 1, noise_shape=(2, 3, 1, 1)))
    z = x.copy()
    r = cdropout.dropout2d(z, 0.5, seed=99, stream=1, out=z)
    assert r is z
    assert_same_bits(z, b)


def test_channel_dropout_eval_and_nan_in_dropped_channel():
    x = random_data((2, 5, 3), np.float32, seed=5)
    y = cdropout.dropout1d(x, 0.5, training=False)
    assert_same_bits(y, x)
    assert y is x  # eval returns the input itself, as PyTorch does
    x[:, :, 1] = np.nan
    y, keep = cdropout.dropout1d(x, 0.5, seed=8, return_mask="bool")
    assert not keep.all() and keep.any()
    dropped = np.broadcast_to(~keep, x.shape)
    assert np.all(reference.bits_of(y)[dropped] == 0), "dropped channels must be +0.0"


@pytest.mark.parametrize("f, bad_ndims", [
    (cdropout.dropout1d, (0, 1, 4)),
    (cdropout.dropout2d, (1, 2, 5)),
    (cdropout.dropout3d, (2, 3, 6)),
])
def test_channel_dropout_wrong_ndim(f, bad_ndims):
    for nd in bad_ndims:
        with pytest.raises(ValueError, match="expects"):
            f(np.ones((2,) * nd), 0.5, seed=0)


@pytest.mark.parametrize("f", [cdropout.dropout1d, cdropout.dropout2d, cdropout.dropout3d,
                               cdropout.variational_dropout])
def test_structured_bad_p_and_dtype(f):
    x = np.ones((2, 3, 2, 2, 2)[: {"dropout1d": 3, "dropout2d": 4}.get(f.__name__, 5)])
    for p in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="p must be in"):
            f(x, p, seed=0)
    with pytest.raises(TypeError):
        f(x.astype(np.int32), 0.5, seed=0)


# --- variational (recurrent) dropout ---------------------------------------------------------

@pytest.mark.parametrize("shape, time_axis, ns", [
    ((4, 6, 5), 1, (4, 1, 5)),
    ((6, 4, 5), 0, (1, 4, 5)),
    ((4, 6, 5), -2, (4, 1, 5)),
    ((3, 6, 5, 2), (1, 3), (3, 1, 5, 1)),
    ((7, 3), 0, (1, 3)),
])
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_variational_matches_reference(shape, time_axis, ns, dtype):
    x = random_data(shape, dtype, seed=6)
    for p in (0.2, 0.5, 0.75):
        y, keep = cdropout.variational_dropout(x, p, time_axis=time_axis, seed=21, stream=4, offset=9,
                                               return_mask="bool")
        expected = reference.keep_mask(ns, p, 21, 4, 9)
        assert_same_mask(keep, expected)
        assert_same_bits(y, reference.apply_mask(x, expected, p))


def test_variational_shares_the_mask_over_time():
    y = cdropout.variational_dropout(np.ones((3, 10, 8), np.float32), 0.5, seed=1)
    assert np.all(y == y[:, :1, :])
    assert 0 < np.count_nonzero(y[:, 0, :]) < 24


def test_variational_bad_time_axis():
    x = np.ones((2, 3, 4))
    for axis in (3, -4):
        with pytest.raises(ValueError, match="out of range"):
            cdropout.variational_dropout(x, 0.5, time_axis=axis, seed=0)
    with pytest.raises(ValueError, match="repeated"):
        cdropout.variational_dropout(x, 0.5, time_axis=(1, -2), seed=0)
    with pytest.raises(TypeError):
        cdropout.variational_dropout(x, 0.5, time_axis=1.0, seed=0)


def test_large_noise_shape_with_ties_is_thread_count_invariant():
    """2**18 mask elements at p=0.3 (Tlo != 0: ties are decided by the secondary draw)."""
    p, seed, stream, offset = 0.3, 5, 0, 0
    ns = (2, 1, 1 << 17)
    ties, _ = reference.tie_stats(math.prod(ns), p, seed, stream, offset)
    assert ties > 0, "the sample must contain ties for this test to mean something"
    x = random_data((2, 3, 1 << 17), np.float32, seed=7)
    expected_keep = reference.keep_mask(ns, p, seed, stream, offset)
    expected = reference.apply_mask(x, expected_keep, p)
    for nt in (1, 2, 3):
        y, bits = cdropout.variational_dropout(x, p, seed=seed, stream=stream, offset=offset,
                                               num_threads=nt, return_mask="bits")
        assert_same_bits(y, expected, f"{nt} threads")
        assert_same_mask(bits.to_bool(), expected_keep, f"bits, {nt} threads")


# --- drop_path (stochastic depth) ------------------------------------------------------------

@pytest.mark.parametrize("shape", [(8,), (8, 3), (6, 4, 5), (5, 2, 3, 3)])
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_drop_path_matches_reference(shape, dtype):
    x = random_data(shape, dtype, seed=8)
    ns = (shape[0],) + (1,) * (len(shape) - 1)
    for p in P_VALUES:
        y, keep = cdropout.drop_path(x, p, seed=31, stream=2, offset=3, return_mask="bool")
        expected = reference.keep_mask(ns, p, 31, 2, 3)
        assert_same_mask(keep, expected)
        assert_same_bits(y, reference.apply_mask(x, expected, p), f"drop_path p={p}")
        y2 = cdropout.drop_path(x, p, seed=31, stream=2, offset=3, scale_by_keep=False)
        assert_same_bits(y2, reference.apply_mask(x, expected, p, scale=False), "scale_by_keep=False")


def test_drop_path_is_per_sample_and_identity_in_eval():
    x = random_data((16, 4, 4), np.float32, seed=9)
    y = cdropout.drop_path(x, 0.5, seed=3)
    per_sample = [(np.all(y[i] == 0), np.array_equal(y[i], x[i] * np.float32(2))) for i in range(16)]
    assert all(dropped != kept for dropped, kept in per_sample)
    assert any(d for d, _ in per_sample) and any(k for _, k in per_sample)
    for sbk in (True, False):  # timm: the identity at inference whatever scale_by_keep
        e = cdropout.drop_path(x, 0.5, training=False, scale_by_keep=sbk)
        assert_same_bits(e, x)
        assert e is x  # the input itself, as timm and PyTorch return it
    assert not np.any(cdropout.drop_path(x, 1.0, seed=0))


def test_drop_path_keys_regenerate_for_backward():
    x = random_data((10, 3), np.float64, seed=10)
    y, key = cdropout.drop_path(x, 0.4, seed=12, return_mask="key")
    assert key.shape == (10, 1)
    g = cdropout.dropout_backward(np.ones_like(x), key)
    assert_same_bits(g, reference.apply_mask(np.ones_like(x), reference.keep_mask((10, 1), 0.4, 12), 0.4))


def test_drop_path_bad_arguments():
    with pytest.raises(ValueError, match="0-d"):
        cdropout.drop_path(np.float64(1.0), 0.5, seed=0)
    with pytest.raises(ValueError, match="0-d"):
        cdropout.drop_path(np.array(1.0), 0.5, training=False)
    with pytest.raises(ValueError, match="p must be in"):
        cdropout.drop_path(np.ones((2, 2)), -0.5, seed=0)


def test_noise_shape_not_broadcastable_is_rejected():
    x = np.ones((4, 3))
    for ns in [(4, 2), (3, 3), (4,), (4, 3, 1)]:
        with pytest.raises(ValueError, match="does not broadcast"):
            cdropout.dropout(x, 0.5, seed=0, noise_shape=ns)
    _, key = cdropout.dropout(x, 0.5, seed=0, noise_shape=(4, 1), return_mask="key")
    with pytest.raises(ValueError, match="does not broadcast"):
        cdropout.dropout_backward(np.ones((5, 3)), key)


# --- property test: any shape, axis, p, seed, stream, offset ----------------------------------


@settings(max_examples=40, deadline=None)
@given(
    shape=st.lists(st.integers(0, 5), min_size=1, max_size=4).map(tuple),
    data=st.data(),
    p=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**64 - 1),
    stream=st.integers(0, 2**64 - 1),
    offset=st.integers(0, 2**64 - 1000),
)
def test_variational_and_drop_path_property(shape, data, p, seed, stream, offset):
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    x = random_data(shape, np.float32, seed=0)
    ns = tuple(1 if d == axis % len(shape) else s for d, s in enumerate(shape))
    y = cdropout.variational_dropout(x, p, time_axis=axis, seed=seed, stream=stream, offset=offset)
    assert_same_bits(y, reference.dropout(x, p, seed, stream, offset, noise_shape=ns))
    ns = (shape[0],) + (1,) * (len(shape) - 1)
    y = cdropout.drop_path(x, p, seed=seed, stream=stream, offset=offset)
    assert_same_bits(y, reference.dropout(x, p, seed, stream, offset, noise_shape=ns))
