"""cdropout.dropout is bitwise equal to the NumPy reference of each stream format (v1: Philox4x32-10,
v2: ARS-7), the format always given explicitly (format=1 or format=2).

Over many p (including p whose threshold has a non-zero low half, so that ties u == Thi occur
and are decided by the secondary draw), seeds, streams, offsets, shapes, strides, dtypes and out=.
"""
import functools

import numpy as np
import pytest

import cdropout as cd
import reference
from helpers import (FLOAT_DTYPES, ODD_SIZES, assert_same_bits, check_dropout, random_data,
                     scalar_keep, tie_probes)

BIG = 2**20  # elements in the tie-checking samples (about 16 ties expected per sample)

# p values and what their threshold T = floor((1-p) 2^32 + 0.5) exercises
P_VALUES = [
    0.0,                 # T = 2^32: keep all
    2.0**-33,            # (1-p) 2^32 + 0.5 == 2^32 exactly: keep all (rounding boundary)
    1.5 * 2.0**-32,      # T = 2^32 - 1: Thi = Tlo = 0xffff
    1e-6,
    0.01,
    0.1,
    0.2,
    0.25,                # Tlo == 0
    0.3,
    1.0 / 3.0,
    0.5,                 # Tlo == 0
    0.7,
    0.9,
    0.99,
    1.0 - 3 * 2.0**-17,  # T = 3 * 2^15: Thi = 1, Tlo = 0x8000
    1.0 - 2.0**-33,      # T = 1: keep only when u == 0 and v == 0
    1.0 - 2.0**-34,      # T = 0: drop all
    1.0,
]
TIE_P = [p for p in P_VALUES if 0 < reference.threshold(p) < 2**32
         and reference.threshold(p) & 0xFFFF]

SEEDS = [0, 1, 2**32 - 1, 2**32, 2**64 - 1, 0x243F6A8885A308D3]
FORMATS = [1, 2]


@pytest.fixture(params=FORMATS, ids=["v1", "v2"])
def fmt(request):
    """The stream format of a test: every call and every reference value names it."""
    return request.param
STREAMS = [0, 1, 2**32 - 1, 2**32, 2**64 - 1]


@functools.lru_cache(maxsize=8)
def _data(n, dtype, seed=0):
    x = random_data((n,), dtype, seed)
    x.flags.writeable = False
    return x


def _fresh(n, dtype, seed=0):
    return _data(n, dtype, seed).copy()


# ------------------------------------------------------------------ the reference itself


def test_threshold_examples():
    assert reference.threshold(0.0) == 2**32
    assert reference.threshold(2.0**-33) == 2**32
    assert reference.threshold(1.5 * 2.0**-32) == 2**32 - 1
    assert reference.threshold(0.5) == 2**31
    assert reference.threshold(1.0 - 3 * 2.0**-17) == 3 * 2**15
    assert reference.threshold(1.0 - 2.0**-33) == 1
    assert reference.threshold(1.0 - 2.0**-34) == 0
    assert reference.threshold(1.0) == 0
    assert len(TIE_P) >= 8


@pytest.mark.parametrize("seed,stream,offset,p", [
    (0, 0, 0, 0.3),
    (2**64 - 1, 2**64 - 1, 2**64 - 4096, 0.1),
    (0x243F6A8885A308D3, 2**32, 8 * 2**32 - 2048, 1.0 - 3 * 2.0**-17),
    (1, 7, 13, 1.5 * 2.0**-32),
])
def test_reference_keep_matches_scalar_definition(seed, stream, offset, p, fmt):
    """The vectorised reference agrees with a scalar transcription of the spec, ties included."""
    n = 4096
    keep = reference.keep_flat(n, p, seed, stream, offset, fmt)
    u, _ = reference.draws(n, seed, stream, offset, fmt)
    thi = reference.threshold(p) >> 16
    idx = sorted(set(range(40)) | set(range(n - 40, n)) | set(np.flatnonzero(u == thi)[:20]))
    for i in idx:
        assert bool(keep[i]) == scalar_keep(offset + int(i), p, seed, stream, fmt), i


def test_reference_offset_shifts_the_stream(fmt):
    keep = reference.keep_flat(64, 0.5, 3, 0, 0, fmt)
    # one block decides eight consecutive elements: shifting by 8 elements = one block later
    np.testing.assert_array_equal(reference.keep_flat(56, 0.5, 3, 0, 8, fmt), keep[8:])
    np.testing.assert_array_equal(reference.keep_flat(61, 0.5, 3, 0, 3, fmt), keep[3:])


def test_reference_formats_differ():
    """v1 and v2 are different streams of the same seed (agreeing on about half the flags)."""
    a = reference.keep_flat(4096, 0.5, 3, 0, 0, 1)
    b = reference.keep_flat(4096, 0.5, 3, 0, 0, 2)
    assert 0.45 < np.mean(a == b) < 0.55


# ------------------------------------------------------------------ many p, ties


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("p", P_VALUES)
def test_many_p_bitwise(p, dtype, fmt):
    seed, stream, offset = 0x5EED, 3, 0
    x = _fresh(BIG, dtype)
    if p in TIE_P:
        ties, kept = reference.tie_stats(BIG, p, seed, stream, offset, fmt)
        assert ties > 0, "the sample must contain ties u == Thi"
    check_dropout(cd, x, p, seed, stream, offset, fmt)


def test_ties_are_decided_both_ways_in_the_samples(fmt):
    """Across the tie samples above, ties are both kept and dropped (v < Tlo and v >= Tlo)."""
    total = kept = 0
    for p in TIE_P:
        t, k = reference.tie_stats(BIG, p, 0x5EED, 3, 0, fmt)
        total += t
        kept += k
    assert 0 < kept < total


@pytest.mark.parametrize("p", TIE_P)
def test_ties_bitwise_mask_odd_offset(p, fmt):
    """Tie sample at an odd offset and a large stream, checked through the bool mask."""
    seed, stream, offset = 2**64 - 1, 2**63 + 5, 8 * 2**32 - 3
    ties, _ = reference.tie_stats(BIG, p, seed, stream, offset, fmt)
    assert ties > 0
    x = _fresh(BIG, np.float32, 1)
    y, mask = cd.dropout(x, p, seed=seed, stream=stream, offset=offset, return_mask="bool", format=fmt)
    expected = reference.keep_flat(BIG, p, seed, stream, offset, fmt)
    np.testing.assert_array_equal(mask, expected)
    assert_same_bits(y, reference.apply_mask(x, expected, p))


TIE_PROBE_N = 4099
TIE_PROBE_INDICES = [0, 1, 2, 3, 4, 5, 6, 7, 8, 63, 64, 127, 128, 129, 1000, 2047, 4096, 4098]


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_targeted_ties(dtype, fmt):
    """Elements put exactly on a tie (u == Thi) with v == Tlo, v == Tlo - 1, and T from
    (1-p) 2^32 = T +- 0.5: pins down the comparison v < Tlo and the rounding of T."""
    seed, stream, offset = 2**63 + 1, 77, 3
    x = random_data((TIE_PROBE_N,), dtype, 16)
    probes = tie_probes(TIE_PROBE_N, seed, stream, offset, TIE_PROBE_INDICES, fmt)
    assert len(probes) >= 4 * (len(TIE_PROBE_INDICES) - 1)
    for i, p, keep_i in probes:
        keep = reference.keep_flat(TIE_PROBE_N, p, seed, stream, offset, fmt)
        assert bool(keep[i]) == keep_i  # the reference agrees with the construction
        assert bool(keep[i]) == scalar_keep(offset + i, p, seed, stream, fmt)
        y, mask = cd.dropout(x, p, seed=seed, stream=stream, offset=offset, return_mask="bool", format=fmt)
        assert bool(mask[i]) == keep_i, (i, p, keep_i)
        assert_same_bits(y, reference.apply_mask(x, keep, p), f"element {i} on a tie, p={p!r}")


# ------------------------------------------------------------------ seeds, streams


@pytest.mark.parametrize("stream", STREAMS)
@pytest.mark.parametrize("seed", SEEDS)
def test_seeds_and_streams_bitwise(seed, stream, fmt):
    x = _fresh(2**16 + 3, np.float32, 2)
    check_dropout(cd, x, 0.3, seed, stream, 0, fmt)


def test_random_seeds_streams_offsets_bitwise(fmt):
    rng = np.random.default_rng(2024 + fmt)
    for _ in range(10):
        seed = int(rng.integers(0, 2**64, dtype=np.uint64))
        stream = int(rng.integers(0, 2**64, dtype=np.uint64))
        offset = int(rng.integers(0, 2**62, dtype=np.uint64))
        p = float(rng.uniform())
        dtype = FLOAT_DTYPES[int(rng.integers(0, 3))]
        check_dropout(cd, _fresh(1001, dtype, 3), p, seed, stream, offset, fmt)


# ------------------------------------------------------------------ offsets

OFFSET_CASES = [
    (0, 4097), (1, 4097), (7, 4097), (8, 4097), (13, 4097), (2**31 + 3, 4097),
    (2**32 - 5, 4097),            # crosses element 2^32
    (8 * 2**32 - 13, 4097),       # crosses block 2^32 (counter word 1 becomes 1)
    (2**63 - 3, 4097),
    (2**64 - 8 * 40 - 5 - 4097, 4097),  # near block 2^61
    (2**64 - 4097, 4097),         # ends exactly at 2^64
    (2**64 - 1, 1),               # the very last element
    (2**64 - 1, 0),               # empty at the end
    (2**64 - 2**18 - 3, 2**18),
    (2**64 - 2**18, 2**18),
    (2**32 - 2**17 + 1, 2**18),
]


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("offset,n", OFFSET_CASES)
def test_offsets_bitwise(offset, n, dtype, fmt):
    assert offset + n <= 2**64
    check_dropout(cd, _fresh(n, dtype, 4), 0.4, 77, 2**32 + 1, offset, fmt)


# ------------------------------------------------------------------ shapes

SHAPES = [(), (0,), (0, 5), (5, 0), (3, 0, 2)] + [(n,) for n in ODD_SIZES] + [
    (33, 65), (2, 64), (5, 7, 9), (2, 3, 4, 5), (1, 1, 1), (1, 4097)]


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_shapes_bitwise(shape, dtype, fmt):
    x = random_data(shape, dtype, 5)
    y = check_dropout(cd, x, 0.35, 11, 2, 9, fmt)
    assert np.shape(y) == shape
    assert np.asarray(y).dtype == dtype
    if shape != ():
        assert isinstance(y, np.ndarray)


def test_zero_d_input_both_outcomes(fmt):
    """A 0-d array is one element, index offset; check a kept and a dropped one."""
    outcomes = set()
    for offset in range(16):
        x = np.array(1.5, np.float32)
        y = check_dropout(cd, x, 0.5, 1, 0, offset, fmt)
        outcomes.add(float(y))
    assert outcomes == {0.0, 3.0}


def test_array_like_inputs(fmt):
    lst = [0.5, -1.25, 3.0, 4.5, 1e300, -0.0, 7.0]
    y = cd.dropout(lst, 0.5, seed=3, format=fmt)
    assert_same_bits(y, reference.dropout(np.array(lst), 0.5, 3, fmt=fmt))
    y = cd.dropout(2.5, 0.25, seed=4, offset=1, format=fmt)
    assert_same_bits(np.asarray(y), reference.dropout(np.array(2.5), 0.25, 4, 0, 1, fmt=fmt))


def test_read_only_input(fmt):
    x = _data(10_001, np.float32)  # read-only
    check_dropout(cd, x, 0.5, 8, fmt=fmt)


# ------------------------------------------------------------------ strides


BASES = {"d1": (4099,), "d2": (37, 67), "d3": (9, 10, 11)}
# name: (base, memory order of the base, the view taken of it)
VIEWS = {
    "fortran2d": ("d2", "F", lambda a: a),
    "fortran3d": ("d3", "F", lambda a: a),
    "step2": ("d1", "C", lambda a: a[::2]),
    "step3_from1": ("d1", "C", lambda a: a[1::3]),
    "reversed": ("d1", "C", lambda a: a[::-1]),
    "reversed_step": ("d1", "C", lambda a: a[::-3]),
    "cols_reversed": ("d2", "C", lambda a: a[:, ::-1]),
    "rows_reversed": ("d2", "C", lambda a: a[::-1, :]),
    "transpose": ("d2", "C", lambda a: a.T),
    "transpose3d": ("d3", "C", lambda a: a.transpose(2, 0, 1)),
    "fortran_sliced": ("d3", "F", lambda a: a[1:, :, 2:9]),
    "unaligned1d": ("d1", "C", lambda a: a[1:]),
    "unaligned2d": ("d2", "C", lambda a: a[1:, 1:]),
    "unaligned_inner": ("d2", "C", lambda a: a[:, 1:]),
    "mixed3d": ("d3", "C", lambda a: a[::2, 1:, ::-2]),
    "column": ("d2", "C", lambda a: a[:, 5]),
    "broadcast_zero_stride": ("d1", "C", lambda a: np.broadcast_to(a[:64], (5, 64))),
}
WRITABLE_VIEWS = sorted(v for v in VIEWS if v != "broadcast_zero_stride")


def make_view(name, dtype, seed=6):
    """(base, view): a fresh base array of random data and the named view of it."""
    base_name, order, take = VIEWS[name]
    base = np.asarray(random_data(BASES[base_name], dtype, seed), order=order)
    return base, take(base)


def outside_view(name, base):
    """Bool array of base's shape: True where the element is not part of the view."""
    _, order, take = VIEWS[name]
    inside = np.zeros(base.shape, bool, order=order)
    take(inside)[...] = True
    return ~inside


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("view", sorted(VIEWS))
def test_strided_inputs_bitwise(view, dtype, fmt):
    _, x = make_view(view, dtype)
    y = check_dropout(cd, x, 0.45, 21, 5, 3, fmt)
    assert np.shape(y) == x.shape


# ------------------------------------------------------------------ out=


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_out_is_x_in_place(dtype, fmt):
    x = random_data((129, 31), dtype, 9)
    expected = reference.dropout(x.copy(), 0.3, 5, 1, 2, fmt=fmt)
    y = cd.dropout(x, 0.3, seed=5, stream=1, offset=2, out=x, format=fmt)
    assert_same_bits(x, expected, "x after in-place dropout")
    assert_same_bits(y, expected)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("view", WRITABLE_VIEWS)
def test_out_is_x_in_place_strided(view, dtype, fmt):
    base, x = make_view(view, dtype)
    base_before = base.copy()
    expected = reference.dropout(x.copy(), 0.6, 9, 0, 0, fmt=fmt)
    cd.dropout(x, 0.6, seed=9, out=x, format=fmt)
    assert_same_bits(x, expected, "x after in-place dropout")
    outside = outside_view(view, base)
    assert_same_bits(base[outside], base_before[outside], "elements outside the view")


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("view", ["step2", "reversed", "transpose", "mixed3d", "unaligned2d"])
def test_out_strided_separate(view, dtype, fmt):
    """out a non-contiguous view, x a differently laid out array."""
    base, out = make_view(view, dtype, seed=14)
    base_before = base.copy()
    x = np.ascontiguousarray(random_data(out.shape, dtype, 15)[..., ::-1])[..., ::-1]
    check_dropout(cd, x, 0.5, 61, 0, 0, fmt, out=out)
    assert_same_bits(out, reference.dropout(x, 0.5, 61, fmt=fmt), "out")
    outside = outside_view(view, base)
    assert_same_bits(base[outside], base_before[outside], "elements outside out")


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("order", ["C", "F"])
def test_out_separate(order, dtype, fmt):
    x = random_data((65, 33), dtype, 10)
    out = np.full(x.shape, 7.0, dtype, order=order)
    y = check_dropout(cd, x, 0.25, 6, 4, 1, fmt, out=out)
    assert_same_bits(out, reference.dropout(x, 0.25, 6, 4, 1, fmt=fmt), "out")
    assert_same_bits(y, out)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_out_noncontiguous(dtype, fmt):
    x = random_data((4097,), dtype, 11)
    buf = np.full(2 * 4097 + 1, 5.0, dtype)
    out = buf[1::2]
    check_dropout(cd, x, 0.5, 6, 0, 0, fmt, out=out)
    assert_same_bits(out, reference.dropout(x, 0.5, 6, fmt=fmt), "out")
    assert np.all(buf[0::2] == 5.0), "elements of out's base outside out were written"


def test_out_is_returned():
    x = random_data((100,), np.float32)
    out = np.empty_like(x)
    assert cd.dropout(x, 0.5, seed=1, out=out) is out
    assert cd.dropout(x, 0.5, seed=1, out=x) is x


def test_out_zero_d_and_empty(fmt):
    for shape in [(), (0,), (4, 0)]:
        x = random_data(shape, np.float64, 13)
        out = np.empty(shape, np.float64)
        check_dropout(cd, x, 0.5, 3, 0, 5, fmt, out=out)
        assert_same_bits(out, reference.dropout(x, 0.5, 3, 0, 5, fmt=fmt), "out")
