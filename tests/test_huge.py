"""Size: element indices near the ends of their ranges agree with the reference.

Offsets put the global index e = offset + i anywhere in [0, 2**64) without big arrays: near
2**61 blocks (the last elements of the index space), across the 2**32-element and 2**32-block
boundaries (where a 32-bit index or counter word would carry), and across 2**31 and 2**63
(sign bits). The test marked `slow` makes one real float16 array of more than 2**31 elements
(4 GiB), so the C-order index i itself passes 2**31, and compares sampled windows with the
reference.
"""
import os

import numpy as np
import pytest

import cdropout
from cdropout import _config
import reference
from helpers import assert_same_bits, assert_same_mask

U64 = 1 << 64
ISAS = tuple(cdropout.simd_info()["available"])
P_TIE = 1 - 0x12345678 / 2 ** 32  # Tlo != 0

BOUNDARIES = {
    "int32 sign (2**31)": 1 << 31,
    "2**32 elements": 1 << 32,
    "2**32 blocks (counter word 0 carries)": 8 << 32,
    "2**63 elements": 1 << 63,
    "2**61 - 1 blocks": (1 << 64) - 8,
}


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("where", sorted(BOUNDARIES))
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_arrays_crossing_index_boundaries_via_offset(where, dtype, isa):
    b = BOUNDARIES[where]
    n = 5000
    offset = min(b - 2500 - 3, U64 - n)  # an odd phase: the array starts mid-block
    x = np.random.default_rng(0).standard_normal(n).astype(dtype)
    with _config.forced_isa(isa):
        y, bits = cdropout.dropout(x, P_TIE, seed=2 ** 64 - 1, stream=2 ** 63 + 1, offset=offset,
                                   return_mask="bits", num_threads=2)
    keep = reference.keep_mask((n,), P_TIE, 2 ** 64 - 1, 2 ** 63 + 1, offset)
    assert_same_bits(y, reference.apply_mask(x, keep, P_TIE), where)
    assert np.array_equal(bits.data, reference.packbits(keep))


@pytest.mark.parametrize("isa", ISAS)
def test_last_elements_of_the_index_space(isa):
    """offset + size == 2**64 exactly is legal; one more element is not."""
    for n in (1, 7, 8, 9, 1023, 1024, 1025, 4099):
        x = np.ones(n, np.float32)
        with _config.forced_isa(isa):
            y, m = cdropout.dropout(x, 0.5, seed=3, offset=U64 - n, return_mask="bool")
        assert_same_mask(m, reference.keep_mask((n,), 0.5, 3, 0, U64 - n))
        assert_same_bits(y, reference.apply_mask(x, m, 0.5))
        with pytest.raises(ValueError):
            cdropout.dropout(x, 0.5, seed=3, offset=U64 - n + 1)
        with pytest.raises(ValueError):
            cdropout.MaskKey(3, 0, U64 - n + 1, 0.5, (n,))


def test_crossing_2_32_elements_whole_array_against_reference():
    """2**21 elements straddling e = 2**32, in 2-d (so runs are split across rows) with threads."""
    n = 1 << 21
    offset = (1 << 32) - n // 2 - 5
    x = np.ones((n // 1024, 1024), np.float32)
    y, bits = cdropout.dropout(x, 0.5, seed=11, offset=offset, return_mask="bits", num_threads=2)
    keep = reference.keep_mask(x.shape, 0.5, 11, 0, offset)
    assert_same_bits(y, reference.apply_mask(x, keep, 0.5))
    assert np.array_equal(bits.data, reference.packbits(keep))
    # chunked along the boundary: the pieces reproduce the whole
    flat = x.ravel()
    for a in (n // 2 + 5 - 1, n // 2 + 5, n // 2 + 5 + 1):
        part = cdropout.dropout(flat[a:], 0.5, seed=11, offset=offset + a)
        assert_same_bits(part, y.ravel()[a:])


def _windows(n, rng, count=200, width=257):
    starts = {0, n - width, (1 << 31) - width // 2, (1 << 31) - 1, (1 << 30) - 3, (n // 2) & ~7}
    starts |= set(int(s) for s in rng.integers(0, n - width, count))
    return sorted(s for s in starts if 0 <= s <= n - width)


@pytest.mark.slow
def test_real_array_over_2_31_float16_elements():
    """4 GiB of float16 (2**31 + 2**20 + 3 elements) in place, with a bit mask; sampled windows,
    the window across i = 2**31 and the last elements checked against the reference."""
    n = (1 << 31) + (1 << 20) + 3
    need = n * 2 + n // 8 + (1 << 28)
    try:
        avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        avail = None
    if avail is not None and avail < need:
        pytest.skip(f"needs about {need >> 20} MiB free, {avail >> 20} MiB available")
    p, seed, stream, offset = 0.3, 0xFEEDFACE, 17, 5
    x = np.ones(n, np.float16)
    try:
        y, bits = cdropout.dropout(x, p, seed=seed, stream=stream, offset=offset, out=x, return_mask="bits")
        assert y is x
        s = reference.scale_factor(np.float16, p)
        rng = np.random.default_rng(0)
        for start in _windows(n, rng):
            keep = reference.keep_mask((257,), p, seed, stream, offset + start)
            expected = np.where(keep, s, np.float16(0))
            assert_same_bits(y[start:start + 257], expected, f"window at {start}")
            got_bits = np.unpackbits(bits.data[start // 8:(start + 257) // 8 + 2], bitorder="little")
            got = got_bits[start % 8:start % 8 + 257].astype(bool)
            assert_same_mask(got, keep, f"bit mask window at {start}")
        # whole-array consistency: nonzero outputs == set bits; keep rate within 5 sigma
        kept = sum(int(np.count_nonzero(y[i:i + (1 << 27)])) for i in range(0, n, 1 << 27))
        set_bits = sum(int(np.unpackbits(bits.data[i:i + (1 << 24)]).sum(dtype=np.int64))
                       for i in range(0, bits.data.size, 1 << 24))
        assert kept == set_bits
        q = reference.threshold(p) / 2 ** 32
        z = (kept - n * q) / np.sqrt(n * q * (1 - q))
        assert abs(z) < 5, f"keep rate z = {z:.2f}"
        # the tail bits past n in the last byte are 0 (np.packbits convention)
        assert bits.data[-1] >> (n % 8) == 0
    finally:
        del x


# Sizes past the 47-bit user address space (128 TiB): no allocation of them can succeed, so
# these are safe whatever the overcommit policy.
IMPOSSIBLE = 1 << 48


@pytest.mark.parametrize("kwargs", [{}, {"training": False, "scale": False}, {"return_mask": "key"},
                                    {"return_mask": "bits"}, {"noise_shape": (1,)}])
def test_impossible_sizes_fail_cleanly(kwargs):
    """A zero-stride view of 2**48 float64 (2 PiB) is a legal input whose output cannot be
    allocated: MemoryError (NumPy's), before the core runs; nothing crashes."""
    x = np.broadcast_to(np.ones(1, np.float64), (IMPOSSIBLE,))
    with pytest.raises(MemoryError):
        cdropout.dropout(x, 0.5, seed=1, **kwargs)


def test_impossible_mask_keys_fail_cleanly():
    k = cdropout.MaskKey(1, 0, 0, 0.5, (IMPOSSIBLE, 1 << 10))
    with pytest.raises((MemoryError, ValueError)):
        k.to_bits()
    with pytest.raises((MemoryError, ValueError)):
        k.to_bool()
    with pytest.raises(ValueError):
        cdropout.dropout_backward(np.ones(4), k)  # shape mismatch, found before any allocation
    with pytest.raises(ValueError):  # offset + size past 2**64
        cdropout.MaskKey(1, 0, 1, 0.5, (1 << 32, 1 << 32))
    with pytest.raises(ValueError):
        cdropout.MaskKey(1, 0, 0, 0.5, (1 << 40, 1 << 40))
