"""Pure-NumPy reference of the cdropout mask stream, format v1.

Written from the specification (docs/stream-format.md, issue "The core"), independently of
the C implementation, so that the tests can fail. Everything here is vectorised NumPy:
the 32x32->64 bit multiplies of Philox are done in uint64 arrays.

Format v1, in short:
  key = (seed & 0xffffffff, seed >> 32); element i of the mask (C order) has index e = offset + i;
  block b = e >> 3, half h = e & 7;
  primary = philox4x32_10((b & 0xffffffff, b >> 32, stream & 0xffffffff, stream >> 32), key);
  u = (primary[h >> 1] >> (16 * (h & 1))) & 0xffff;
  secondary = the same with bit 31 of counter word 1 set; v = its half h (only used on ties);
  T = floor((1 - p) * 2**32 + 0.5) in float64; Thi = T >> 16; Tlo = T & 0xffff;
  keep = T >= 2**32 or (T > 0 and (u < Thi or (u == Thi and v < Tlo))).
  y = keep ? x * s : +0.0, s = dtype(1 / (1 - p)).
"""
import functools
import math

import numpy as np

PHILOX_M0 = 0xD2511F53
PHILOX_M1 = 0xCD9E8D57
PHILOX_W0 = 0x9E3779B9
PHILOX_W1 = 0xBB67AE85

TWO32 = 1 << 32
TWO64 = 1 << 64
SECONDARY_BIT = 0x80000000  # bit 31 of counter word 1

_LO32 = np.uint64(0xFFFFFFFF)
_S32 = np.uint64(32)

# Random123 tests/kat_vectors, philox4x32 lines: rounds, counter[0..3], key[0..1], expected[0..3]
KAT_VECTORS = [
    (7, (0x00000000, 0x00000000, 0x00000000, 0x00000000), (0x00000000, 0x00000000),
     (0x5F6FB709, 0x0D893F64, 0x4F121F81, 0x4F730A48)),
    (7, (0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF), (0xFFFFFFFF, 0xFFFFFFFF),
     (0x5207DDC2, 0x45165E59, 0x4D8EE751, 0x8C52F662)),
    (7, (0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0x4DFCCABA, 0x190A87F0, 0xC47362BA, 0xB6B5242A)),
    (10, (0x00000000, 0x00000000, 0x00000000, 0x00000000), (0x00000000, 0x00000000),
     (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    (10, (0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF), (0xFFFFFFFF, 0xFFFFFFFF),
     (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    (10, (0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
]


def philox4x32(counter, key, rounds=10):
    """Philox4x32-R of a batch of counters: uint32 array (..., 4) -> uint32 array (..., 4)."""
    ctr = np.asarray(counter)
    if ctr.shape[-1:] != (4,):
        raise ValueError("counter must have shape (..., 4)")
    c0, c1, c2, c3 = (ctr[..., j].astype(np.uint64) for j in range(4))
    k0, k1 = (int(k) & 0xFFFFFFFF for k in key)
    m0 = np.uint64(PHILOX_M0)
    m1 = np.uint64(PHILOX_M1)
    for r in range(rounds):
        if r > 0:
            k0 = (k0 + PHILOX_W0) & 0xFFFFFFFF
            k1 = (k1 + PHILOX_W1) & 0xFFFFFFFF
        p0 = c0 * m0  # < 2**64: exact in uint64
        p1 = c2 * m1
        c0, c1, c2, c3 = ((p1 >> _S32) ^ c1 ^ np.uint64(k0), p1 & _LO32,
                          (p0 >> _S32) ^ c3 ^ np.uint64(k1), p0 & _LO32)
    return np.stack([c0, c1, c2, c3], axis=-1).astype(np.uint32)


def threshold(p):
    """T = round((1 - p) * 2**32) in float64 (floor(q * 2**32 + 0.5)), as a Python int."""
    return int(math.floor((1.0 - float(p)) * 4294967296.0 + 0.5))


def p_for_threshold(t):
    """The p (a float64) with (1 - p) * 2**32 == t exactly; t may be a half-integer.

    threshold(p_for_threshold(T)) == T, and p_for_threshold(T +- 0.5) probes the rounding."""
    p = 1.0 - float(t) / 4294967296.0
    assert (1.0 - p) * 4294967296.0 == t, t
    return p


def _check_u64(name, v):
    v = int(v)
    if not 0 <= v < TWO64:
        raise ValueError(f"{name} out of range")
    return v


def _block_halves(seed, stream, blocks, secondary):
    """The eight 16-bit halves of every block in `blocks` (uint64 array): uint16 (len, 8)."""
    ctr = np.empty(blocks.shape + (4,), np.uint32)
    ctr[..., 0] = blocks & _LO32
    ctr[..., 1] = blocks >> _S32
    if secondary:
        ctr[..., 1] |= np.uint32(SECONDARY_BIT)
    ctr[..., 2] = stream & 0xFFFFFFFF
    ctr[..., 3] = stream >> 32
    words = philox4x32(ctr, (seed & 0xFFFFFFFF, seed >> 32))
    halves = np.empty(blocks.shape + (8,), np.uint16)
    halves[..., 0::2] = words & np.uint32(0xFFFF)  # half 2w = low 16 bits of word w
    halves[..., 1::2] = words >> np.uint32(16)     # half 2w+1 = high 16 bits of word w
    return halves


def draws(n, seed, stream=0, offset=0):
    """(u, tie_v) for elements offset .. offset+n-1.

    u: uint16 (n,) primary halves. tie_v: function(index array) -> the secondary halves v of
    those elements (computed lazily, only for the blocks asked for)."""
    seed = _check_u64("seed", seed)
    stream = _check_u64("stream", stream)
    offset = _check_u64("offset", offset)
    n = int(n)
    if offset + n > TWO64:
        raise ValueError("offset + size beyond 2**64")
    if n == 0:
        return np.zeros(0, np.uint16), lambda idx: np.zeros(0, np.uint16)
    first = offset >> 3
    last = (offset + n - 1) >> 3
    blocks = np.arange(last - first + 1, dtype=np.uint64) + np.uint64(first)
    u = _block_halves(seed, stream, blocks, False).reshape(-1)[(offset & 7):(offset & 7) + n]

    def tie_v(idx):
        idx = np.asarray(idx, dtype=np.uint64)
        e = np.uint64(offset) + idx
        halves = _block_halves(seed, stream, e >> np.uint64(3), True)
        return halves[np.arange(len(idx)), (e & np.uint64(7)).astype(np.intp)]

    return u, tie_v


def _keep_and_ties(n, p, seed, stream, offset):
    T = threshold(p)
    u, tie_v = draws(n, seed, stream, offset)  # validates the arguments
    if T >= TWO32:
        return np.ones(n, bool), np.zeros(0, np.intp), np.zeros(0, bool)
    if T <= 0:
        return np.zeros(n, bool), np.zeros(0, np.intp), np.zeros(0, bool)
    thi, tlo = T >> 16, T & 0xFFFF
    keep = u < thi
    ties = np.flatnonzero(u == thi)
    tie_keep = tie_v(ties) < tlo if len(ties) else np.zeros(0, bool)
    keep[ties] = tie_keep
    return keep, ties, tie_keep


@functools.lru_cache(maxsize=256)
def keep_flat(n, p, seed, stream=0, offset=0):
    """Keep flags of elements offset .. offset+n-1 (read-only bool array, cached)."""
    keep, _, _ = _keep_and_ties(n, p, seed, stream, offset)
    keep.flags.writeable = False
    return keep


def tie_stats(n, p, seed, stream=0, offset=0):
    """(number of ties u == Thi, how many are kept) in the sample; (0, 0) if T has no ties."""
    _, ties, tie_keep = _keep_and_ties(n, p, seed, stream, offset)
    return len(ties), int(np.count_nonzero(tie_keep))


def keep_mask(shape, p, seed, stream=0, offset=0):
    """Keep flags of a mask of `shape` (C order), read-only."""
    shape = tuple(int(d) for d in shape)
    return keep_flat(math.prod(shape), float(p), int(seed), int(stream), int(offset)).reshape(shape)


def scale_factor(dtype, p):
    """s = 1 / (1 - p) computed in float64, rounded to dtype (1 when p == 1: nothing is kept)."""
    dt = np.dtype(dtype).type
    p = float(p)
    return dt(1.0) if p >= 1.0 else dt(1.0 / (1.0 - p))


def apply_mask(x, keep, p, scale=True):
    """where(keep, x * s, +0.0), elementwise over x's logical shape; result C-contiguous."""
    x = np.array(x, order="C")  # (np.ascontiguousarray would turn 0-d into 1-d)
    if x.dtype not in (np.float16, np.float32, np.float64):
        raise TypeError("reference only handles float16/32/64")
    keep = np.broadcast_to(keep, x.shape)
    if not scale:
        kept = x.copy()
    else:
        with np.errstate(all="ignore"):
            if x.dtype == np.float16:
                # the product in float32 (exact: 11 x 11 significand bits), rounded once
                s = np.float32(scale_factor(np.float16, p))
                kept = (x.astype(np.float32) * s).astype(np.float16)
            else:
                kept = x * scale_factor(x.dtype, p)
    return np.where(keep, kept, x.dtype.type(0.0))


def dropout(x, p, seed, stream=0, offset=0, *, scale=True, noise_shape=None):
    """Reference forward: the expected output of cdropout.dropout for these arguments."""
    x = np.asarray(x)
    shape = x.shape if noise_shape is None else tuple(noise_shape)
    return apply_mask(x, keep_mask(shape, p, seed, stream, offset), p, scale=scale)


def packbits(keep):
    """The bytes of a BitMask: np.packbits(mask.ravel(), bitorder='little')."""
    return np.packbits(np.asarray(keep, bool).ravel(), bitorder="little")


def seed_from_seedsequence(ss):
    """The uint64 seed cdropout takes from a numpy SeedSequence: w0 | w1 << 32."""
    w = ss.generate_state(2, np.uint32)
    return int(w[0]) | (int(w[1]) << 32)


def bits_of(a):
    """The raw bits of a float array (C-contiguous copy viewed as unsigned ints)."""
    a = np.array(a, order="C")
    return a.view({2: np.uint16, 4: np.uint32, 8: np.uint64}[a.dtype.itemsize])


# ---------------------------------------------------------------- alpha dropout's constants

ALPHA_PRIME = -1.7580993408473766  # SELU's -lambda * alpha, as the double docs/variants.md names
ALPHA_DIGITS = 80                  # decimal digits of the reference before the final rounding


def alpha_constants_decimal(p, digits=ALPHA_DIGITS):
    """(a, b, c) of docs/variants.md as Decimals to `digits` significant digits (p < 1).

    a = ((1 - p) * (1 + p * alpha'**2)) ** -0.5, b = -a * alpha' * p, c = a * alpha' * (1 - p),
    with p and alpha' the exact values of their doubles (Decimal(float) is exact).
    """
    import decimal
    with decimal.localcontext() as ctx:
        ctx.prec = digits
        ctx.rounding = decimal.ROUND_HALF_EVEN
        P, A = decimal.Decimal(float(p)), decimal.Decimal(ALPHA_PRIME)
        q = (1 - P) * (1 + P * A * A)
        a = 1 / q.sqrt()
        return +a, -a * A * P, a * A * (1 - P)


def nearest_double(d):
    """The float64 nearest to the Decimal d (CPython's str -> float conversion rounds correctly)."""
    return float(str(d))


def alpha_constants(p):
    """(a, b, c) as floats: the reference values rounded once to float64."""
    return tuple(nearest_double(v) for v in alpha_constants_decimal(p))
