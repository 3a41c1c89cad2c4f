"""Standard normals from Philox words, bit-identical everywhere (docs/variants.md).

The normal deviates use only IEEE-754 binary64 operations that are correctly rounded on every
platform; the counter range is format v1's with bit 30 of word 1 set (never used by the masks).
"""
from __future__ import annotations

from typing import Tuple

import numpy as np

from ._api import philox4x32

#: Bit 30 of Philox counter word 1 marks Gaussian-noise blocks (format v1 uses bit 31 for its
#: secondary draws and leaves bits 29-31 zero in primary ones).
GAUSSIAN_COUNTER_BIT = 0x40000000
_CHUNK_BLOCKS = 1 << 13      # blocks of 4 normals per step: temporaries stay in cache

# The normal deviates use only IEEE-754 binary64 operations that are correctly rounded on every
# platform (+, -, *, /, sqrt, exact integer -> float conversion, exact exponent/mantissa split),
# one NumPy ufunc per operation (so no fused multiply-add), in the order of docs/variants.md.
# No libm function (log, sin, cos, exp, pow) is involved: those differ between platforms and
# NumPy's SIMD builds in the last bit. The constants are the exact doubles written in hex.
_X = float.fromhex
_TWO_M30 = _X("0x1p-30")
_SQRT2 = _X("0x1.6a09e667f3bcdp+0")           # float64(sqrt(2)), the mantissa split point
_LN2_HI = _X("0x1.62e42fee00000p-1")           # ln 2 to 32 bits (k * _LN2_HI is exact)
_LN2_LO = _X("0x1.a39ef35793c76p-33")          # float64(ln 2 - _LN2_HI)
#: log(f) = 2s + 2s * (s^2 * Q(s^2)), s = (f-1)/(f+1); Q's coefficients are float64(1/(2j+3)).
_LOG_Q = tuple(_X(h) for h in (
    "0x1.5555555555555p-2", "0x1.999999999999ap-3", "0x1.2492492492492p-3",
    "0x1.c71c71c71c71cp-4", "0x1.745d1745d1746p-4", "0x1.3b13b13b13b14p-4",
    "0x1.1111111111111p-4", "0x1.e1e1e1e1e1e1ep-5", "0x1.af286bca1af28p-5"))
#: sin(pi*t/2) = t * S(t^2), S's coefficients float64((-1)^j (pi/2)^(2j+1) / (2j+1)!), j = 0..8.
_SIN_S = tuple(_X(h) for h in (
    "0x1.921fb54442d18p+0", "-0x1.4abbce625be53p-1", "0x1.466bc6775aae2p-4",
    "-0x1.32d2cce62bd86p-8", "0x1.50783487ee782p-13", "-0x1.e3074fde8871fp-19",
    "0x1.e8f434d018d63p-25", "-0x1.6fadb9f155744p-31", "0x1.aaec32af93359p-38"))
#: cos(pi*t/2) = C(t^2), C's coefficients float64((-1)^j (pi/2)^(2j) / (2j)!), j = 0..8.
_COS_C = tuple(_X(h) for h in (
    "0x1.0000000000000p+0", "-0x1.3bd3cc9be45dep+0", "0x1.03c1f081b5ac4p-2",
    "-0x1.55d3c7e3cbffap-6", "0x1.e1f506891babbp-11", "-0x1.a6d1f2a204a8cp-16",
    "0x1.f9d38a3763cc3p-22", "-0x1.b6e24f44b128fp-28", "0x1.20c62c2f2d7f5p-34"))
del _X
_EXP_MASK = np.uint64(0x7FF0000000000000)
_MANT_MASK = np.uint64(0x000FFFFFFFFFFFFF)
_ONE_BITS = np.uint64(0x3FF0000000000000)


def _horner(x: np.ndarray, coefficients: Tuple[float, ...]) -> np.ndarray:
    """c[-1]; then acc = acc * x + c[k] for k = len-2 .. 0, each step two rounded ufuncs."""
    acc = np.full_like(x, coefficients[-1])
    for c in coefficients[-2::-1]:
        acc *= x
        acc += c
    return acc


def _neg_log_u1(a: np.ndarray) -> np.ndarray:
    """E = -log(u1), u1 = (a + 1) * 2**-32, for uint32 words a (step 4 of docs/variants.md)."""
    n = a.astype(np.float64)
    n += 1.0                                                  # exact: an integer in [1, 2**32]
    bits = n.view(np.uint64)
    q = ((bits & _EXP_MASK) >> np.uint64(52)).astype(np.int64) - 1023
    f = ((bits & _MANT_MASK) | _ONE_BITS).view(np.float64)   # n = 2**q * f, f in [1, 2), exact
    big = f > _SQRT2
    f[big] *= 0.5                                             # exact; f in [2**-0.5, 2**0.5]
    q += big
    k = (32 - q).astype(np.float64)                           # u1 = 2**-K * f, K in 0..32
    s = f - 1.0                                               # exact (Sterbenz)
    s /= f + 1.0                                              # f + 1 exact (n has <= 32 bits)
    s2 = s * s
    v = _horner(s2, _LOG_Q)                                   # Q
    d = s + s
    v *= s2
    v *= d
    v += d                                                    # lf = log f = 2s + 2s*(s2*Q)
    lo = k * _LN2_LO
    lo -= v                                                   # K*LN2_LO - lf
    e = k * _LN2_HI                                           # exact
    e += lo
    return e


def _sincos_turn(b: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """(sin, cos) of 2*pi * b / 2**32 for uint32 words b (step 5 of docs/variants.md)."""
    quadrant = b >> np.uint32(30)
    r = b & np.uint32(0x3FFFFFFF)
    reflect = r > np.uint32(0x20000000)
    r = np.where(reflect, np.uint32(0x40000000) - r, r)
    t = r.astype(np.float64)
    t *= _TWO_M30                                             # exact: t in [0, 1/2]
    t2 = t * t
    sin_t = _horner(t2, _SIN_S)
    sin_t *= t                                                # sin(pi*t/2)
    cos_t = _horner(t2, _COS_C)                               # cos(pi*t/2)
    swap = reflect ^ ((quadrant & np.uint32(1)) != 0)
    s = np.where(swap, cos_t, sin_t)
    c = np.where(swap, sin_t, cos_t)
    np.negative(s, out=s, where=quadrant >= np.uint32(2))
    np.negative(c, out=c, where=(quadrant == np.uint32(1)) | (quadrant == np.uint32(2)))
    return s, c


def _normals_from_words(w: np.ndarray) -> np.ndarray:
    """The four standard normals of each row of Philox words w (shape (nb, 4), uint32)."""
    e_ = _neg_log_u1(np.ascontiguousarray(w[:, 0::2]))
    e_ += e_                                                  # -2 log(u1), exact doubling
    r = np.sqrt(e_)
    s, c = _sincos_turn(np.ascontiguousarray(w[:, 1::2]))
    z = np.empty(w.shape, np.float64)
    np.multiply(r, c, out=z[:, 0::2])
    np.multiply(r, s, out=z[:, 1::2])
    return z


def _standard_normals(seed: int, stream: int, offset: int, n: int) -> np.ndarray:
    """z_e for e = offset .. offset+n-1 (float64), the rule of docs/variants.md."""
    z = np.empty(n, np.float64)
    if n == 0:
        return z
    key = (seed & 0xFFFFFFFF, seed >> 32)
    first, last = offset >> 2, (offset + n - 1) >> 2
    lo = offset & 3  # position of element 0 within its block
    pos = 0
    b0 = first
    while b0 <= last:
        nb = min(_CHUNK_BLOCKS, last - b0 + 1)
        blocks = np.arange(b0, b0 + nb, dtype=np.uint64)
        ctr = np.empty((nb, 4), np.uint32)
        ctr[:, 0] = blocks & np.uint64(0xFFFFFFFF)
        ctr[:, 1] = (blocks >> np.uint64(32)) | np.uint64(GAUSSIAN_COUNTER_BIT)
        ctr[:, 2] = stream & 0xFFFFFFFF
        ctr[:, 3] = stream >> 32
        flat = _normals_from_words(philox4x32(ctr, key)).reshape(-1)
        start = lo if b0 == first else 0
        take = min(flat.size - start, n - pos)
        z[pos:pos + take] = flat[start:start + take]
        pos += take
        b0 += nb
    return z
