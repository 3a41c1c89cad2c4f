"""Invariances of the mask stream: chunking via offset, shape, dtype."""
import numpy as np
import pytest

import cdropout as cd
import reference
from helpers import FLOAT_DTYPES, assert_same_bits, assert_same_mask, random_data

N = 10_007
SPLITS = [1, 3, 7, 8, 9, 15, 16, 17, 127, 128, 129, 1000, 4096, 5003, N - 1, N]


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("a", SPLITS)
def test_suffix_with_offset_equals_suffix_of_whole(a, dtype):
    x = random_data((N,), dtype, 1)
    whole = cd.dropout(x, 0.4, seed=42, stream=3)
    part = cd.dropout(x[a:], 0.4, seed=42, stream=3, offset=a)
    assert_same_bits(part, whole[a:])


@pytest.mark.parametrize("a", SPLITS)
def test_suffix_with_base_offset(a):
    base = 2**32 - 4001  # the pieces straddle element 2^32
    x = random_data((N,), np.float32, 2)
    whole, wmask = cd.dropout(x, 0.6, seed=7, offset=base, return_mask="bool")
    part, pmask = cd.dropout(x[a:], 0.6, seed=7, offset=base + a, return_mask="bool")
    assert_same_bits(part, whole[a:])
    assert_same_mask(pmask, wmask[a:])


@pytest.mark.parametrize("a,b", [(0, 5), (3, 11), (8, 16), (7, 4001), (129, 130), (N - 3, N)])
def test_any_window(a, b):
    x = random_data((N,), np.float64, 3)
    whole = cd.dropout(x, 0.5, seed=9, stream=2**33)
    part = cd.dropout(x[a:b], 0.5, seed=9, stream=2**33, offset=a)
    assert_same_bits(part, whole[a:b])


@pytest.mark.parametrize("form", [None, "bool", "bits"])
def test_pieces_equal_one_call(form):
    n = 2**18 + 13
    p, seed, stream, offset0 = 1.0 / 3.0, 1234, 5, 99
    x = random_data((n,), np.float32, 4)
    rng = np.random.default_rng(0)
    cuts = np.sort(rng.choice(np.arange(1, n), 40, replace=False))
    cuts = [0] + [int(c) for c in cuts] + [8 * 1000, n]
    cuts = sorted(set(cuts))
    ys, masks = [], []
    for lo, hi in zip(cuts[:-1], cuts[1:]):
        r = cd.dropout(x[lo:hi], p, seed=seed, stream=stream, offset=offset0 + lo,
                       return_mask=form)
        if form is None:
            ys.append(r)
        else:
            ys.append(r[0])
            masks.append(r[1] if form == "bool" else r[1].to_bool())
    whole = cd.dropout(x, p, seed=seed, stream=stream, offset=offset0)
    assert_same_bits(np.concatenate(ys), whole)
    assert_same_bits(whole, reference.dropout(x, p, seed, stream, offset0))
    if masks:
        assert_same_mask(np.concatenate(masks), reference.keep_flat(n, p, seed, stream, offset0))


def test_pieces_in_place_equal_one_call():
    """Processing a big array in place, piece by piece with offsets, equals one call."""
    n = 2**18 + 1
    x = random_data((n,), np.float16, 5)
    expected = cd.dropout(x, 0.25, seed=77)
    y = x.copy()
    step = 12_345
    for lo in range(0, n, step):
        piece = y[lo:lo + step]
        cd.dropout(piece, 0.25, seed=77, offset=lo, out=piece)
    assert_same_bits(y, expected)


def test_backward_pieces_from_key_equal_whole():
    n = 50_001
    g = random_data((n,), np.float32, 6)
    _, key = cd.dropout(g, 0.3, seed=5, stream=1, return_mask="key")
    whole = cd.dropout_backward(g, key)
    parts = []
    for lo in range(0, n, 7001):
        hi = min(n, lo + 7001)
        _, k = cd.dropout(g[lo:hi], 0.3, seed=5, stream=1, offset=lo, return_mask="key")
        parts.append(cd.dropout_backward(g[lo:hi], k))
    assert_same_bits(np.concatenate(parts), whole)


@pytest.mark.parametrize("shape", [(10_007,), (1, 10_007), (73, 137), (137, 73), (7, 11, 13, 10),
                                   (10_007, 1)], ids=str)
def test_shape_does_not_matter_only_c_order(shape):
    """The mask of an N-d array is the mask of its C-order ravel."""
    n = int(np.prod(shape))
    x = random_data((n,), np.float32, 7)
    flat = cd.dropout(x, 0.5, seed=3, offset=17)
    nd = cd.dropout(x.reshape(shape), 0.5, seed=3, offset=17)
    assert nd.shape == shape
    assert_same_bits(nd.reshape(-1), flat)
    # and a Fortran-ordered copy of the same logical array gives the same logical result
    nf = cd.dropout(np.asfortranarray(x.reshape(shape)), 0.5, seed=3, offset=17)
    assert_same_bits(np.ascontiguousarray(nf).reshape(-1), flat)


def test_same_mask_for_every_dtype():
    x = random_data((4099,), np.float64, 8)
    masks = []
    for dtype in FLOAT_DTYPES:
        _, m = cd.dropout(x.astype(dtype), 0.3, seed=1, stream=2, offset=3, return_mask="bool")
        masks.append(m)
    assert_same_mask(masks[1], masks[0])
    assert_same_mask(masks[2], masks[0])


def test_streams_and_seeds_give_different_masks():
    x = np.ones(4096, np.float32)
    base = cd.dropout(x, 0.5, seed=1, stream=0)
    for kw in [dict(seed=1, stream=1), dict(seed=2, stream=0), dict(seed=1 + 2**32, stream=0),
               dict(seed=1, stream=2**32), dict(seed=1, stream=0, offset=8)]:
        other = cd.dropout(x, 0.5, **kw)
        # independent masks: about half the elements differ
        assert 0.4 < np.mean(other != base) < 0.6, kw
