"""Block addressing in the NumPy API: ``dropout(block, ..., index=(global_shape, block_origin))``.

Every block of a tiling, processed on its own with its place in the whole array, must reassemble
bit for bit into the whole-array result (and the reference of the format). This is what
cdropout.dask builds on; it needs no dask.
"""
import itertools

import numpy as np
import pytest

import cdropout
import reference
from helpers import assert_same_bits, random_data


def _cuts(n, sizes):
    """Chunk sizes covering n: `sizes` repeated (the last chunk shorter)."""
    out, at, i = [], 0, 0
    while at < n:
        c = min(sizes[i % len(sizes)], n - at)
        out.append(c)
        at += c
        i += 1
    return tuple(out) or (0,)


def _blocks(chunks):
    """(origin, slices) of every block of a chunk grid, in C order of the grid."""
    starts = [np.cumsum((0,) + c[:-1]) for c in chunks]
    for loc in itertools.product(*(range(len(c)) for c in chunks)):
        origin = tuple(int(starts[k][i]) for k, i in enumerate(loc))
        yield origin, tuple(slice(o, o + chunks[k][i]) for k, (o, i) in enumerate(zip(origin, loc)))


def _tiled(x, chunks, **kwargs):
    """dropout of every block with index=, written into one array."""
    y = np.full(x.shape, np.nan, x.dtype)
    for origin, sl in _blocks(chunks):
        block = x[sl]
        y[sl] = cdropout.dropout(block, index=(x.shape, origin), **kwargs)
    return y


SHAPE = (4, 3, 5)


def test_every_regular_tiling_of_a_3d_array_reassembles():
    x = random_data(SHAPE, np.float32, seed=1)
    whole = cdropout.dropout(x, 0.4, seed=9, stream=2, offset=5)
    assert_same_bits(whole, reference.dropout(x, 0.4, 9, 2, 5))
    for sizes in itertools.product(*(range(1, n + 1) for n in SHAPE)):
        chunks = tuple(_cuts(n, (s,)) for n, s in zip(SHAPE, sizes))
        assert_same_bits(_tiled(x, chunks, p=0.4, seed=9, stream=2, offset=5), whole, f"tiling {chunks}")


@pytest.mark.parametrize("dtype", [np.float16, np.float64])
def test_irregular_tilings_reassemble(dtype):
    shape = (7, 9, 11)
    x = random_data(shape, dtype, seed=2)
    whole = reference.dropout(x, 0.3, 123, 0, 0)
    rng = np.random.default_rng(0)
    for _ in range(20):
        chunks = tuple(_cuts(n, tuple(rng.integers(1, n + 1, 4))) for n in shape)
        assert_same_bits(_tiled(x, chunks, p=0.3, seed=123), whole, f"tiling {chunks}")


def test_blocks_of_a_noise_shaped_mask():
    x = random_data((3, 4, 5, 6), np.float32, seed=3)
    ns = (3, 4, 1, 1)
    whole = cdropout.dropout(x, 0.5, seed=4, noise_shape=ns)
    assert_same_bits(whole, reference.dropout(x, 0.5, 4, noise_shape=ns))
    for chunks in [((1, 2), (3, 1), (2, 3), (6,)), ((3,), (1, 1, 1, 1), (5,), (1, 5))]:
        assert_same_bits(_tiled(x, chunks, p=0.5, seed=4, noise_shape=ns), whole, f"tiling {chunks}")


def test_block_backward_from_the_whole_key():
    x = random_data((6, 5, 4), np.float64, seed=5)
    g = random_data((6, 5, 4), np.float64, seed=6)
    _, key = cdropout.dropout(x, 0.25, seed=10, return_mask="key")
    whole = cdropout.dropout_backward(g, key)
    got = np.full(g.shape, np.nan)
    for origin, sl in _blocks(((2, 4), (1, 3, 1), (4,))):
        got[sl] = cdropout.dropout_backward(g[sl], key, index=(g.shape, origin))
    assert_same_bits(got, whole)


def test_block_masks_are_the_blocks_of_the_whole_mask():
    x = random_data((5, 7, 3), np.float32, seed=7)
    _, keep = cdropout.dropout(x, 0.5, seed=1, return_mask="bool")
    for origin, sl in _blocks(((2, 3), (4, 3), (1, 2))):
        yb, kb = cdropout.dropout(x[sl], 0.5, seed=1, index=(x.shape, origin), return_mask="bool")
        np.testing.assert_array_equal(kb, keep[sl])
        _, bits = cdropout.dropout(x[sl], 0.5, seed=1, index=(x.shape, origin), return_mask="bits")
        np.testing.assert_array_equal(bits.to_bool(), keep[sl])
        assert_same_bits(yb, reference.apply_mask(x[sl], keep[sl], 0.5))


def test_index_that_does_not_fit_is_rejected_before_writing():
    x = np.ones((3, 4), np.float32)
    before = x.copy()
    with pytest.raises(ValueError):
        cdropout.dropout(x, 0.5, seed=0, index=((3, 4), (1, 0)), out=x)  # runs past the end
    with pytest.raises(ValueError):
        cdropout.dropout(x, 0.5, seed=0, index=((3, 4, 1), (0, 0, 0)), out=x)  # wrong ndim
    with pytest.raises(TypeError):
        cdropout.dropout(x, 0.5, seed=0, index=((3, 4),), out=x)  # not a (shape, origin) pair
    assert_same_bits(x, before)
