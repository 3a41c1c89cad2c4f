"""Block addressing: ``dropout(block, ..., index=(global_shape, block_origin))``.

Every element of a block gets the mask of its C-order index in the whole array, so any tiling
reassembles bitwise into the whole-array result. Expected values come from tests/reference.py
(a NumPy implementation of the format) on the whole array, sliced.
"""
import itertools

import numpy as np
import pytest

import cdropout
import reference
from helpers import assert_same_bits, random_data

G = (5, 6, 7)


def _tilings(shape):
    """Splits of every axis at a few points: tiles as (origin, block shape) pairs."""
    cuts = [sorted({0, 1, d // 2, d - 1, d}) for d in shape]
    for combo in itertools.product(*[list(zip(c[:-1], c[1:])) for c in cuts]):
        origin = tuple(a for a, _ in combo)
        bshape = tuple(b - a for a, b in combo)
        yield origin, bshape


def _block(origin, bshape):
    return tuple(slice(o, o + b) for o, b in zip(origin, bshape))


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("noise_shape", [None, (5, 1, 7), (1, 6, 1), (1, 1, 1)])
def test_every_tiling_reassembles_bitwise(dtype, noise_shape):
    x = random_data(G, dtype, seed=1)
    whole = reference.dropout(x, 0.4, 9, 2, 3, noise_shape=noise_shape)
    assert_same_bits(cdropout.dropout(x, 0.4, seed=9, stream=2, offset=3, noise_shape=noise_shape), whole)
    got = np.full_like(x, np.nan)
    for origin, bshape in _tilings(G):
        sl = _block(origin, bshape)
        got[sl] = cdropout.dropout(x[sl], 0.4, seed=9, stream=2, offset=3, noise_shape=noise_shape,
                                   index=(G, origin))
    assert_same_bits(got, whole)


def test_block_in_place_and_transposed_views():
    x = random_data(G, np.float32, seed=2)
    whole = reference.dropout(x, 0.5, 4)
    sl = _block((1, 2, 3), (3, 3, 4))
    blk = x[sl].copy()
    y = cdropout.dropout(blk, 0.5, seed=4, index=(G, (1, 2, 3)), out=blk)
    assert y is blk
    assert_same_bits(blk, whole[sl])
    # a block given as a non-contiguous view keeps its global addressing
    assert_same_bits(cdropout.dropout(x[sl], 0.5, seed=4, index=(G, (1, 2, 3))), whole[sl])


@pytest.mark.parametrize("form", ["key", "bits", "bool"])
def test_block_masks_and_backward(form):
    x = random_data(G, np.float64, seed=3)
    origin, bshape = (2, 0, 1), (2, 6, 5)
    sl = _block(origin, bshape)
    keep_whole = reference.keep_mask(G, 0.3, 11, 1, 0)
    y, mask = cdropout.dropout(x[sl], 0.3, seed=11, stream=1, return_mask=form, index=(G, origin))
    g = random_data(bshape, np.float64, seed=4)
    expected = reference.apply_mask(g, keep_whole[sl], 0.3)
    if form == "key":
        assert mask.index == (G, origin) and mask.shape == G
        assert_same_bits(cdropout.dropout_backward(g, mask), expected)
        # the whole-array key (as a Dask graph keeps it) applied to the block with index=
        whole_key = cdropout.MaskKey(11, 1, 0, 0.3, G)
        assert_same_bits(cdropout.dropout_backward(g, whole_key, index=(G, origin)), expected)
        with pytest.raises(ValueError, match="index"):
            cdropout.dropout_backward(g, mask, index=(G, (0, 0, 0)))
    else:
        keep = mask.to_bool() if form == "bits" else mask
        assert keep.shape == bshape
        assert np.array_equal(keep, keep_whole[sl])
        kw = {"p": 0.3} if form == "bool" else {}
        assert_same_bits(cdropout.dropout_backward(g, mask, **kw), expected)


def test_block_with_noise_shape_mask_is_the_blocks_part():
    x = np.ones(G, np.float32)
    ns = (5, 1, 7)
    origin, bshape = (1, 2, 3), (3, 4, 4)
    sl = _block(origin, bshape)
    keep_whole = reference.keep_mask(ns, 0.5, 6)
    y, keep = cdropout.dropout(x[sl], 0.5, seed=6, noise_shape=ns, index=(G, origin), return_mask="bool")
    assert keep.shape == (3, 1, 4)
    assert np.array_equal(keep, keep_whole[1:4, :, 3:7])
    _, key = cdropout.dropout(x[sl], 0.5, seed=6, noise_shape=ns, index=(G, origin), return_mask="key")
    assert_same_bits(cdropout.dropout_backward(np.ones(bshape, np.float32), key), y)


@pytest.mark.parametrize("index,exc", [
    (((5, 6, 7), (3, 0, 0)), ValueError),          # origin + block past the global shape
    (((5, 6), (0, 0)), ValueError),                # wrong number of dimensions
    (((5, 6, 7), (0, 0, -1)), ValueError),         # negative origin
    (((5, 6, 7.0), (0, 0, 0)), TypeError),         # not ints
    ((5, 6, 7), TypeError),                        # not a pair
    ("ab", TypeError),
])
def test_bad_index_is_rejected_before_writing(index, exc):
    x = np.ones((3, 6, 7), np.float32)
    before = x.copy()
    with pytest.raises(exc):
        cdropout.dropout(x, 0.5, seed=1, index=index, out=x)
    with pytest.raises(exc):
        cdropout.dropout_backward(x, cdropout.MaskKey(1, 0, 0, 0.5, (5, 6, 7)), index=index, out=x)
    assert np.array_equal(x, before)


def test_index_offset_span_counts_the_whole_array():
    x = np.ones((2, 2), np.float32)
    with pytest.raises(ValueError, match="offset"):  # the global mask has 100 elements
        cdropout.dropout(x, 0.5, seed=1, offset=2 ** 64 - 50, index=((10, 10), (0, 0)))
    cdropout.dropout(x, 0.5, seed=1, offset=2 ** 64 - 100, index=((10, 10), (8, 8)))
