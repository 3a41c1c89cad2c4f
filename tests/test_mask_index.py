"""The C entries apply_key / apply_bits / gen_bits against the NumPy reference, in both stream formats
(fmt=1: Philox4x32-10, fmt=2: ARS-7, always given explicitly).

Element idx of x has mask index m = mbase + sum(idx[k] * mstrides[k]) (mstrides None = C order):
zero strides broadcast a mask, a larger array's strides plus the block origin's index address a
block of it, and the result never depends on the memory layout of x or y, the kernel path or the
thread count.
"""
import itertools

import numpy as np
import pytest

import cdropout as cd
from cdropout import _config, _core
import reference
from helpers import FLOAT_DTYPES, THREAD_COUNTS, assert_same_bits, random_data

AVAILABLE = list(cd.simd_info()["available"])
TWO32 = 1 << 32


@pytest.fixture(params=AVAILABLE)
def isa(request, small_chunks):
    with _config.forced_isa(request.param):
        yield request.param


@pytest.fixture(params=[1, 2], ids=["v1", "v2"])
def fmt(request):
    return request.param


def c_strides(shape):
    """C-order element strides of shape."""
    out, s = [], 1
    for d in reversed(shape):
        out.append(s)
        s *= d
    return tuple(reversed(out))


def mask_indices(shape, mbase, mstrides):
    """(lo, rel): the smallest mask index lo and every element's m - lo as int64 (the span of
    the tests' indices is far below 2**62)."""
    mstrides = c_strides(shape) if mstrides is None else mstrides
    lo = int(mbase) + sum((n - 1) * int(s) for n, s in zip(shape, mstrides) if s < 0)
    rel = np.full(shape, int(mbase) - lo, dtype=np.int64)
    for k, n in enumerate(shape):
        rel += (np.arange(n, dtype=np.int64) * int(mstrides[k])).reshape((n,) + (1,) * (len(shape) - k - 1))
    return lo, rel


def keep_at(lo, rel, p, seed, stream, fmt):
    """keep(lo + rel) of every entry of rel, from the reference of format fmt."""
    if rel.size == 0:
        return np.zeros(rel.shape, bool)
    keep = reference.keep_flat(int(rel.max()) + 1, float(p), int(seed), int(stream), lo, fmt)
    return keep[rel]


def scale_of(dtype, p):
    return float(reference.scale_factor(dtype, p))


def call_key(x, y, p, seed, stream, mbase=0, mstrides=None, bits_out=None, threads=0, *, fmt):
    T = reference.threshold(p)
    _core.apply_key(x, y, scale_of(x.dtype, p), seed, stream, T, mbase, mstrides, bits_out, threads,
                    _config.min_per_thread, _config.isa, fmt=fmt)


def call_bits(x, y, p, bits, mbase=0, mstrides=None, threads=0):
    _core.apply_bits(x, y, scale_of(x.dtype, p), bits, mbase, mstrides, threads,
                     _config.min_per_thread, _config.isa)


def expected(x, p, seed, stream, mbase=0, mstrides=None, *, fmt):
    keep = keep_at(*mask_indices(x.shape, mbase, mstrides), p, seed, stream, fmt)
    return reference.apply_mask(x, keep, p)


# ------------------------------------------------------------------ gen_bits


@pytest.mark.parametrize("threads", THREAD_COUNTS)
def test_gen_bits_matches_reference(isa, threads, fmt):
    seed, stream = 0xDEADBEEF12345, 3
    for n, offset, p in [(0, 0, 0.5), (1, 7, 0.5), (13, 3, 0.3), (4099, 2**32 - 5, 1 / 3),
                         (70001, 123, 0.9), (9000, 2**64 - 9000, 0.25)]:
        bits = np.full((n + 7) // 8 + 2, 0xA5, np.uint8)
        _core.gen_bits(seed, stream, reference.threshold(p), offset, bits, n, threads,
                       _config.min_per_thread, _config.isa, fmt)
        want = reference.packbits(reference.keep_flat(n, p, seed, stream, offset, fmt))
        np.testing.assert_array_equal(bits[:len(want)], want, f"n={n} offset={offset}")
        assert (bits[len(want):] == 0xA5).all(), "wrote past (n + 7) // 8 bytes"


@pytest.mark.parametrize("T", [0, TWO32, TWO32 + 5])
def test_gen_bits_keep_all_drop_all(isa, T, fmt):
    for n in (0, 1, 9, 1025):
        bits = np.full((n + 7) // 8, 0x5A, np.uint8)
        _core.gen_bits(1, 2, T, 3, bits, n, 2, _config.min_per_thread, _config.isa, fmt)
        keep = np.full(n, T != 0)
        np.testing.assert_array_equal(bits, reference.packbits(keep))


# ------------------------------------------------------------------ broadcast strides


BROADCASTS = [  # (x shape, mask shape): the mask's C strides with zeros on broadcast axes
    ((4, 5, 6), (4, 1, 6)),
    ((4, 5, 6), (1, 5, 1)),
    ((4, 5, 6), (1, 1, 1)),
    ((3, 700), (3, 1)),
    ((3, 700), (1, 700)),
    ((2, 3, 1030), (2, 3, 1)),
    ((17, 2, 3, 41), (17, 1, 3, 1)),
]


def broadcast_strides(xshape, mshape):
    cs = c_strides(mshape)
    return tuple(0 if m == 1 and n != 1 else s for n, m, s in zip(xshape, mshape, cs))


@pytest.mark.parametrize("threads", THREAD_COUNTS)
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_broadcast_strides(isa, threads, dtype, fmt):
    p, seed, stream, offset = 0.4, 11, 5, 2**33 + 3
    for xshape, mshape in BROADCASTS:
        x = random_data(xshape, dtype, 1)
        ms = broadcast_strides(xshape, mshape)
        keep = np.broadcast_to(reference.keep_mask(mshape, p, seed, stream, offset, fmt), xshape)
        want = reference.apply_mask(x, keep, p)
        y = np.full(xshape, 7.0, dtype)
        call_key(x, y, p, seed, stream, offset, ms, threads=threads, fmt=fmt)
        assert_same_bits(y, want, f"key {xshape} <- {mshape}")
        # the same from packed bits of the noise-shaped mask
        bits = reference.packbits(reference.keep_mask(mshape, p, seed, stream, offset, fmt))
        y2 = x.copy()
        call_bits(y2, y2, p, bits, 0, ms, threads=threads)
        assert_same_bits(y2, want, f"bits {xshape} <- {mshape}")


# ------------------------------------------------------------------ block addressing


def blocks_of(shape, edges):
    """All blocks of a grid with the given block edge lengths per axis: tuples of slices."""
    axes = [[slice(a, min(a + e, n)) for a in range(0, n, e)] for n, e in zip(shape, edges)]
    return list(itertools.product(*axes))


@pytest.mark.parametrize("threads", [1, 3])
@pytest.mark.parametrize("shape,edges", [
    ((1000,), (333,)),
    ((37, 29), (10, 8)),
    ((37, 29), (37, 3)),
    ((5, 13, 11), (2, 5, 4)),
    ((3, 40, 1100), (2, 17, 513)),
])
def test_blocks_reassemble_the_whole(isa, threads, shape, edges, fmt):
    p, seed, stream, offset = 0.5, 2**63 + 1, 9, 77
    x = random_data(shape, np.float32, 2)
    whole = np.empty_like(x)
    bits_whole = np.zeros((x.size + 7) // 8, np.uint8)
    call_key(x, whole, p, seed, stream, offset, None, bits_whole, threads=threads, fmt=fmt)
    assert_same_bits(whole, reference.dropout(x, p, seed, stream, offset, fmt=fmt))
    gs = c_strides(shape)
    from_key = np.full_like(x, np.nan)
    from_bits = np.full_like(x, np.nan)
    for sl in blocks_of(shape, edges):
        origin = sum(s.start * g for s, g in zip(sl, gs))
        xb = np.ascontiguousarray(x[sl])
        yb = np.empty_like(xb)
        call_key(xb, yb, p, seed, stream, offset + origin, gs, threads=threads, fmt=fmt)
        from_key[sl] = yb
        # bits of the whole array, addressed from the block
        zb = xb.copy()
        call_bits(zb, zb, p, bits_whole, origin, gs, threads=threads)
        from_bits[sl] = zb
    assert_same_bits(from_key, whole, "blocks from the key")
    assert_same_bits(from_bits, whole, "blocks from the bits")


# ------------------------------------------------------------------ any memory layout


def layouts(dtype, seed):
    a = random_data((67, 1031), dtype, seed)
    b = random_data((6, 35, 41), dtype, seed + 1)
    c = random_data((37, 2100), dtype, seed + 2)  # transposed: several tiles along both axes
    d = random_data((5, 7, 9, 130), dtype, seed + 3)
    return [
        d.transpose(3, 2, 0, 1), d.transpose(3, 1, 0, 2)[:, ::-1], d.transpose(2, 3, 1, 0)[::-1, :, ::2],
        c.T, c[:, 3:2090].T[::-1], c[::-1, ::2].T,
        a, a.T, a[::-1], a[:, ::-1], a[::-1, ::-1], a[::2, ::3], a[:, ::2].T, a[5:60, 3:1000].T,
        np.asfortranarray(a), a.reshape(-1)[::-2],
        b.transpose(2, 0, 1), b.transpose(1, 2, 0)[::-1], np.asfortranarray(b), b[:, ::-1, ::2],
        b.transpose(2, 1, 0)[:, ::-3],
    ]


def out_like(v, kind, dtype):
    if kind == "same":
        return v  # in place
    if kind == "c":
        return np.full(v.shape, 3.0, dtype)
    if kind == "f":
        return np.asfortranarray(np.full(v.shape, 3.0, dtype))
    # reversed, strided storage
    big = np.full(tuple(2 * n for n in v.shape), 3.0, dtype)
    return big[tuple(slice(None, None, -2) for _ in v.shape)]


@pytest.mark.parametrize("threads", THREAD_COUNTS)
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_layouts_key(isa, threads, dtype, fmt):
    p, seed, stream, offset = 0.3, 123456789, 2**40, 2**32 - 100
    for i, v in enumerate(layouts(dtype, 3)):
        x0 = v.copy()
        want = expected(x0, p, seed, stream, offset, fmt=fmt)
        for kind in ("c", "f", "rev", "same"):  # "same" (in place) last: it changes v
            y = out_like(v, kind, dtype)
            call_key(v, y, p, seed, stream, offset, threads=threads, fmt=fmt)
            assert_same_bits(y, want, f"layout {i} out {kind}")
            if kind != "same":
                assert_same_bits(v, x0, "input untouched")


@pytest.mark.parametrize("threads", THREAD_COUNTS)
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_layouts_bits_and_bits_out(isa, threads, dtype, fmt):
    p, seed, stream = 0.6, 5, 6
    for i, v in enumerate(layouts(dtype, 7)):
        for mbase in (0, 3):
            keep = reference.keep_mask(v.shape, p, seed, stream, mbase, fmt)
            want = reference.apply_mask(v, keep, p)
            bits = np.zeros((v.size + 7) // 8, np.uint8)
            y = np.full(v.shape, 1.0, dtype)[..., ::-1] if v.ndim else np.empty_like(v)
            call_key(v, y, p, seed, stream, mbase, None, bits, threads=threads, fmt=fmt)
            assert_same_bits(y, want, f"layout {i}, mbase {mbase}, with bits_out")
            np.testing.assert_array_equal(bits, reference.packbits(keep), f"bits_out of layout {i}")
            z = np.full(v.shape, 2.0, dtype, order="F")
            call_bits(v, z, p, bits, 0, None, threads=threads)
            assert_same_bits(z, want, f"layout {i} from bits")


@pytest.mark.parametrize("threads", [1, 2])
def test_negative_and_odd_mask_strides(isa, threads, fmt):
    """Mask strides of any sign and size (the mask walks down, skips, or repeats)."""
    p, seed, stream = 0.45, 99, 1
    x = random_data((40, 300), np.float64, 8)
    cases = [
        (40 * 300 - 1, (-300, -1)),   # the mask reversed
        (299, (300, -1)),             # each row's mask reversed
        (10, (1, 40)),                # the mask in Fortran order
        (5, (3, 7)),                  # overlapping, repeating indices
        (2**40, (-2, 5)),
        (1000, (0, -3)),
    ]
    for mbase, ms in cases:
        y = np.empty_like(x)
        call_key(x, y, p, seed, stream, mbase, ms, threads=threads, fmt=fmt)
        assert_same_bits(y, expected(x, p, seed, stream, mbase, ms, fmt=fmt), f"mstrides {ms}")
        lo, rel = mask_indices(x.shape, mbase, ms)
        if rel.max() < 2**22:
            keep = reference.keep_flat(int(rel.max()) + 1, p, seed, stream, lo, fmt)
            pad = lo % 8
            bits = reference.packbits(np.concatenate([np.zeros(pad, bool), keep]))
            z = x.T.copy().T  # Fortran layout
            call_bits(x, z, p, bits, mbase - lo + pad, ms, threads=threads)
            assert_same_bits(z, expected(x, p, seed, stream, mbase, ms, fmt=fmt), f"bits, mstrides {ms}")


@pytest.mark.parametrize("T", [0, TWO32])
def test_keep_all_drop_all_any_layout(isa, T, fmt):
    x = random_data((50, 70), np.float32, 9)
    for v in (x, x.T, x[::-1, ::3]):
        for ms in (None, (0, 1), (0, 0)):
            y = np.full(v.shape, np.nan, np.float32)
            _core.apply_key(v, y, 1.0, 3, 4, T, 5, ms, None, 2, _config.min_per_thread, _config.isa, fmt=fmt)
            want = v.copy() if T else np.zeros(v.shape, np.float32)
            assert_same_bits(y, want, f"T={T}")
            if ms is None:
                bits = np.full((v.size + 7) // 8, 0x33, np.uint8)
                _core.apply_key(v, y, 1.0, 3, 4, T, 5, None, bits, 2, _config.min_per_thread,
                                _config.isa, fmt=fmt)
                np.testing.assert_array_equal(bits, reference.packbits(np.full(v.size, T != 0)))


# ------------------------------------------------------------------ argument checks


def test_entry_checks_leave_arrays_untouched():
    x = np.ones((4, 5), np.float32)
    y = np.full((4, 5), 9.0, np.float32)
    bits = np.zeros(3, np.uint8)  # 24 bits for 20 elements
    args = (1, _config.min_per_thread, _config.isa)
    with pytest.raises(ValueError, match="outside bits"):
        _core.apply_bits(x, y, 2.0, bits, 5, None, *args)       # m up to 24
    with pytest.raises(ValueError, match="outside bits"):
        _core.apply_bits(x, y, 2.0, bits, 0, (-1, 1), *args)    # m below 0
    with pytest.raises(ValueError, match="outside bits"):
        _core.apply_bits(x, y, 2.0, bits, 0, (7, 1), *args)     # m up to 21 + 4
    _core.apply_bits(x, y, 2.0, bits, 0, (6, 1), *args)         # m up to 22: fits
    assert (y == 0.0).all()
    y[...] = 9.0
    assert (y == 9.0).all()


def test_entry_checks_messages():
    x = np.ones((4, 5), np.float32)
    y = np.full((4, 5), 9.0, np.float32)
    args = (1, _config.min_per_thread, _config.isa)
    with pytest.raises(ValueError, match="bits_out needs mstrides=None"):
        _core.apply_key(x, y, 2.0, 1, 2, 2**31, 0, (5, 1), np.zeros(3, np.uint8), *args)
    with pytest.raises(ValueError, match="at least 3 bytes"):
        _core.apply_key(x, y, 2.0, 1, 2, 2**31, 0, None, np.zeros(2, np.uint8), *args)
    with pytest.raises(ValueError, match="mstrides must have 2"):
        _core.apply_key(x, y, 2.0, 1, 2, 2**31, 0, (1,), None, *args)
    with pytest.raises(ValueError, match="one shape"):
        _core.apply_key(x, y[:3], 2.0, 1, 2, 2**31, 0, None, None, *args)
    with pytest.raises(TypeError, match="one dtype"):
        _core.apply_key(x, y.astype(np.float64), 2.0, 1, 2, 2**31, 0, None, None, *args)
    with pytest.raises(TypeError, match="C-contiguous uint8"):
        _core.apply_bits(x, y, 2.0, np.zeros(6, np.uint8)[::2], 0, None, *args)
    unaligned = np.zeros(4 * 20 + 1, np.uint8)[1:].view(np.float32).reshape(4, 5)
    with pytest.raises(ValueError, match="aligned"):
        _core.apply_key(unaligned, y, 2.0, 1, 2, 2**31, 0, None, None, *args)
    with pytest.raises(ValueError, match="read-only"):
        ro = y.copy()
        ro.flags.writeable = False
        _core.apply_key(x, ro, 2.0, 1, 2, 2**31, 0, None, None, *args)
    assert (y == 9.0).all()


def test_bench_scale_is_private():
    assert not hasattr(cd, "scale_inplace") and "scale_inplace" not in dir(cd)
    y = np.arange(10, dtype=np.float32)
    _core.bench_scale(y, 2.0, 1, _config.min_per_thread, _config.isa)
    np.testing.assert_array_equal(y, 2 * np.arange(10, dtype=np.float32))
